import Foundation
import Geometry
import Imaging
import Semantics

/// Kinect v1-like depth noise (Nguyen et al. 2012 axial noise, disparity quantisation, missing
/// depth at edges, grazing angles, range limits and random dropouts).
public struct DepthNoiseModel: Sendable, Equatable {
    public var enabled = true
    /// Axial noise σ(z) (a Kinect v1's, the model the tracker weights correspondences by).
    public var axial = AxialDepthNoise.kinect
    /// Disparity quantised to 1/subpixel of a pixel at the Kinect's 640-wide focal length.
    public var baseline = 0.075
    public var subpixel = 8.0
    /// Pixels next to a depth jump larger than this lose their depth with `edgeDropout`.
    public var edgeJump = 0.05
    public var edgeDropout = 0.5
    /// Surfaces seen at more than this angle (degrees) from their normal return nothing.
    public var maxIncidence = 80.0
    public var minRange = 0.4
    public var maxRange = 5.0
    public var randomDropout = 0.005
    public init() {}
    public static let none: DepthNoiseModel = { var m = DepthNoiseModel(); m.enabled = false; return m }()
}

/// One rendered frame with its ground truth.
public struct SyntheticFrame: @unchecked Sendable {
    /// Colour, noisy depth, ground-truth labels and pose.
    public var frame: Frame
    /// Depth without sensor noise (0 where nothing is hit).
    public var cleanDepth: DepthImage
}

/// Renders the synthetic room along the trajectory by ray casting: depth and labels at every
/// pixel centre, colour averaged over the pixel's area.
public struct SyntheticRenderer: Sendable {
    public var scene: SyntheticScene
    public var trajectory: SyntheticTrajectory
    public var intrinsics: Intrinsics
    public var noise: DepthNoiseModel
    public var seed: UInt64
    /// Colour rays per pixel along each axis, spread evenly over the pixel and averaged, as a
    /// camera's pixel integrates the light falling on it. With 1 (the centre only) textures and
    /// edges alias and shimmer from frame to frame, which no camera does: on the bundled room
    /// the photometric term then made tracking worse (7.6 → 10.1 mm ATE), with 2 it made it
    /// better (7.6 → 6.1 mm; docs/results.md, "The photometric term where colour is registered").
    public var colorSamples = 2

    /// Kinect-like field of view (57° horizontal) at the given size.
    public static func defaultIntrinsics(width: Int = 320, height: Int = 240) -> Intrinsics {
        let f = 585.0 * Double(width) / 640
        return Intrinsics(fx: f, fy: f, cx: Double(width) / 2 - 0.5, cy: Double(height) / 2 - 0.5, width: width, height: height)
    }

    public init(scene: SyntheticScene = .livingRoom(), trajectory: SyntheticTrajectory = SyntheticTrajectory(),
                intrinsics: Intrinsics = SyntheticRenderer.defaultIntrinsics(), noise: DepthNoiseModel = DepthNoiseModel(), seed: UInt64 = 1) {
        self.scene = scene; self.trajectory = trajectory; self.intrinsics = intrinsics; self.noise = noise; self.seed = seed
    }

    public func render(_ index: Int) -> SyntheticFrame {
        let pose = trajectory.pose(index)
        let w = intrinsics.width, h = intrinsics.height, n = w * h
        var clean = [Float](repeating: 0, count: n)
        var labels = [UInt8](repeating: ClassSet.ignoreLabel, count: n)
        var colors = [RGB8](repeating: .black, count: n)
        var incidence = [Float](repeating: 0, count: n)
        let scene = self.scene, k = intrinsics, seed = self.seed, samples = max(1, colorSamples)
        clean.withUnsafeMutableBufferPointer { cleanBuffer in
        labels.withUnsafeMutableBufferPointer { labelBuffer in
        colors.withUnsafeMutableBufferPointer { colorBuffer in
        incidence.withUnsafeMutableBufferPointer { cosBuffer in
            nonisolated(unsafe) let cleanBuffer = cleanBuffer, labelBuffer = labelBuffer, colorBuffer = colorBuffer, cosBuffer = cosBuffer
            DispatchQueue.concurrentPerform(iterations: 4) { chunk in
                for y in (h * chunk / 4)..<(h * (chunk + 1) / 4) {
                    for x in 0..<w {
                        let dirCam = SIMD3((Double(x) - k.cx) / k.fx, (Double(y) - k.cy) / k.fy, 1)
                        let dir = pose.rotation * dirCam
                        guard let hit = scene.raycast(origin: pose.translation, direction: dir) else { continue }
                        let p = y * w + x
                        cleanBuffer[p] = Float(hit.distance)          // dirCam.z == 1: distance is depth
                        labelBuffer[p] = UInt8(hit.classId)
                        let ray = dir.normalized
                        cosBuffer[p] = Float(abs(hit.normal.dot(ray)))
                        let centre = scene.radiance(hit)
                        var c = centre
                        if samples > 1 {
                            c = .zero
                            for sy in 0..<samples {
                                for sx in 0..<samples {
                                    let u = Double(x) + (Double(sx) + 0.5) / Double(samples) - 0.5
                                    let v = Double(y) + (Double(sy) + 0.5) / Double(samples) - 0.5
                                    let d = pose.rotation * SIMD3((u - k.cx) / k.fx, (v - k.cy) / k.fy, 1)
                                    // A ray past every surface (none in the closed room) takes the centre's colour.
                                    c += scene.raycast(origin: pose.translation, direction: d).map(scene.radiance) ?? centre
                                }
                            }
                            c /= Double(samples * samples)
                        }
                        func channel(_ v: Double, _ ch: UInt64) -> UInt8 {
                            UInt8(max(0, min(255, (v + 2 * SyntheticNoise.gaussian(seed, UInt64(index), UInt64(p), ch)).rounded())))
                        }
                        colorBuffer[p] = RGB8(channel(c.x, 0), channel(c.y, 1), channel(c.z, 2))
                    }
                }
            }
        }}}}
        let depth = noise.enabled ? applyNoise(clean, incidence: incidence, frame: index) : clean
        let frame = Frame(index: index, timestamp: Double(index) / trajectory.framesPerSecond,
                          color: ColorImage(width: w, height: h, pixels: colors),
                          depth: DepthImage(width: w, height: h, pixels: depth), worldFromCamera: pose,
                          labels: LabelImage(width: w, height: h, pixels: labels), source: "synthetic frame \(index)")
        return SyntheticFrame(frame: frame, cleanDepth: DepthImage(width: w, height: h, pixels: clean))
    }

    private func applyNoise(_ clean: [Float], incidence: [Float], frame: Int) -> [Float] {
        let w = intrinsics.width, h = intrinsics.height
        let fb = abs(intrinsics.fx) * 640 / Double(w) * noise.baseline
        let cosMax = Float(cos(noise.maxIncidence * .pi / 180))
        var out = [Float](repeating: 0, count: clean.count)
        let s = seed &+ 0x5EED
        for y in 0..<h {
            for x in 0..<w {
                let p = y * w + x
                let z = Double(clean[p])
                guard z >= noise.minRange, z <= noise.maxRange, incidence[p] >= cosMax else { continue }
                if SyntheticNoise.uniform(s, UInt64(frame), UInt64(p), 1) < noise.randomDropout { continue }
                var jump = 0.0
                for (dx, dy) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                    let xx = x + dx, yy = y + dy
                    guard xx >= 0, yy >= 0, xx < w, yy < h else { continue }
                    let q = Double(clean[yy * w + xx])
                    jump = max(jump, q == 0 ? 10 : abs(q - z))
                }
                if jump > noise.edgeJump && SyntheticNoise.uniform(s, UInt64(frame), UInt64(p), 2) < noise.edgeDropout { continue }
                let sigma = noise.axial.sigma(atDepth: z)
                let noisy = z + sigma * SyntheticNoise.gaussian(s, UInt64(frame), UInt64(p), 3)
                let disparity = (fb / noisy * noise.subpixel).rounded() / noise.subpixel
                out[p] = disparity > 0 ? Float(fb / disparity) : 0
            }
        }
        return out
    }
}
