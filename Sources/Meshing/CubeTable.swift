/// The marching-cubes case table, generated from first principles instead of transcribed.
///
/// For each of the 256 inside/outside patterns of a cube's corners, the isosurface crosses the
/// cube's faces along segments; chained around the cube those segments form closed polygons,
/// which are fanned into triangles. Every face resolves its ambiguous pattern (two diagonal
/// corners inside) the same way whichever cube it belongs to (the inside corners are cut off
/// separately), so neighbouring cubes always agree on the segments of the face they share and
/// the surface has no cracks. Triangles are wound so their normals point from inside (negative
/// values) to outside (positive values).
enum CubeTable {
    /// Corner k of the unit cube sits at (k & 1, (k >> 1) & 1, (k >> 2) & 1).
    static func corner(_ k: Int) -> SIMD3<Int32> {
        SIMD3(Int32(k & 1), Int32((k >> 1) & 1), Int32((k >> 2) & 1))
    }

    /// The 12 edges: from corner `a` along `axis` to corner `a | (1 << axis)`.
    static let edges: [(a: Int, b: Int, axis: Int)] = {
        var list: [(a: Int, b: Int, axis: Int)] = []
        for axis in 0..<3 {
            for a in 0..<8 where a & (1 << axis) == 0 { list.append((a, a | (1 << axis), axis)) }
        }
        return list
    }()

    /// Edge id between two corners that differ in one coordinate.
    static func edge(_ p: Int, _ q: Int) -> Int {
        let a = min(p, q), b = max(p, q)
        return edges.firstIndex { $0.a == a && $0.b == b }!
    }

    /// `triangles[pattern]`: edge ids, three per triangle. Bit k of `pattern` is set when
    /// corner k is inside (value < 0).
    static let triangles: [[UInt8]] = (0..<256).map(triangulate)

    private static func triangulate(_ pattern: Int) -> [UInt8] {
        func inside(_ k: Int) -> Bool { pattern & (1 << k) != 0 }
        // successor[e]: where the surface's boundary curve goes after crossing edge e.
        var successor = [Int](repeating: -1, count: 12)
        for axis in 0..<3 {
            for side in 0..<2 {
                let u = (axis + 1) % 3, v = (axis + 2) % 3
                // Counter-clockwise seen from outside the cube: (u, v) order for the +axis face,
                // reversed for the -axis face.
                var ring = [(0, 0), (1, 0), (1, 1), (0, 1)].map { side << axis | $0.0 << u | $0.1 << v }
                if side == 0 { ring.reverse() }
                // Each run of inside corners along the ring is cut off by one segment, from the
                // crossing where the run ends to the crossing where it began.
                for i in 0..<4 where inside(ring[i]) && !inside(ring[(i + 3) % 4]) {
                    let entering = edge(ring[(i + 3) % 4], ring[i])
                    var j = i
                    while inside(ring[(j + 1) % 4]) { j = (j + 1) % 4 }
                    let leaving = edge(ring[j], ring[(j + 1) % 4])
                    successor[leaving] = entering
                }
            }
        }
        var result: [UInt8] = []
        var visited = [Bool](repeating: false, count: 12)
        for start in 0..<12 where successor[start] >= 0 && !visited[start] {
            var loop: [Int] = []
            var e = start
            while !visited[e] {
                visited[e] = true
                loop.append(e)
                e = successor[e]
            }
            // The loop runs with the inside on its left seen from outside the cube, so its own
            // orientation faces inward: fan it in reverse.
            for i in 1..<(loop.count - 1) {
                result += [UInt8(loop[0]), UInt8(loop[i + 1]), UInt8(loop[i])]
            }
        }
        return result
    }
}
