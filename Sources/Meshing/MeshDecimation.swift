import Foundation

/// Coarsens a triangle mesh where it has more vertices than its data supports, by collapsing
/// short edges (half-edge collapses: a vertex moves onto a neighbour, so every vertex left is one
/// of the input's).
///
/// Marching cubes spreads vertices evenly, one or two per voxel of surface, whatever the density
/// of the surfels under it: a far wall seen once at low resolution gets as many vertices as a
/// table top seen from 50 cm in every frame. `SurfelMesher` gives each vertex a target edge
/// length from the surfels around it (`MeshingParameters.coarsening`), and this pass
/// collapses edges shorter than that target until the mesh's local vertex density follows the
/// surfels'. Geometry is kept within `maximumError` of the input surface (area-weighted plane
/// quadrics, Garland and Heckbert 1997). A border vertex moves only along the border, onto one
/// of its two border neighbours, and planes through the border edges across their faces enter
/// the quadrics, so the border's line is held to the same bound. A collapse that would fold a
/// triangle over, or make the surface non-manifold (the link condition of Dey et al.), is
/// refused.
enum MeshDecimation {
    /// What a decimation did.
    struct Result {
        var positions: [SIMD3<Float>]
        var faces: [SIMD3<UInt32>]
        /// Vertices removed by collapses.
        var collapsed: Int
    }

    /// About what `decimate` allocates for a mesh of this size (each vertex's face slots, plane
    /// quadric, flags and target; each face's copy, flag and candidate edges), checked against
    /// the meshing memory limit before it runs.
    static func workingBytes(vertices: Int, faces: Int) -> Int {
        let perVertex = 20 * MemoryLayout<Int32>.stride + MemoryLayout<Quadric>.stride + 16
        let perFace = MemoryLayout<SIMD3<Int32>>.stride + 1 + 3 * 8
        return vertices.multipliedReportingOverflow(by: perVertex).partialValue
            + faces.multipliedReportingOverflow(by: perFace).partialValue
    }

    /// Vertex ranges a pass runs at once (fewer for small meshes, at least 1024 vertices each).
    /// Fixed rather than following the thread count, so a mesh does not depend on the machine.
    static let defaultChunks = 16

    /// Area-weighted sum of squared distances to a set of planes: xᵀAx + 2bᵀx + c.
    struct Quadric {
        var a00 = 0.0, a01 = 0.0, a02 = 0.0, a11 = 0.0, a12 = 0.0, a22 = 0.0
        var b0 = 0.0, b1 = 0.0, b2 = 0.0, c = 0.0
        var area = 0.0

        init() {}

        /// The plane through `p` with unit normal `n`, weighted by `weight`.
        init(plane n: SIMD3<Double>, through p: SIMD3<Double>, weight: Double) {
            let d = -(n * p).sum()
            a00 = weight * n.x * n.x; a01 = weight * n.x * n.y; a02 = weight * n.x * n.z
            a11 = weight * n.y * n.y; a12 = weight * n.y * n.z; a22 = weight * n.z * n.z
            b0 = weight * n.x * d; b1 = weight * n.y * d; b2 = weight * n.z * d
            c = weight * d * d
            area = weight
        }

        static func += (q: inout Quadric, r: Quadric) {
            q.a00 += r.a00; q.a01 += r.a01; q.a02 += r.a02; q.a11 += r.a11; q.a12 += r.a12; q.a22 += r.a22
            q.b0 += r.b0; q.b1 += r.b1; q.b2 += r.b2; q.c += r.c; q.area += r.area
        }

        /// Weighted sum of squared distances of `p` to the planes.
        func error(at p: SIMD3<Float>) -> Double {
            let x = Double(p.x), y = Double(p.y), z = Double(p.z)
            let quadratic = a00 * x * x + a11 * y * y + a22 * z * z + 2 * (a01 * x * y + a02 * x * z + a12 * y * z)
            return max(quadratic + 2 * (b0 * x + b1 * y + b2 * z) + c, 0)
        }
    }

    /// Collapses edges shorter than 4/5 of the smaller target of their two vertices
    /// (`targetEdge`, metres per vertex), in vertex order, while the moved vertex stays within
    /// `maximumError` (root mean square, over the area of the input triangles merged into it) of
    /// the input surface, no triangle turns by more than 60 degrees, and no new edge grows longer
    /// than 4/3 of the target or the longest edge the removed vertex had. Runs passes until one
    /// collapses fewer than a hundredth of the vertices (at most `maximumPasses`).
    static func decimate(_ positions: [SIMD3<Float>], _ faces: [SIMD3<UInt32>], targetEdge: [Float],
                         maximumError: Float, maximumPasses: Int = 8, chunks: Int = defaultChunks, threads: Int = 1) -> Result {
        precondition(targetEdge.count == positions.count, "MeshDecimation: one target per vertex")
        // The collapses read and write through unchecked pointers, so every index must be a vertex.
        precondition(faces.allSatisfy { $0.max() < UInt32(positions.count) }, "MeshDecimation: a face names a missing vertex")
        var mesh = Collapser(positions: positions, faces: faces, target: targetEdge, maximumError: Double(maximumError))
        var collapsed = 0
        for _ in 0..<maximumPasses {
            let done = mesh.pass(chunks: chunks, threads: threads)
            collapsed += done
            if done == 0 || done * 100 < positions.count { break }
        }
        let (p, f) = mesh.compacted()
        return Result(positions: p, faces: f, collapsed: collapsed)
    }

    /// The mesh under collapse: faces with alive flags and each vertex's incident faces.
    struct Collapser {
        var positions: [SIMD3<Float>]
        var faces: [SIMD3<Int32>]
        var faceAlive: [Bool]
        /// Each vertex's incident faces in a fixed run of `capacity` slots (dead faces pruned
        /// on reading), so the ring walks read contiguous memory instead of one heap array per
        /// vertex. A collapse that would overflow a run is refused.
        var incident: [Int32]
        var incidentCount: [Int32]
        let capacity: Int
        var vertexAlive: [Bool]
        var quadrics: [Quadric]
        let target: [Float]
        let maximumError2: Double

        init(positions: [SIMD3<Float>], faces: [SIMD3<UInt32>], target: [Float], maximumError: Double) {
            self.positions = positions
            self.faces = faces.map { SIMD3(Int32(truncatingIfNeeded: $0.x), Int32(truncatingIfNeeded: $0.y), Int32(truncatingIfNeeded: $0.z)) }
            self.target = target
            maximumError2 = maximumError * maximumError
            faceAlive = [Bool](repeating: true, count: faces.count)
            vertexAlive = [Bool](repeating: true, count: positions.count)
            quadrics = [Quadric](repeating: Quadric(), count: positions.count)
            var degree = [Int32](repeating: 0, count: positions.count)
            for f in self.faces { degree[Int(f.x)] += 1; degree[Int(f.y)] += 1; degree[Int(f.z)] += 1 }
            capacity = max(16, Int(degree.max() ?? 0))
            incident = [Int32](repeating: -1, count: positions.count * capacity)
            incidentCount = [Int32](repeating: 0, count: positions.count)
            for (k, f) in self.faces.enumerated() {
                for v in [Int(f.x), Int(f.y), Int(f.z)] {
                    incident[v * capacity + Int(incidentCount[v])] = Int32(k)
                    incidentCount[v] += 1
                }
                let p0 = SIMD3<Double>(positions[Int(f.x)]), p1 = SIMD3<Double>(positions[Int(f.y)]), p2 = SIMD3<Double>(positions[Int(f.z)])
                let cross = Self.cross(p1 - p0, p2 - p0)
                let twiceArea = (cross * cross).sum().squareRoot()
                guard twiceArea > 0 else { continue }
                // A third of the face's area to each corner: a vertex's quadric is the area
                // around it, so merged quadrics give an error per area, not per face count.
                let q = Quadric(plane: cross / twiceArea, through: p0, weight: twiceArea / 6)
                quadrics[Int(f.x)] += q; quadrics[Int(f.y)] += q; quadrics[Int(f.z)] += q
            }
            // Border edges (no face runs the other way) add the plane through the edge across
            // the face, so collapses along the border keep its line as the faces keep the surface.
            for f in self.faces {
                for e in 0..<3 {
                    let u = f[e], v = f[(e + 1) % 3]
                    let shared = (Int(v) * capacity..<Int(v) * capacity + Int(incidentCount[Int(v)])).contains { slot in
                        let g = self.faces[Int(incident[slot])]
                        return (g.x == v && g.y == u) || (g.y == v && g.z == u) || (g.z == v && g.x == u)
                    }
                    guard !shared else { continue }
                    let p0 = SIMD3<Double>(positions[Int(f.x)]), p1 = SIMD3<Double>(positions[Int(f.y)]), p2 = SIMD3<Double>(positions[Int(f.z)])
                    let faceNormal = Self.cross(p1 - p0, p2 - p0)
                    let pu = SIMD3<Double>(positions[Int(u)]), edge = SIMD3<Double>(positions[Int(v)]) - pu
                    let across = Self.cross(faceNormal, edge)
                    let norm = (across * across).sum().squareRoot()
                    guard norm > 0 else { continue }
                    let q = Quadric(plane: across / norm, through: pu, weight: (edge * edge).sum())
                    quadrics[Int(u)] += q; quadrics[Int(v)] += q
                }
            }
        }

        static func cross(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> SIMD3<Double> {
            SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
        }
        static func cross(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> SIMD3<Float> {
            SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
        }

        /// The distance between two points (an edge's length).
        @inline(__always) static func distance(_ p: SIMD3<Float>, _ q: SIMD3<Float>) -> Float {
            let d = p - q
            return (d * d).sum().squareRoot()
        }

        @inline(__always) func length(_ a: Int, _ b: Int) -> Float { Self.distance(positions[a], positions[b]) }

        /// One sweep over the edges shorter than their target, in vertex order.
        ///
        /// The sweep runs in `chunks` contiguous ranges of vertices at once, on up to `threads`
        /// threads. A collapse inside a range changes only faces whose vertices all lie in it,
        /// and the lists and quadrics of its own vertices; faces across ranges are only read
        /// while the ranges run. A candidate whose collapse would reach past its range waits,
        /// and the waiting ones run afterwards, in order, on one thread. So the result depends
        /// on the number of chunks, never on the threads or their timing.
        mutating func pass(chunks requested: Int, threads: Int) -> Int {
            var candidates: [(a: Int32, b: Int32)] = []
            for (k, f) in faces.enumerated() where faceAlive[k] {
                for e in 0..<3 {
                    let a = f[e], b = f[(e + 1) % 3]
                    // Each interior edge appears in two faces with opposite directions; a < b
                    // keeps one. A border edge taken from its only face may be skipped here;
                    // its vertices are still reached through their other edges.
                    guard a < b else { continue }
                    let l = length(Int(a), Int(b))
                    let limit = 0.8 * min(target[Int(a)], target[Int(b)])
                    if l < limit { candidates.append((a, b)) }
                }
            }
            // In vertex order, which follows the volume's blocks: each collapse then reads faces
            // and vertices near the previous one's. Shortest first over the whole mesh left 1 %
            // fewer vertices, with the same accuracy, but took 1.6x as long (cache misses).
            candidates.sort { ($0.a, $0.b) < ($1.a, $1.b) }
            let vertexCount = positions.count
            let chunks = max(1, min(requested, vertexCount / 1024))
            // Chunk c owns vertices vertexCount·c/chunks ..< vertexCount·(c+1)/chunks; its
            // candidates are those whose smaller vertex it owns, a run of the sorted list.
            var firstCandidate = [Int](repeating: candidates.count, count: chunks + 1)
            var c = 0
            for (k, candidate) in candidates.enumerated() {
                while c < chunks, Int(candidate.a) >= vertexCount * c / chunks { firstCandidate[c] = k; c += 1 }
            }
            var done = [Int](repeating: 0, count: chunks)
            var waiting = [[Int]](repeating: [], count: chunks)
            withView { view in
            done.withUnsafeMutableBufferPointer { done in
            waiting.withUnsafeMutableBufferPointer { waiting in
                nonisolated(unsafe) let done = done, waiting = waiting
                let run = { (chunk: Int) in
                    var scratch = View.Scratch()
                    let owned = Int32(vertexCount * chunk / chunks)..<Int32(vertexCount * (chunk + 1) / chunks)
                    for k in firstCandidate[chunk]..<firstCandidate[chunk + 1] {
                        let (a, b) = candidates[k]
                        guard owned.contains(b) else { waiting[chunk].append(k); continue }
                        switch view.attempt(a: Int(a), b: Int(b), owned: owned, scratch: &scratch) {
                        case .collapsed: done[chunk] += 1
                        case .refused: break
                        case .waits: waiting[chunk].append(k)
                        }
                    }
                }
                if chunks == 1 || threads <= 1 {
                    for chunk in 0..<chunks { run(chunk) }
                } else {
                    DispatchQueue.concurrentPerform(iterations: chunks) { run($0) }
                }
                var scratch = View.Scratch()
                for chunk in 0..<chunks {
                    for k in waiting[chunk] {
                        let (a, b) = candidates[k]
                        if view.attempt(a: Int(a), b: Int(b), owned: nil, scratch: &scratch) == .collapsed { done[0] += 1 }
                    }
                }
            }}}
            return done.reduce(0, +)
        }

        /// The mesh's storage as a `View` for `body`.
        mutating func withView<R>(_ body: (View) -> R) -> R {
            let maximumError2 = self.maximumError2, capacity = self.capacity
            return positions.withUnsafeBufferPointer { positions in
            target.withUnsafeBufferPointer { target in
            faces.withUnsafeMutableBufferPointer { faces in
            faceAlive.withUnsafeMutableBufferPointer { faceAlive in
            incident.withUnsafeMutableBufferPointer { incident in
            incidentCount.withUnsafeMutableBufferPointer { incidentCount in
            vertexAlive.withUnsafeMutableBufferPointer { vertexAlive in
            quadrics.withUnsafeMutableBufferPointer { quadrics in
                body(View(positions: positions, target: target, faces: faces, faceAlive: faceAlive, incident: incident,
                          incidentCount: incidentCount, vertexAlive: vertexAlive, quadrics: quadrics,
                          capacity: capacity, maximumError2: maximumError2))
            }}}}}}}}
        }

        /// Moves `b` onto `a` if the checks allow it, outside a pass; returns whether it did.
        mutating func collapse(_ b: Int, into a: Int) -> Bool {
            withView { view in
                var scratch = View.Scratch()
                return view.collapse(b, into: a, owned: nil, scratch: &scratch) == .collapsed
            }
        }

        /// What one candidate edge came to.
        enum Outcome { case collapsed, refused, waits }

        /// The collapse machinery over the mesh's storage. The pass hands one view to every
        /// chunk; `owned` keeps each chunk's writes inside its vertex range (see `pass`).
        struct View {
            let positions: UnsafeBufferPointer<SIMD3<Float>>
            let target: UnsafeBufferPointer<Float>
            let faces: UnsafeMutableBufferPointer<SIMD3<Int32>>
            let faceAlive: UnsafeMutableBufferPointer<Bool>
            let incident: UnsafeMutableBufferPointer<Int32>
            let incidentCount: UnsafeMutableBufferPointer<Int32>
            let vertexAlive: UnsafeMutableBufferPointer<Bool>
            let quadrics: UnsafeMutableBufferPointer<Quadric>
            let capacity: Int
            let maximumError2: Double

            /// A worker's ring of b as directed edges from → to, one per face around b.
            struct Scratch {
                var from: [Int32] = []
                var to: [Int32] = []
            }

            @inline(__always) func length(_ a: Int, _ b: Int) -> Float { Collapser.distance(positions[a], positions[b]) }

            /// The candidate edge a-b: removes the vertex whose removal moves the surface less,
            /// or the other if that is refused.
            func attempt(a: Int, b: Int, owned: Range<Int32>?, scratch: inout Scratch) -> Outcome {
                guard vertexAlive[a], vertexAlive[b] else { return .refused }
                guard length(a, b) < 0.8 * min(target[a], target[b]) else { return .refused }
                var q = quadrics[a]; q += quadrics[b]
                let bound = maximumError2 * max(q.area, 1e-30)
                let intoA = q.error(at: positions[a]), intoB = q.error(at: positions[b])
                let (first, second) = intoA <= intoB ? ((b, a, intoA), (a, b, intoB)) : ((a, b, intoB), (b, a, intoA))
                if first.2 <= bound {
                    let outcome = collapse(first.0, into: first.1, owned: owned, scratch: &scratch)
                    if outcome != .refused { return outcome }
                }
                if second.2 <= bound { return collapse(second.0, into: second.1, owned: owned, scratch: &scratch) }
                return .refused
            }

            /// The faces around `v` that are alive; prunes the dead ones from its list.
            func liveFaces(_ v: Int) -> Range<Int> {
                let base = v * capacity
                var kept = base
                for slot in base..<base + Int(incidentCount[v]) where faceAlive[Int(incident[slot])] {
                    incident[kept] = incident[slot]
                    kept += 1
                }
                incidentCount[v] = Int32(kept - base)
                return base..<kept
            }

            /// Moves `b` onto `a` if the checks allow it. With `owned`, a collapse whose faces
            /// around b reach a vertex outside it waits, before anything is changed but b's
            /// pruned list.
            func collapse(_ b: Int, into a: Int, owned: Range<Int32>?, scratch: inout Scratch) -> Outcome {
                let around = liveFaces(b)
                let m = around.count
                guard m >= 2 else { return .refused }
                let a32 = Int32(a), b32 = Int32(b)
                // b's one-ring must be one fan: each face (b, x, y) is the directed ring edge x → y.
                // Following them from the one ring vertex no edge enters (a border vertex), or from
                // any (an interior one), must visit every face once.
                scratch.from.removeAll(keepingCapacity: true); scratch.to.removeAll(keepingCapacity: true)
                for slot in around {
                    let f = faces[Int(incident[slot])]
                    let x = f.x == b32 ? f.y : (f.y == b32 ? f.z : f.x)
                    let y = f.x == b32 ? f.z : (f.y == b32 ? f.x : f.y)
                    if let owned, !owned.contains(x) || !owned.contains(y) { return .waits }
                    guard !scratch.from.contains(x) else { return .refused }   // two faces leave b's ring at x
                    scratch.from.append(x); scratch.to.append(y)
                }
                let from = scratch.from, to = scratch.to
                var start = -1
                for i in 0..<m where !to.contains(from[i]) {
                    guard start < 0 else { return .refused }   // two pieces of border meet at b
                    start = i
                }
                let border = start >= 0
                guard border || m >= 3 else { return .refused }
                // a keeps its faces but the ones on the edge (two inside the surface, one on its
                // border) and takes b's others; its run of slots must hold them.
                guard liveFaces(a).count + m - (border ? 1 : 2) <= capacity else { return .refused }
                var i = max(start, 0), steps = 1
                while steps < m, let j = from.firstIndex(of: to[i]) {
                    if !border && j == max(start, 0) { break }
                    i = j; steps += 1
                }
                guard steps == m else { return .refused }
                // The ring's vertices: every `from`, and for a border vertex the fan's last `to`.
                let last = to[i]
                @inline(__always) func inRing(_ v: Int32) -> Bool { from.contains(v) || (border && v == last) }
                guard inRing(a32) else { return .refused }   // a is not a neighbour of b
                // The vertices across the edge: two inside the surface, one on the border.
                var opposite0: Int32 = -1, opposite1: Int32 = -1
                if let j = from.firstIndex(of: a32) { opposite0 = to[j] }
                if let j = to.firstIndex(of: a32) { opposite1 = from[j] }
                // Along the border only onto one of b's two border neighbours: moving b onto an
                // inner neighbour would pull the border in.
                if border { guard a32 == from[start] || a32 == last else { return .refused } }
                // Link condition: a and b share exactly the neighbours across the edge, and those
                // two are not joined by an edge (collapsing a tetrahedron's edge would leave two
                // faces on the same three vertices).
                if opposite0 >= 0, opposite1 >= 0 {
                    for slot in liveFaces(Int(opposite0)) {
                        let f = faces[Int(incident[slot])]
                        if f.x == opposite1 || f.y == opposite1 || f.z == opposite1 { return .refused }
                    }
                }
                for slot in liveFaces(a) {
                    let f = faces[Int(incident[slot])]
                    for e in 0..<3 {
                        let v = f[e]
                        if v != a32, v != b32, v != opposite0, v != opposite1, inRing(v) { return .refused }
                    }
                }
                // Geometry: no face of b may fold over or degenerate, and no new edge may grow long.
                let pa = positions[a]
                var longest: Float = 0
                for x in from { longest = max(longest, length(b, Int(x))) }
                if border { longest = max(longest, length(b, Int(last))) }
                let edgeLimit = max(4.0 / 3.0 * target[a], longest)
                for x in from where x != a32 {
                    if length(a, Int(x)) > edgeLimit { return .refused }
                }
                if border, last != a32, length(a, Int(last)) > edgeLimit { return .refused }
                for slot in around {
                    let f = faces[Int(incident[slot])]
                    if f.x == a32 || f.y == a32 || f.z == a32 { continue }
                    let p0 = positions[Int(f.x)], p1 = positions[Int(f.y)], p2 = positions[Int(f.z)]
                    let before = Collapser.cross(p1 - p0, p2 - p0)
                    let q0 = f.x == b32 ? pa : p0, q1 = f.y == b32 ? pa : p1, q2 = f.z == b32 ? pa : p2
                    let after = Collapser.cross(q1 - q0, q2 - q0)
                    let lb = (before * before).sum().squareRoot(), la = (after * after).sum().squareRoot()
                    guard la > 0, (before * after).sum() >= 0.5 * lb * la else { return .refused }
                }
                // Collapse: the faces on the edge go, the others take a instead of b.
                var end = a * capacity + Int(incidentCount[a])
                for slot in around {
                    let k = incident[slot]
                    var f = faces[Int(k)]
                    if f.x == a32 || f.y == a32 || f.z == a32 {
                        faceAlive[Int(k)] = false
                        continue
                    }
                    if f.x == b32 { f.x = a32 } else if f.y == b32 { f.y = a32 } else { f.z = a32 }
                    faces[Int(k)] = f
                    incident[end] = k
                    end += 1
                }
                incidentCount[a] = Int32(end - a * capacity)
                incidentCount[b] = 0
                vertexAlive[b] = false
                quadrics[a] += quadrics[b]
                return .collapsed
            }
        }

        /// Alive vertices renumbered in their input order, and the alive faces.
        func compacted() -> ([SIMD3<Float>], [SIMD3<UInt32>]) {
            var remap = [Int32](repeating: -1, count: positions.count)
            var kept: [SIMD3<Float>] = []
            kept.reserveCapacity(positions.count)
            var used = [Bool](repeating: false, count: positions.count)
            for (k, f) in faces.enumerated() where faceAlive[k] {
                used[Int(f.x)] = true; used[Int(f.y)] = true; used[Int(f.z)] = true
            }
            for v in 0..<positions.count where used[v] {
                remap[v] = Int32(kept.count)
                kept.append(positions[v])
            }
            var out: [SIMD3<UInt32>] = []
            out.reserveCapacity(faces.count)
            for (k, f) in faces.enumerated() where faceAlive[k] {
                out.append(SIMD3(UInt32(remap[Int(f.x)]), UInt32(remap[Int(f.y)]), UInt32(remap[Int(f.z)])))
            }
            return (kept, out)
        }
    }
}
