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
        public init(minimumConfidence: Float? = nil, activeWithin: Int? = nil, tick: Int = 0) {
            self.minimumConfidence = minimumConfidence; self.activeWithin = activeWithin; self.tick = tick
        }
    }

    /// Per-pixel result of a render: surfel index (-1 empty), camera-frame depth along z (0
    /// empty), camera-frame point and normal.
    public struct Output: @unchecked Sendable {
        public var width: Int
        public var height: Int
        public var surfel: [Int32]
        public var depth: DepthImage
        public var vertices: [SIMD3<Float>]
        public var normals: [SIMD3<Float>]

        /// Colours every covered pixel; `color(i)` gives surfel i's colour.
        public func colorImage(background: RGB8 = RGB8(0, 0, 0), _ color: (Int) -> RGB8) -> ColorImage {
            ColorImage(width: width, height: height, pixels: surfel.map { $0 < 0 ? background : color(Int($0)) })
        }
    }

    public init() {}

    /// Renders `map` from `cameraFromWorld`. Discs larger than `maxPixelRadius` are clipped so a
    /// surfel right in front of the camera cannot flood the image.
    public func render(_ map: SurfelMap, cameraFromWorld: RigidTransform, intrinsics: Intrinsics,
                       selection: Selection = Selection(), maxPixelRadius: Float = 16, threads: Int = defaultThreadCount) -> Output {
        let w = intrinsics.width, h = intrinsics.height, n = w * h
        let count = map.count
        let workers = max(1, min(threads, count / 4_096 + 1))
        var keys = [[UInt64]](repeating: [UInt64](repeating: .max, count: n), count: workers)
        let T = cameraFromWorld.float
        let fx = Float(intrinsics.fx), fy = Float(intrinsics.fy), cx = Float(intrinsics.cx), cy = Float(intrinsics.cy)
        let minConf = selection.minimumConfidence ?? -.infinity
        let oldest: Int32 = selection.activeWithin.map { Int32(clamping: selection.tick - $0) } ?? .min
        var pointers: [UnsafeMutablePointer<UInt64>] = []
        for k in 0..<workers { keys[k].withUnsafeMutableBufferPointer { pointers.append($0.baseAddress!) } }
        nonisolated(unsafe) let targets = pointers
        map.positions.withUnsafeBufferPointer { positions in
        map.normals.withUnsafeBufferPointer { normals in
        map.radii.withUnsafeBufferPointer { radii in
        map.confidences.withUnsafeBufferPointer { conf in
        map.lastSeen.withUnsafeBufferPointer { lastSeen in
            nonisolated(unsafe) let positions = positions, normals = normals, radii = radii, conf = conf, lastSeen = lastSeen
            DispatchQueueRunner.run(workers) { k in
                let key = targets[k]
                for i in (count * k / workers)..<(count * (k + 1) / workers) {
                    guard conf[i] >= minConf, lastSeen[i] >= oldest else { continue }
                    let p = T.apply(positions[i])
                    guard p.z > 0.05 else { continue }
                    let nrm = T.rotate(normals[i])
                    let r = radii[i]
                    let u = fx * p.x / p.z + cx, v = fy * p.y / p.z + cy
                    let pr = min(maxPixelRadius, max(0.5, r * max(abs(fx), abs(fy)) / p.z))
                    let x0 = max(0, Int((u - pr).rounded(.up))), x1 = min(w - 1, Int((u + pr).rounded(.down)))
                    let y0 = max(0, Int((v - pr).rounded(.up))), y1 = min(h - 1, Int((v + pr).rounded(.down)))
                    guard x0 <= x1, y0 <= y1 else { continue }
                    let np = nrm.dot(p)
                    for y in y0...y1 {
                        for x in x0...x1 {
                            let d = SIMD3((Float(x) - cx) / fx, (Float(y) - cy) / fy, 1)
                            let nd = nrm.dot(d)
                            var z = p.z
                            if abs(nd) > 1e-3 {
                                let t = np / nd
                                let q = d * t
                                let e = q - p
                                guard t > 0, e.dot(e) <= r * r else { continue }
                                z = t
                            }
                            let candidate = UInt64(z.bitPattern) << 32 | UInt64(UInt32(i))
                            let pix = y * w + x
                            if candidate < key[pix] { key[pix] = candidate }
                        }
                    }
                }
            }
        }}}}}
        var surfel = [Int32](repeating: -1, count: n)
        var depthPixels = [Float](repeating: 0, count: n)
        var vertices = [SIMD3<Float>](repeating: .zero, count: n)
        var normalsOut = [SIMD3<Float>](repeating: .zero, count: n)
        // Resolve the per-worker z-buffers, rows in parallel (each pixel written once). `keys`
        // must outlive the raw pointers in `targets`.
        withExtendedLifetime(keys) {
        surfel.withUnsafeMutableBufferPointer { so in
        depthPixels.withUnsafeMutableBufferPointer { dO in
        vertices.withUnsafeMutableBufferPointer { vo in
        normalsOut.withUnsafeMutableBufferPointer { no in
        map.normals.withUnsafeBufferPointer { mn in
            nonisolated(unsafe) let so = so, dO = dO, vo = vo, no = no, mn = mn
            parallelChunks(h, chunks: threads > 1 ? 4 * threads : 1, threads: threads) { rows in
                for y in rows {
                    for x in 0..<w {
                        let pix = y * w + x
                        var best = targets[0][pix]
                        for k in 1..<workers { best = min(best, targets[k][pix]) }
                        guard best != .max else { continue }
                        let i = Int(UInt32(truncatingIfNeeded: best))
                        let z = Float(bitPattern: UInt32(best >> 32))
                        so[pix] = Int32(i)
                        dO[pix] = z
                        vo[pix] = SIMD3((Float(x) - cx) / fx * z, (Float(y) - cy) / fy * z, z)
                        no[pix] = T.rotate(mn[i])
                    }
                }
            }
        }}}}}}
        let depth = DepthImage(width: w, height: h, pixels: depthPixels)
        return Output(width: w, height: h, surfel: surfel, depth: depth, vertices: vertices, normals: normalsOut)
    }
}
