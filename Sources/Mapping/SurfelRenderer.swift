import Foundation
import Geometry
import Imaging

/// Renders surfels as oriented discs (ElasticFusion's splatting): each covered pixel takes the
/// intersection of its ray with the surfel's plane, discarded outside the radius, z-buffered.
///
/// Used for map renderings, for comparing the map with held-out depth, and as the model
/// prediction (vertex, normal and colour maps) a frame-to-model tracker aligns against.
public struct SurfelRenderer {
    /// Which surfels to draw.
    public struct Selection: Sendable {
        /// Minimum confidence (nil: all).
        public var minimumConfidence: Float?
        /// Only surfels seen within this many frames of `tick` (nil: all).
        public var activeWithin: Int?
        public var tick: Int
        /// Draw the complement of the window instead: only surfels *not* seen within
        /// `activeWithin` frames (ElasticFusion's inactive model, which local loop closure
        /// registers the active model against).
        public var inactive: Bool
        /// Only surfels made at or before this map time (nil: all): the surface an old keyframe
        /// saw, without what later, more drifted frames added around it.
        public var madeBy: Int?
        public init(minimumConfidence: Float? = nil, activeWithin: Int? = nil, tick: Int = 0, inactive: Bool = false, madeBy: Int? = nil) {
            self.minimumConfidence = minimumConfidence; self.activeWithin = activeWithin; self.tick = tick
            self.inactive = inactive; self.madeBy = madeBy
        }
    }

    /// Per-pixel result of a render: surfel index (-1 empty), camera-frame depth along z (0
    /// empty), camera-frame point and normal.
    public struct Output: Sendable {
        public var width: Int
        public var height: Int
        public var surfel: [Int32]
        public var depth: DepthImage
        public var vertices: [SIMD3<Float>]
        public var normals: [SIMD3<Float>]
        /// Per pixel, the surfel whose colour to show (-1 empty), when `render` was given a
        /// `colorNoise`; else empty and the colour is `surfel`'s.
        public var colorSurfel: [Int32] = []

        /// Fraction of a 32x24 grid of pixels that a surfel covers (ElasticFusion's test of
        /// whether a prediction is dense enough).
        public var gridCoverage: Double {
            var covered = 0
            for gy in 0..<24 {
                for gx in 0..<32 where surfel[(gy * height / 24) * width + gx * width / 32] >= 0 { covered += 1 }
            }
            return Double(covered) / (32 * 24)
        }

        /// Colours every covered pixel; `color(i)` gives surfel i's colour.
        public func colorImage(background: RGB8 = RGB8(0, 0, 0), _ color: (Int) -> RGB8) -> ColorImage {
            ColorImage(width: width, height: height, pixels: surfel.map { $0 < 0 ? background : color(Int($0)) })
        }
    }

    public init() {}

    /// Renders `map` from `cameraFromWorld`. Discs larger than `maxPixelRadius` are clipped so a
    /// surfel right in front of the camera cannot flood the image.
    ///
    /// With `colorNoise`, `Output.colorSurfel` gives each pixel the colour of the disc whose
    /// centre projects nearest to it among the discs within twice that depth noise of the front
    /// one (the same surface). The front disc alone is often a neighbour's where the surface
    /// slants, which shifts and blocks a colour rendering by up to a disc's radius; one frame's
    /// surfels rendered from its own pose then give back its image. Photometric tracking on the
    /// synthetic sequences: 2.9-4.9 mm ATE with the front disc's colour, 2.0-3.0 mm with this
    /// (docs/results.md, "Model colour from the nearest disc centre").
    public func render(_ map: SurfelMap, cameraFromWorld: RigidTransform, intrinsics: Intrinsics,
                       selection: Selection = Selection(), maxPixelRadius: Float = 16, colorNoise: AxialDepthNoise? = nil,
                       threads: Int = defaultThreadCount) -> Output {
        let w = intrinsics.width, h = intrinsics.height, n = w * h
        let count = map.count
        let workers = max(1, min(threads, count / 4_096 + 1))
        // One z-buffer of keys (depth bits << 32 | surfel index) per worker, back to back.
        var keys = [UInt64](repeating: .max, count: workers * n)
        let T = cameraFromWorld.float
        let camera = Camera(intrinsics)
        let minConf = selection.minimumConfidence ?? -.infinity
        // Surfels are drawn when lastSeen lies in [oldest, newest]: the active window, or for the
        // inactive model everything before it.
        var oldest: Int32 = selection.activeWithin.map { Int32(clamping: selection.tick - $0) } ?? .min
        var newest = Int32.max
        let madeBy = selection.madeBy.map { Int32(clamping: $0) } ?? .max
        if selection.inactive {
            newest = oldest == .min ? .min : oldest - 1
            oldest = .min
        }
        // Each pixel's ray (x − cx) / fx, (y − cy) / fy, computed once per column and row: the
        // same values the disc loop used to divide out per covered pixel.
        let rayX = (0..<w).map { (Float($0) - camera.cx) / camera.fx }, rayY = (0..<h).map { (Float($0) - camera.cy) / camera.fy }
        let drawn = Drawn(minConf: minConf, oldest: oldest, newest: newest, madeBy: madeBy)
        var surfel = [Int32](repeating: -1, count: n)
        var depthPixels = [Float](repeating: 0, count: n)
        var vertices = [SIMD3<Float>](repeating: .zero, count: n)
        var normalsOut = [SIMD3<Float>](repeating: .zero, count: n)
        map.withKernelInputs { m in
        rayX.withKernelInput { rayX in
        rayY.withKernelInput { rayY in
        keys.withKernelOutput { keys in
            // Every `workers`-th run of surfels to one worker, so the surfels in view, bunched in
            // the spatially ordered map, are split evenly; each worker has its own z-buffer.
            ParallelFor.strided(count, workers: workers, batch: ParallelFor.surfelRun, threads: threads) { k, _, surfels in
                let key = keys.slice((k * n)..<((k + 1) * n))
                for i in surfels {
                    guard drawn.includes(m, i), let disc = Disc(m, i, T, camera, width: w, height: h, maxPixelRadius: maxPixelRadius) else { continue }
                    for y in disc.y0...disc.y1 {
                        let ry = rayY[y]
                        for x in disc.x0...disc.x1 {
                            guard let z = disc.depth(along: SIMD3(rayX[x], ry, 1)) else { continue }
                            let candidate = UInt64(z.bitPattern) << 32 | UInt64(UInt32(i))
                            let pix = y * w + x
                            if candidate < key[pix] { key[pix] = candidate }
                        }
                    }
                }
            }
            // Resolve the per-worker z-buffers, rows in parallel (each pixel written once).
            surfel.withKernelOutput { so in
            depthPixels.withKernelOutput { dO in
            vertices.withKernelOutput { vo in
            normalsOut.withKernelOutput { no in
                ParallelFor.run(h, chunks: threads > 1 ? 4 * threads : 1, threads: threads) { _, rows in
                    for y in rows {
                        for x in 0..<w {
                            let pix = y * w + x
                            var best = keys[pix]
                            for k in 1..<workers { best = min(best, keys[k * n + pix]) }
                            guard best != .max else { continue }
                            let i = Int(UInt32(truncatingIfNeeded: best))
                            let z = Float(bitPattern: UInt32(best >> 32))
                            so[pix] = Int32(i)
                            dO[pix] = z
                            vo[pix] = SIMD3(rayX[x] * z, rayY[y] * z, z)
                            no[pix] = T.rotate(m.normals[i])
                        }
                    }
                }
            }}}}
        }}}}
        let depth = DepthImage(width: w, height: h, pixels: depthPixels)
        var output = Output(width: w, height: h, surfel: surfel, depth: depth, vertices: vertices, normals: normalsOut)
        if let colorNoise {
            output.colorSurfel = nearestCentres(map, front: depthPixels, keys: &keys, workers: workers, transform: T,
                                                intrinsics: intrinsics, rays: (rayX, rayY), drawn: drawn,
                                                noise: colorNoise, maxPixelRadius: maxPixelRadius, threads: threads)
        }
        return output
    }

    /// The colour pass of `render(colorNoise:)`: per pixel, the smallest (squared distance of
    /// the disc's projected centre from the pixel, surfel index) over the discs that cover the
    /// pixel no more than 2σ(z) behind the front depth; per-worker buffers as the depth pass.
    private func nearestCentres(_ map: SurfelMap, front: [Float], keys: inout [UInt64], workers: Int, transform T: RigidTransformF,
                                intrinsics: Intrinsics, rays: (x: [Float], y: [Float]),
                                drawn: Drawn,
                                noise: AxialDepthNoise, maxPixelRadius: Float, threads: Int) -> [Int32] {
        let w = intrinsics.width, h = intrinsics.height, n = w * h
        let camera = Camera(intrinsics)
        let base = Float(noise.base), quadratic = Float(noise.quadratic), offset = Float(noise.offset)
        for k in keys.indices { keys[k] = .max }
        var chosen = [Int32](repeating: -1, count: n)
        map.withKernelInputs { m in
        rays.x.withKernelInput { rayX in
        rays.y.withKernelInput { rayY in
        front.withKernelInput { front in
        keys.withKernelOutput { keys in
            ParallelFor.strided(map.count, workers: workers, batch: ParallelFor.surfelRun, threads: threads) { k, _, surfels in
                let key = keys.slice((k * n)..<((k + 1) * n))
                for i in surfels {
                    guard drawn.includes(m, i), let disc = Disc(m, i, T, camera, width: w, height: h, maxPixelRadius: maxPixelRadius) else { continue }
                    let pz = disc.p.z
                    let tolerance = 2 * (base + quadratic * (pz - offset) * (pz - offset))
                    for y in disc.y0...disc.y1 {
                        let ry = rayY[y]
                        let dv = Float(y) - disc.v
                        for x in disc.x0...disc.x1 {
                            let pix = y * w + x
                            let nearest = front[pix]
                            guard nearest > 0, let z = disc.depth(along: SIMD3(rayX[x], ry, 1)) else { continue }
                            guard z <= nearest + tolerance else { continue }
                            let du = Float(x) - disc.u
                            let candidate = UInt64((du * du + dv * dv).bitPattern) << 32 | UInt64(UInt32(i))
                            if candidate < key[pix] { key[pix] = candidate }
                        }
                    }
                }
            }
        }}}}}
        keys.withKernelInput { keys in
        chosen.withKernelOutput { out in
            ParallelFor.run(h, chunks: threads > 1 ? 4 * threads : 1, threads: threads) { _, rows in
                for pix in (rows.lowerBound * w)..<(rows.upperBound * w) {
                    var best = keys[pix]
                    for k in 1..<workers { best = min(best, keys[k * n + pix]) }
                    if best != .max { out[pix] = Int32(bitPattern: UInt32(truncatingIfNeeded: best)) }
                }
            }
        }}
        return chosen
    }

    /// The pinhole in Float, as the splat loops use it.
    private struct Camera {
        let fx: Float, fy: Float, cx: Float, cy: Float
        init(_ k: Intrinsics) { fx = Float(k.fx); fy = Float(k.fy); cx = Float(k.cx); cy = Float(k.cy) }
    }

    /// Which surfels a render draws: confidence, last seen within [oldest, newest], made by.
    struct Drawn {
        let minConf: Float, oldest: Int32, newest: Int32, madeBy: Int32
        @inline(__always) func includes(_ m: SurfelMap.KernelInputs, _ i: Int) -> Bool {
            m.confidences[i] >= minConf && m.lastSeen[i] >= oldest && m.lastSeen[i] <= newest && m.initTimes[i] <= madeBy
        }
    }

    /// One surfel as a disc in the camera: its centre, normal and radius there, where its centre
    /// projects, and the pixel box it may cover. Both splat passes use it, so they agree on
    /// which pixels a disc covers and at what depth.
    private struct Disc {
        let p: SIMD3<Float>, normal: SIMD3<Float>, radius: Float, normalDotCentre: Float
        let u: Float, v: Float
        let x0: Int, x1: Int, y0: Int, y1: Int

        /// nil when the surfel is behind the camera (or within 5 cm of it) or covers no pixel.
        @inline(__always) init?(_ m: SurfelMap.KernelInputs, _ i: Int, _ T: RigidTransformF, _ c: Camera,
                                width w: Int, height h: Int, maxPixelRadius: Float) {
            p = T.apply(m.positions[i])
            guard p.z > 0.05 else { return nil }
            normal = T.rotate(m.normals[i])
            radius = m.radii[i]
            u = c.fx * p.x / p.z + c.cx
            v = c.fy * p.y / p.z + c.cy
            let pr = min(maxPixelRadius, max(0.5, radius * max(abs(c.fx), abs(c.fy)) / p.z))
            // The pixel box, clamped in floating point first so a surfel far outside the image (or
            // a non-finite one read from a file) converts no out-of-range value to Int.
            guard u.isFinite, v.isFinite, pr.isFinite else { return nil }
            x0 = Int(min(max((u - pr).rounded(.up), 0), Float(w))); x1 = Int(max(min((u + pr).rounded(.down), Float(w - 1)), -1))
            y0 = Int(min(max((v - pr).rounded(.up), 0), Float(h))); y1 = Int(max(min((v + pr).rounded(.down), Float(h - 1)), -1))
            guard x0 <= x1, y0 <= y1 else { return nil }
            normalDotCentre = normal.dot(p)
        }

        /// Depth along z where the ray `d` (z = 1) meets the disc, nil outside it; a disc seen
        /// edge-on keeps its centre's depth.
        @inline(__always) func depth(along d: SIMD3<Float>) -> Float? {
            let nd = normal.dot(d)
            guard abs(nd) > 1e-3 else { return p.z }
            let t = normalDotCentre / nd
            let e = d * t - p
            guard t > 0, e.dot(e) <= radius * radius else { return nil }
            return t
        }
    }
}
