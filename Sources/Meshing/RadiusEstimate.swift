import Foundation

extension SurfelMesher {
    /// Which neighbour's distance becomes an estimated radius. A surfel of ElasticFusion reaches
    /// about √2 times the spacing of the pixels it came from: the distance to the 5th-8th
    /// nearest neighbour on an even grid, and to about the 6th on random samples of a surface.
    public static let radiusNeighbour = 6

    /// Points a radius search examines before it settles for the k nearest it has seen: a crowd
    /// of near-duplicates (one cell holding much of a crafted or badly merged cloud) would
    /// otherwise cost every one of its points a scan of all the others.
    static let maximumCandidates = 1_024

    /// Per point, the distance to its `radiusNeighbour`-th nearest neighbour: the disc size of a
    /// cloud that has no radius (an oriented point cloud from another tool), so its surface is
    /// covered without holes at whatever spacing it was sampled.
    ///
    /// Neighbours are searched in grids of doubling cells, starting near the spacing the cloud's
    /// extent suggests, so dense and sparse parts each find theirs at their own scale. A point
    /// that is not finite gets 0 (meshing skips it anyway); when the whole cloud has no more
    /// than `radiusNeighbour` points, each gets the distance to its farthest neighbour.
    public static func estimatedRadii(_ positions: [SIMD3<Float>], threads: Int = 1) -> [Float] {
        var radii = [Float](repeating: 0, count: positions.count)
        let finite = positions.indices.filter { i in
            let p = positions[i]
            return p.x.isFinite && p.y.isFinite && p.z.isFinite
        }
        guard finite.count > 1 else { return radii }
        var lo = positions[finite[0]], hi = lo
        for i in finite { lo = pointwiseMin(lo, positions[i]); hi = pointwiseMax(hi, positions[i]) }
        let diagonal = ((hi - lo) * (hi - lo)).sum().squareRoot()
        guard diagonal > 0 else { return radii }
        let k = min(radiusNeighbour, finite.count - 1)  // at most 8: the search keeps them in a SIMD8
        let points = finite.map { positions[$0] }
        let ids = finite.map { Int32($0) }
        // A surface of n points spaced s spans about s·√n across, so start near that spacing: a
        // smaller cell costs a round (a sort of every point), a larger one scans more neighbours.
        // On the kitchen's 820k points a quarter of it took 2.2 s, this 1.25 s.
        var cell = max(diagonal / Float(finite.count).squareRoot(), diagonal * 1e-6)
        var pending = finite
        while !pending.isEmpty {
            // Once a cell spans the whole cloud, every point's neighbours are in reach.
            let last = cell >= diagonal
            let grid = SurfelGrid(positions: points, ids: ids, cell: cell)
            var found = [Float](repeating: -1, count: pending.count)
            found.withUnsafeMutableBufferPointer { out in
                nonisolated(unsafe) let out = out
                parallelFor(pending.count, threads: threads) { j in
                    let i = pending[j], p = positions[i]
                    // The k smallest squared distances within one cell, ascending.
                    var nearest = SIMD8<Float>(repeating: .infinity)
                    let reach = last ? Float.infinity : cell * cell
                    var examined = 0
                    grid.scan(near: p) { other in
                        examined += 1
                        guard other != i else { return true }
                        let d = positions[other] - p
                        let d2 = (d * d).sum()
                        if d2 <= reach, d2 < nearest[k - 1] {
                            var slot = k - 1
                            while slot > 0 && nearest[slot - 1] > d2 { nearest[slot] = nearest[slot - 1]; slot -= 1 }
                            nearest[slot] = d2
                        }
                        // k duplicates cannot be beaten; in a crowd, what was seen is an upper bound.
                        return nearest[k - 1] > 0 && examined < maximumCandidates
                    }
                    // Every point within one cell lies in the 27 cells searched, so k of them
                    // found within a cell are the k nearest (unless a crowd cut the search short:
                    // then a radius at least as large, which meshing clamps to its voxels anyway;
                    // or found too few, and the next, coarser round looks again).
                    if nearest[k - 1].isFinite { out[j] = nearest[k - 1].squareRoot() }
                }
            }
            var next: [Int] = []
            for (j, i) in pending.enumerated() {
                if found[j] >= 0 { radii[i] = found[j] } else { next.append(i) }
            }
            // After a round with everything in reach, a point still without k distances has none
            // that is finite (coordinates so large their squares overflow): it keeps 0.
            pending = last ? [] : next
            cell *= 2
        }
        return radii
    }
}
