import Foundation
import Geometry

/// Which surfel is visible at each pixel, rendered from a camera pose with a z-buffer
/// (ElasticFusion's index map at FACTOR 1: active surfels drawn as 1-pixel points).
///
/// Association, label fusion and cleanup look surfels up through it; it also keeps each visible
/// surfel's camera-frame position so lookups need no transform.
public struct IndexMap: Sendable {
    public private(set) var width: Int = 0
    public private(set) var height: Int = 0
    /// Surfel index per pixel, -1 where empty.
    public internal(set) var surfel: [Int32] = []
    /// Camera-frame position of the visible surfel (z = +inf where empty); empty when rendered
    /// with `positions: false`.
    public internal(set) var cameraPosition: [SIMD3<Float>] = []
    /// Its z alone (+inf where empty): a compact copy for neighbourhood scans.
    public internal(set) var depth: [Float] = []
    // Depth test keys, one image per worker, back to back: (depth bits << 32 | surfel index).
    // For positive floats the bit pattern orders like the value, so the smallest key is the
    // nearest surfel, ties going to the lower index whatever the thread count.
    private var keys: [UInt64] = []
    /// With `recordInView`: the surfels the last render looked at that are active, in front of
    /// the camera and project inside the image, at any depth (`maxDepth` aside), in index order.
    /// Fusion moves only surfels this map showed and appends new ones, so after fusion these
    /// and the new surfels are all that can be in view (the post-fusion render and the
    /// cleanup visit only them). Valid until the map is compacted or reordered.
    public internal(set) var inView: [Int32] = []
    // Per run of `share` visited surfels: its part of `inView`, written at the run's start, and
    // how many it holds.
    private var inViewScratch: [Int32] = []
    private var inViewCounts: [Int] = []

    public init() {}

    @inlinable public func index(x: Int, y: Int) -> Int32 { surfel[y * width + x] }

    /// Read-only views of the per-pixel arrays for one kernel call (`KernelMemory.swift`).
    struct KernelInputs {
        let surfel: KernelInput<Int32>, cameraPosition: KernelInput<SIMD3<Float>>, depth: KernelInput<Float>
    }

    func withKernelInputs<R>(_ body: (KernelInputs) throws -> R) rethrows -> R {
        try surfel.withKernelInput { surfel in
        try cameraPosition.withKernelInput { cameraPosition in
        try depth.withKernelInput { depth in
            try body(KernelInputs(surfel: surfel, cameraPosition: cameraPosition, depth: depth))
        }}}
    }

    /// Draws the active surfels (`tick - lastSeen <= timeDelta`) of `map` seen from
    /// `cameraFromWorld`. The result does not depend on the number of threads. `positions: false`
    /// leaves `cameraPosition` empty: resolving every pixel's surfel position is a random read of
    /// the map per pixel, and the post-fusion map's users need only a few (the cleanup's
    /// duplicate candidates, which transform them themselves). `only` restricts the render to a
    /// list of surfels and every surfel from `newFrom` on (the post-fusion render passes the
    /// first render's `inView`); `recordInView` fills `inView`.
    public mutating func render(_ map: SurfelMap, cameraFromWorld: RigidTransform, intrinsics: Intrinsics,
                                tick: Int, timeDelta: Int, maxDepth: Float, threads: Int, positions: Bool = true,
                                recordInView: Bool = false, only candidates: (list: [Int32], newFrom: Int)? = nil) {
        let count = map.count
        // The surfels visited: all, or the candidates and every surfel from `newFrom` on.
        let listed = candidates.map { $0.list.count } ?? 0
        let newFrom = candidates.map { min(max($0.newFrom, 0), count) } ?? 0
        let visited = candidates == nil ? count : listed + (count - newFrom)
        let w = intrinsics.width, h = intrinsics.height, n = w * h
        let workers = max(1, min(threads, visited / 4_096 + 1))
        if w != width || h != height || surfel.count != n {
            width = w; height = h
            surfel = [Int32](repeating: -1, count: n)
            depth = [Float](repeating: .infinity, count: n)
            cameraPosition = []
        }
        if positions && cameraPosition.count != n {
            cameraPosition = [SIMD3<Float>](repeating: SIMD3(0, 0, .infinity), count: n)
        } else if !positions && !cameraPosition.isEmpty {
            cameraPosition = []
        }
        if keys.count < workers * n { keys = [UInt64](repeating: .max, count: workers * n) }
        let batches = (visited + Self.share - 1) / Self.share
        if recordInView {
            if inViewScratch.count < visited { inViewScratch = [Int32](repeating: 0, count: visited) }
            if inViewCounts.count < batches { inViewCounts = [Int](repeating: 0, count: batches) }
        }
        let T = cameraFromWorld.float
        let fx = Float(intrinsics.fx), fy = Float(intrinsics.fy), cx = Float(intrinsics.cx), cy = Float(intrinsics.cy)
        let oldest = Int32(clamping: tick - timeDelta)
        let maxU = Float(w), maxV = Float(h)
        let list = candidates?.list ?? []
        map.withKernelInputs { m in
        keys.withKernelOutput { keys in
        list.withKernelInput { list in
        inViewScratch.withKernelOutput { record in
        inViewCounts.withKernelOutput { recorded in
            // Each worker z-buffers its own share of the surfels into its own key image: every
            // `workers`-th run of `share` surfels, so the surfels in view, bunched in the
            // spatially ordered map, are split evenly.
            ParallelFor.run(workers, chunks: workers, threads: threads) { k, _ in keys.slice((k * n)..<((k + 1) * n)).fill(.max) }
            ParallelFor.strided(visited, workers: workers, batch: Self.share, threads: threads) { k, b, share in
                let key = keys.slice((k * n)..<((k + 1) * n))
                var kept = 0
                // The depth test is a read of a random pixel of a key image larger than the
                // cache; it stalled on that read. So surfels go in batches: project a batch and
                // start loading its pixels' keys, then test them (by then mostly in cache).
                withUnsafeTemporaryAllocation(of: (pixel: Int, candidate: UInt64).self, capacity: Self.batch) { pending in
                    var start = share.lowerBound
                    while start < share.upperBound {
                        let end = min(start + Self.batch, share.upperBound)
                        var queued = 0
                        for j in start..<end {
                            let i = candidates == nil ? j : (j < listed ? Int(list[j]) : newFrom + (j - listed))
                            guard m.lastSeen[i] >= oldest else { continue }
                            let pc = T.apply(m.positions[i])
                            guard pc.z > 0 else { continue }
                            let u = (fx * pc.x / pc.z + cx + 0.5).rounded(.down)
                            let v = (fy * pc.y / pc.z + cy + 0.5).rounded(.down)
                            guard u >= 0, v >= 0, u < maxU, v < maxV else { continue }
                            if recordInView { record[share.lowerBound + kept] = Int32(i); kept += 1 }
                            guard pc.z <= maxDepth else { continue }
                            let p = Int(v) * w + Int(u)
                            key.prefetch(p)
                            pending[queued] = (p, UInt64(pc.z.bitPattern) << 32 | UInt64(UInt32(i)))
                            queued += 1
                        }
                        for j in 0..<queued {
                            let (p, candidate) = pending[j]
                            key[p] = min(key[p], candidate)
                        }
                        start = end
                    }
                }
                if recordInView { recorded[b] = kept }
            }
            // Merge the workers' key images and resolve ids and camera positions.
            surfel.withKernelOutput { ids in
            cameraPosition.withKernelOutput { cam in
            depth.withKernelOutput { zs in
                ParallelFor.run(n, chunks: threads, threads: threads) { _, pixels in
                    for p in pixels {
                        var best = keys[p]
                        for k in 1..<workers { best = min(best, keys[k * n + p]) }
                        if best == .max {
                            ids[p] = -1
                            if positions { cam[p] = SIMD3(0, 0, .infinity) }
                            zs[p] = .infinity
                        } else {
                            let i = Int(UInt32(truncatingIfNeeded: best))
                            ids[p] = Int32(i)
                            // The key's high half is the depth test's z, bit for bit.
                            zs[p] = Float(bitPattern: UInt32(truncatingIfNeeded: best >> 32))
                            if positions { cam[p] = T.apply(m.positions[i]) }
                        }
                    }
                }
            }}}
        }}}}}
        inView.removeAll(keepingCapacity: true)
        if recordInView {
            // The runs' parts, in order, as one list.
            for b in 0..<batches {
                let start = b * Self.share
                inView.append(contentsOf: inViewScratch[start..<(start + inViewCounts[b])])
            }
        }
    }

    /// Surfels projected before their pixels' depth tests (enough to cover the latency of the
    /// keys' loads, few enough that the keys stay in cache until tested).
    static let batch = 64
    /// Surfels per run handed to one worker (a multiple of `batch`).
    static let share = ParallelFor.surfelRun

    /// Renumbers surfels after the map was compacted (`removed`: the compaction's flags).
    mutating func remapSurfels(_ compaction: SurfelMap.Compaction, removed: [Bool]) {
        removed.withKernelInput { removed in
        surfel.withKernelOutput { ids in
        cameraPosition.withKernelOutput { cam in
        depth.withKernelOutput { zs in
            for p in 0..<ids.count where ids[p] >= 0 {
                let old = Int(ids[p])
                let n = compaction.newIndex(old, removed: removed[old])
                ids[p] = n
                if n < 0 {
                    if cam.count > 0 { cam[p] = SIMD3(0, 0, .infinity) }
                    zs[p] = .infinity
                }
            }
        }}}}
    }

    /// Renumbers surfels after the map was reordered (`newIndex[old]`, `SurfelMap.sortSpatially`).
    mutating func remapSurfels(_ newIndex: [Int32]) {
        newIndex.withKernelInput { newIndex in
        surfel.withKernelOutput { ids in
            for p in 0..<ids.count where ids[p] >= 0 { ids[p] = newIndex[Int(ids[p])] }
        }}
    }

    /// Number of pixels showing a surfel.
    public var filledCount: Int { surfel.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}
