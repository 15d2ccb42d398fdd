import Foundation

/// Extracts the zero level of a `SparseVolume` as an indexed triangle mesh.
enum MarchingCubes {
    /// Voxel coordinates stay within ±2^18, so an edge packs into 64 bits (20 bits per
    /// coordinate after the offset, 2 for the axis).
    static let coordinateLimit: Int32 = 1 << 18

    @inline(__always) static func edgeKey(_ corner: SIMD3<Int32>, axis: Int) -> UInt64 {
        let o = Int32(1 << 19)
        return UInt64(UInt32(corner.x + o)) << 42 | UInt64(UInt32(corner.y + o)) << 22 | UInt64(UInt32(corner.z + o)) << 2 | UInt64(axis)
    }

    /// Cubes whose eight corners all carry at least `minimumWeight` make triangles; others are
    /// unobserved. Vertices on shared edges are shared, so the mesh is connected wherever the
    /// surface is.
    static func extract(_ volume: inout SparseVolume, minimumWeight: Float, threads: Int,
                        source: String) throws -> (positions: [SIMD3<Float>], faces: [SIMD3<UInt32>]) {
        let blockCount = volume.blockCount
        let side = SparseVolume.side, cells = SparseVolume.blockVoxels
        let voxel = volume.voxelSize
        // The block itself and its seven neighbours towards +x, +y, +z (offset bits as corners).
        var neighbours = [Int32](repeating: -1, count: blockCount * 8)
        for b in 0..<blockCount {
            for o in 0..<8 { neighbours[b * 8 + o] = volume.blockIndex[volume.blocks[b] &+ CubeTable.corner(o)] ?? -1 }
        }
        let table = CubeTable.triangles
        let edges = CubeTable.edges
        let corners = (0..<8).map(CubeTable.corner)
        let blocks = volume.blocks
        var keysPerBlock = [[UInt64]](repeating: [], count: blockCount)
        var pointsPerBlock = [[SIMD3<Float>]](repeating: [], count: blockCount)
        volume.distanceSum.withUnsafeBufferPointer { dist in
        volume.weightSum.withUnsafeBufferPointer { weight in
        keysPerBlock.withUnsafeMutableBufferPointer { keysOut in
        pointsPerBlock.withUnsafeMutableBufferPointer { pointsOut in
            nonisolated(unsafe) let dist = dist, weight = weight, keysOut = keysOut, pointsOut = pointsOut
            parallelFor(blockCount, threads: threads) { b in
                var keys: [UInt64] = [], points: [SIMD3<Float>] = []
                let origin = blocks[b] &* Int32(side)
                var value = [Float](repeating: 0, count: 8)
                for z in 0..<side {
                    for y in 0..<side {
                        cube: for x in 0..<side {
                            var pattern = 0
                            for k in 0..<8 {
                                let c = corners[k]
                                var lx = x + Int(c.x), ly = y + Int(c.y), lz = z + Int(c.z)
                                var o = 0
                                if lx == side { lx = 0; o |= 1 }
                                if ly == side { ly = 0; o |= 2 }
                                if lz == side { lz = 0; o |= 4 }
                                let block = neighbours[b * 8 + o]
                                if block < 0 { continue cube }
                                let cell = Int(block) * cells + SparseVolume.local(lx, ly, lz)
                                let w = weight[cell]
                                if !(w >= minimumWeight) || w <= 0 { continue cube }
                                let v = dist[cell] / w
                                value[k] = v
                                if v < 0 { pattern |= 1 << k }
                            }
                            let triangles = table[pattern]
                            if triangles.isEmpty { continue }
                            let base = origin &+ SIMD3(Int32(x), Int32(y), Int32(z))
                            for e in triangles {
                                let edge = edges[Int(e)]
                                let a = base &+ corners[edge.a]
                                let va = value[edge.a], vb = value[edge.b]
                                let t = va / (va - vb)
                                var p = SIMD3<Float>(Float(a.x), Float(a.y), Float(a.z))
                                p[edge.axis] += t.isFinite ? min(max(t, 0), 1) : 0.5
                                keys.append(edgeKey(a, axis: edge.axis))
                                points.append(p * voxel)
                            }
                        }
                    }
                }
                keysOut[b] = keys
                pointsOut[b] = points
            }
        }}}}
        // Shared vertices: each edge key gets one index, in block order (deterministic).
        var total = 0
        for keys in keysPerBlock { total += keys.count }
        var index: [UInt64: UInt32] = [:]
        index.reserveCapacity(total / 3)
        var positions: [SIMD3<Float>] = []
        positions.reserveCapacity(total / 3)
        var faces: [SIMD3<UInt32>] = []
        faces.reserveCapacity(total / 3)
        for b in 0..<blockCount {
            let keys = keysPerBlock[b], points = pointsPerBlock[b]
            var j = 0
            while j < keys.count {
                var tri = SIMD3<UInt32>()
                for c in 0..<3 {
                    let key = keys[j + c]
                    if let i = index[key] {
                        tri[c] = i
                    } else {
                        let i = UInt32(positions.count)
                        index[key] = i
                        positions.append(points[j + c])
                        tri[c] = i
                    }
                }
                j += 3
                // Degenerate when the surface passes exactly through a corner.
                let p0 = positions[Int(tri.x)], p1 = positions[Int(tri.y)], p2 = positions[Int(tri.z)]
                if p0 == p1 || p1 == p2 || p0 == p2 { continue }
                faces.append(tri)
            }
            keysPerBlock[b] = []; pointsPerBlock[b] = []
        }
        guard positions.count < Int(Int32.max) else {
            throw MeshingError.tooLarge(source: source, reason: "the mesh would have \(positions.count) vertices, more than PLY's int indices hold; choose a larger voxel size")
        }
        return (positions, faces)
    }
}
