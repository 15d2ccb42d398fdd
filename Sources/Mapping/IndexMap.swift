import Geometry

/// Which surfel is visible at each pixel, rendered from a camera pose with a z-buffer
/// (ElasticFusion's index map at FACTOR 1: active surfels drawn as 1-pixel points).
///
/// Association and label fusion look surfels up through it; it also keeps each visible surfel's
/// camera-frame position so lookups need no transform.
public struct IndexMap: @unchecked Sendable {
    public private(set) var width: Int = 0
    public private(set) var height: Int = 0
    /// Surfel index per pixel, -1 where empty.
    public internal(set) var surfel: [Int32] = []
    /// Camera-frame position of the visible surfel (z = +inf where empty).
    public internal(set) var cameraPosition: [SIMD3<Float>] = []
    // One z-buffer per extra worker, merged after drawing.
    private var scratchSurfel: [[Int32]] = []
    private var scratchPosition: [[SIMD3<Float>]] = []

    public init() {}

    @inlinable public func index(x: Int, y: Int) -> Int32 { surfel[y * width + x] }

    private mutating func reset(width w: Int, height h: Int, workers: Int) {
        if w != width || h != height {
            width = w; height = h
            surfel = [Int32](repeating: -1, count: w * h)
            cameraPosition = [SIMD3<Float>](repeating: SIMD3(0, 0, .infinity), count: w * h)
            scratchSurfel = []; scratchPosition = []
        } else {
            for i in 0..<surfel.count { surfel[i] = -1; cameraPosition[i] = SIMD3(0, 0, .infinity) }
        }
        while scratchSurfel.count < workers - 1 {
            scratchSurfel.append([Int32](repeating: -1, count: w * h))
            scratchPosition.append([SIMD3<Float>](repeating: SIMD3(0, 0, .infinity), count: w * h))
        }
        for k in 0..<(workers - 1) {
            for i in 0..<(w * h) { scratchSurfel[k][i] = -1; scratchPosition[k][i] = SIMD3(0, 0, .infinity) }
        }
    }

    /// Draws the active surfels (`tick - lastSeen <= timeDelta`) of `map` seen from
    /// `cameraFromWorld`. The nearest surfel wins; equal depths go to the lower index, so the
    /// result does not depend on the number of threads.
    public mutating func render(_ map: SurfelMap, cameraFromWorld: RigidTransform, intrinsics: Intrinsics,
                                tick: Int, timeDelta: Int, maxDepth: Float, threads: Int) {
        let count = map.count
        let workers = max(1, min(threads, count / 20_000 + 1))
        reset(width: intrinsics.width, height: intrinsics.height, workers: workers)
        let T = cameraFromWorld.float
        let fx = Float(intrinsics.fx), fy = Float(intrinsics.fy), cx = Float(intrinsics.cx), cy = Float(intrinsics.cy)
        let w = width, h = height
        let oldest = Int32(clamping: tick - timeDelta)
        map.positions.withUnsafeBufferPointer { positions in
            map.lastSeen.withUnsafeBufferPointer { lastSeen in
                nonisolated(unsafe) let positions = positions, lastSeen = lastSeen
                // Each worker draws a contiguous slice of surfels into its own buffers.
                var buffers: [(UnsafeMutablePointer<Int32>, UnsafeMutablePointer<SIMD3<Float>>)] = []
                surfel.withUnsafeMutableBufferPointer { s in
                    cameraPosition.withUnsafeMutableBufferPointer { p in buffers.append((s.baseAddress!, p.baseAddress!)) }
                }
                for k in 0..<(workers - 1) {
                    scratchSurfel[k].withUnsafeMutableBufferPointer { s in
                        scratchPosition[k].withUnsafeMutableBufferPointer { p in buffers.append((s.baseAddress!, p.baseAddress!)) }
                    }
                }
                nonisolated(unsafe) let targets = buffers
                DispatchQueueRunner.run(workers) { k in
                    let lo = count * k / workers, hi = count * (k + 1) / workers
                    let (ids, pos) = targets[k]
                    for i in lo..<hi where lastSeen[i] >= oldest {
                        let pc = T.apply(positions[i])
                        guard pc.z > 0, pc.z <= maxDepth else { continue }
                        let u = (fx * pc.x / pc.z + cx + 0.5).rounded(.down)
                        let v = (fy * pc.y / pc.z + cy + 0.5).rounded(.down)
                        guard u >= 0, v >= 0, u < Float(w), v < Float(h) else { continue }
                        let p = Int(v) * w + Int(u)
                        if pc.z < pos[p].z || (pc.z == pos[p].z && Int32(i) < ids[p]) {
                            pos[p] = pc
                            ids[p] = Int32(i)
                        }
                    }
                }
                // Merge the workers' buffers: nearest wins, ties to the lower index.
                if workers > 1 {
                    let (ids0, pos0) = targets[0]
                    for k in 1..<workers {
                        let (ids, pos) = targets[k]
                        for p in 0..<(w * h) where ids[p] >= 0 {
                            if pos[p].z < pos0[p].z || (pos[p].z == pos0[p].z && ids[p] < ids0[p]) {
                                pos0[p] = pos[p]; ids0[p] = ids[p]
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
            if n < 0 { cameraPosition[p] = SIMD3(0, 0, .infinity) }
        }
    }

    /// Number of pixels showing a surfel.
    public var filledCount: Int { surfel.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}

import Foundation

/// Runs `body(k)` for k in 0..<n concurrently (n = 1 runs inline).
enum DispatchQueueRunner {
    static func run(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { body(0); return }
        DispatchQueue.concurrentPerform(iterations: n, execute: body)
    }
}
