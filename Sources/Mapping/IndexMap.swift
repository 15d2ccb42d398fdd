import Foundation
import Geometry

/// Which surfel is visible at each pixel, rendered from a camera pose with a z-buffer
/// (ElasticFusion's index map at FACTOR 1: active surfels drawn as 1-pixel points).
///
/// Association, label fusion and cleanup look surfels up through it; it also keeps each visible
/// surfel's camera-frame position so lookups need no transform.
public struct IndexMap: @unchecked Sendable {
    public private(set) var width: Int = 0
    public private(set) var height: Int = 0
    /// Surfel index per pixel, -1 where empty.
    public internal(set) var surfel: [Int32] = []
    /// Camera-frame position of the visible surfel (z = +inf where empty).
    public internal(set) var cameraPosition: [SIMD3<Float>] = []
    /// Its z alone (+inf where empty): a compact copy for neighbourhood scans.
    public internal(set) var depth: [Float] = []
    // Depth test keys, one buffer per worker: (depth bits << 32 | surfel index). For positive
    // floats the bit pattern orders like the value, so the smallest key is the nearest surfel,
    // ties going to the lower index whatever the thread count.
    private var keys: [[UInt64]] = []

    public init() {}

    @inlinable public func index(x: Int, y: Int) -> Int32 { surfel[y * width + x] }

    /// Draws the active surfels (`tick - lastSeen <= timeDelta`) of `map` seen from
    /// `cameraFromWorld`. The result does not depend on the number of threads.
    public mutating func render(_ map: SurfelMap, cameraFromWorld: RigidTransform, intrinsics: Intrinsics,
                                tick: Int, timeDelta: Int, maxDepth: Float, threads: Int) {
        let count = map.count
        let w = intrinsics.width, h = intrinsics.height, n = w * h
        let workers = max(1, min(threads, count / 4_096 + 1))
        if w != width || h != height || surfel.count != n {
            width = w; height = h
            surfel = [Int32](repeating: -1, count: n)
            cameraPosition = [SIMD3<Float>](repeating: SIMD3(0, 0, .infinity), count: n)
            depth = [Float](repeating: .infinity, count: n)
            keys = []
        }
        while keys.count < workers { keys.append([UInt64](repeating: .max, count: n)) }
        let T = cameraFromWorld.float
        let fx = Float(intrinsics.fx), fy = Float(intrinsics.fy), cx = Float(intrinsics.cx), cy = Float(intrinsics.cy)
        let oldest = Int32(clamping: tick - timeDelta)
        var pointers: [UnsafeMutablePointer<UInt64>] = []
        for k in 0..<workers { keys[k].withUnsafeMutableBufferPointer { pointers.append($0.baseAddress!) } }
        nonisolated(unsafe) let targets = pointers
        map.positions.withUnsafeBufferPointer { positions in
            map.lastSeen.withUnsafeBufferPointer { lastSeen in
                nonisolated(unsafe) let positions = positions, lastSeen = lastSeen
                DispatchQueueRunner.run(workers) { k in
                    let key = targets[k]
                    key.update(repeating: .max, count: n)
                    let lo = count * k / workers, hi = count * (k + 1) / workers
                    let maxU = Float(w), maxV = Float(h)
                    for i in lo..<hi where lastSeen[i] >= oldest {
                        let pc = T.apply(positions[i])
                        guard pc.z > 0, pc.z <= maxDepth else { continue }
                        let u = (fx * pc.x / pc.z + cx + 0.5).rounded(.down)
                        let v = (fy * pc.y / pc.z + cy + 0.5).rounded(.down)
                        guard u >= 0, v >= 0, u < maxU, v < maxV else { continue }
                        let p = Int(v) * w + Int(u)
                        let candidate = UInt64(pc.z.bitPattern) << 32 | UInt64(UInt32(i))
                        if candidate < key[p] { key[p] = candidate }
                    }
                }
                // Merge the workers' buffers and resolve ids and camera positions.
                surfel.withUnsafeMutableBufferPointer { ids in
                    cameraPosition.withUnsafeMutableBufferPointer { cam in
                    depth.withUnsafeMutableBufferPointer { zs in
                        nonisolated(unsafe) let ids = ids, cam = cam, zs = zs
                        parallelChunks(n, chunks: threads, threads: threads) { range in
                            for p in range {
                                var best = targets[0][p]
                                for k in 1..<workers { best = min(best, targets[k][p]) }
                                if best == .max {
                                    ids[p] = -1
                                    cam[p] = SIMD3(0, 0, .infinity)
                                    zs[p] = .infinity
                                } else {
                                    let i = Int(UInt32(truncatingIfNeeded: best))
                                    ids[p] = Int32(i)
                                    let c = T.apply(positions[i])
                                    cam[p] = c
                                    zs[p] = c.z
                                }
                            }
                        }
                    }
                    }
                }
            }
        }
    }

    /// Renumbers surfels after the map was compacted (`remap[old]` = new index or -1).
    mutating func remapSurfels(_ remap: [Int32]) {
        for p in 0..<surfel.count where surfel[p] >= 0 {
            let n = remap[Int(surfel[p])]
            surfel[p] = n
            if n < 0 { cameraPosition[p] = SIMD3(0, 0, .infinity); depth[p] = .infinity }
        }
    }

    /// Number of pixels showing a surfel.
    public var filledCount: Int { surfel.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}

/// Runs `body(k)` for k in 0..<n concurrently (n = 1 runs inline).
enum DispatchQueueRunner {
    static func run(_ n: Int, threads: Int = .max, _ body: (Int) -> Void) {
        if n <= 1 || threads <= 1 { for k in 0..<n { body(k) }; return }
        DispatchQueue.concurrentPerform(iterations: n, execute: body)
    }
}
