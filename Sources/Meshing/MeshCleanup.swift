/// Removes connected pieces of a mesh that are too small to be surface.
enum MeshCleanup {
    /// Drops the faces of components (faces connected through shared vertices) with fewer than
    /// `minimumFaces` faces, and the vertices no remaining face uses; keeps the order of the rest.
    static func dropSmallComponents(_ positions: [SIMD3<Float>], _ faces: [SIMD3<UInt32>],
                                    minimumFaces: Int) -> ([SIMD3<Float>], [SIMD3<UInt32>]) {
        var parent = [Int32](0..<Int32(clamping: positions.count))
        func find(_ x: Int32) -> Int32 {
            var x = x
            while parent[Int(x)] != x {
                parent[Int(x)] = parent[Int(parent[Int(x)])]
                x = parent[Int(x)]
            }
            return x
        }
        func union(_ a: UInt32, _ b: UInt32) {
            let ra = find(Int32(a)), rb = find(Int32(b))
            if ra != rb { parent[Int(max(ra, rb))] = min(ra, rb) }
        }
        for f in faces { union(f.x, f.y); union(f.y, f.z) }
        var size = [Int32](repeating: 0, count: positions.count)
        for f in faces { size[Int(find(Int32(f.x)))] += 1 }
        var remap = [Int32](repeating: -1, count: positions.count)
        var keptFaces: [SIMD3<UInt32>] = []
        keptFaces.reserveCapacity(faces.count)
        for f in faces where size[Int(find(Int32(f.x)))] >= minimumFaces {
            for v in [f.x, f.y, f.z] { remap[Int(v)] = 0 }
            keptFaces.append(f)
        }
        var keptPositions: [SIMD3<Float>] = []
        keptPositions.reserveCapacity(positions.count)
        for v in 0..<positions.count where remap[v] == 0 {
            remap[v] = Int32(keptPositions.count)
            keptPositions.append(positions[v])
        }
        for i in keptFaces.indices {
            let f = keptFaces[i]
            keptFaces[i] = SIMD3(UInt32(remap[Int(f.x)]), UInt32(remap[Int(f.y)]), UInt32(remap[Int(f.z)]))
        }
        return (keptPositions, keptFaces)
    }
}
