import EigenBridge
import Geometry

/// An embedded deformation graph (Sumner, Schmid and Pauly 2007, as ElasticFusion bends its map
/// to close a loop): nodes sampled from the map, each with an affine transform (A, t) acting on
/// the space around it. A point v influenced by nodes j with weights w_j moves to
/// φ(v) = Σ_j w_j (A_j (v − g_j) + g_j + t_j).
///
/// `optimise` finds the node transforms that bring constraint points onto their targets
/// (E_con), keep each A close to a rotation (E_rot) and neighbouring nodes agreeing on where
/// each other goes (E_reg), with ElasticFusion's weights 1, 10 and 100 (E_rot, E_reg, E_con), by
/// Gauss-Newton; the normal equations (12 unknowns per node, coupled only between neighbours
/// and through shared constraints) are solved by a sparse Cholesky factorisation through Eigen.
public struct DeformationGraph: Sendable {
    public struct Parameters: Sendable, Equatable {
        public var rotationWeight = 1.0
        public var regularisationWeight = 10.0
        public var constraintWeight = 100.0
        /// Nodes each node is tied to (its nearest in sequence order, half before, half after).
        public var nodeNeighbours = 4
        /// Nodes influencing each point.
        public var pointNeighbours = 4
        public var iterations = 5
        public init() {}
    }

    /// Where a point's motion comes from: up to `pointNeighbours` nodes and their weights (sum 1).
    public struct Influence: Sendable, Equatable {
        public var nodes: [Int32]
        public var weights: [Double]
    }

    /// A point that should end at `target` (for a pin, its own position).
    public struct Constraint: Sendable {
        public var source: SIMD3<Double>
        public var target: SIMD3<Double>
        public var influence: Influence
        public init(source: SIMD3<Double>, target: SIMD3<Double>, influence: Influence) {
            self.source = source; self.target = target; self.influence = influence
        }
    }

    public struct Report: Sendable {
        /// Root-mean-square constraint error before and after (metres).
        public var constraintErrorBefore: Double
        public var constraintErrorAfter: Double
        /// Total weighted energy after each iteration (the first entry: before).
        public var energies: [Double]
    }

    public let parameters: Parameters
    /// Node positions g_j, in the order they were sampled (ElasticFusion: by surfel creation time).
    public let positions: [SIMD3<Double>]
    /// Columns of each node's A (c1, c2, c3) and its t.
    public private(set) var affine: [Matrix3]
    public private(set) var translation: [SIMD3<Double>]
    let edges: [(Int, Int)]

    public init(nodes: [SIMD3<Double>], parameters: Parameters = Parameters()) {
        self.parameters = parameters
        positions = nodes
        affine = [Matrix3](repeating: .identity, count: nodes.count)
        translation = [SIMD3<Double>](repeating: .zero, count: nodes.count)
        var edges: [(Int, Int)] = []
        let half = max(1, parameters.nodeNeighbours / 2)
        for j in nodes.indices {
            for k in max(0, j - half)...min(nodes.count - 1, j + half) where k != j { edges.append((j, k)) }
        }
        self.edges = edges
    }

    public var nodeCount: Int { positions.count }

    /// The `pointNeighbours` nodes nearest to `point` among `candidates` (all nodes when nil;
    /// ElasticFusion looks among the nodes nearest in time), weighted (1 − d/d_max)² with d_max
    /// the distance to the next-nearest candidate, normalised.
    public func influence(of point: SIMD3<Double>, candidates: Range<Int>? = nil) -> Influence {
        let range = candidates ?? 0..<positions.count
        guard !range.isEmpty else { return Influence(nodes: [], weights: []) }
        var nearest = range.map { j -> (Int, Double) in
            let d = positions[j] - point
            return (j, (d * d).sum().squareRoot())
        }
        nearest.sort { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
        let k = min(parameters.pointNeighbours, nearest.count)
        let dMax = nearest.count > k ? nearest[k].1 : nearest[k - 1].1 * 1.5 + 1e-9
        var weights = nearest.prefix(k).map { (1 - $0.1 / max(dMax, 1e-12)) * (1 - $0.1 / max(dMax, 1e-12)) }
        var sum = weights.reduce(0, +)
        if !(sum > 1e-12) { weights = [Double](repeating: 1, count: k); sum = Double(k) }
        return Influence(nodes: nearest.prefix(k).map { Int32($0.0) }, weights: weights.map { $0 / sum })
    }

    /// Where the graph moves `point`.
    public func deform(_ point: SIMD3<Double>, _ influence: Influence) -> SIMD3<Double> {
        var out = SIMD3<Double>()
        for (n, w) in zip(influence.nodes, influence.weights) {
            let j = Int(n)
            out += w * (affine[j] * (point - positions[j]) + positions[j] + translation[j])
        }
        return out
    }

    /// Where the graph turns a normal: the weighted inverse-transpose of the nodes' A, renormalised.
    public func deformNormal(_ normal: SIMD3<Double>, _ influence: Influence) -> SIMD3<Double> {
        var out = SIMD3<Double>()
        for (n, w) in zip(influence.nodes, influence.weights) {
            out += w * (affine[Int(n)].inverseTranspose * normal)
        }
        let length = (out * out).sum().squareRoot()
        return length > 0 ? out / length : normal
    }

    /// Where the graph moves a camera: its centre like a point; its rotation by the influences'
    /// weighted A, made a rotation again.
    public func deform(_ pose: RigidTransform, _ influence: Influence) -> RigidTransform {
        let centre = deform(pose.translation, influence)
        var a = Matrix3(rows: .zero, .zero, .zero)
        for (n, w) in zip(influence.nodes, influence.weights) { a = a + affine[Int(n)].scaled(w) }
        let rotation = (a * pose.rotation).nearestRotation?.rotation ?? pose.rotation
        return RigidTransform(rotation: rotation, translation: centre)
    }

    /// Runs Gauss-Newton on the node transforms. Returns nil when the normal equations cannot be
    /// solved (no constraints, or a singular system); the graph is then unchanged.
    public mutating func optimise(_ constraints: [Constraint]) -> Report? {
        guard !constraints.isEmpty, nodeCount > 0 else { return nil }
        func constraintRMS() -> Double {
            let s = constraints.map { c -> Double in let d = deform(c.source, c.influence) - c.target; return (d * d).sum() }
            return (s.reduce(0, +) / Double(constraints.count)).squareRoot()
        }
        let before = constraintRMS()
        var energies = [energy(constraints)]
        // Gauss-Newton, damped (Levenberg-Marquardt) only when a full step would raise the
        // energy: the rotation terms are quadratic in A, so far from the solution a pure
        // Gauss-Newton step can overshoot.
        var damping = 0.0
        var iteration = 0
        while iteration < parameters.iterations {
            guard let step = solveStep(constraints, damping: damping) else { return nil }
            let saved = (affine, translation)
            apply(step)
            let e = energy(constraints)
            if e.isFinite, e <= energies.last! {
                energies.append(e)
                iteration += 1
                damping = damping > 1e-9 ? damping / 10 : 0
                if energies[energies.count - 2] - e <= 1e-10 * max(1, e) { break }
            } else {
                (affine, translation) = saved
                damping = damping == 0 ? 1e-4 : damping * 10
                if damping > 1e4 { break }
            }
        }
        return Report(constraintErrorBefore: before, constraintErrorAfter: constraintRMS(), energies: energies)
    }

    mutating func apply(_ step: [Double]) {
        for j in 0..<nodeCount {
            let o = 12 * j
            affine[j] = Matrix3(columns: affine[j].column(0) + SIMD3(step[o], step[o + 1], step[o + 2]),
                                affine[j].column(1) + SIMD3(step[o + 3], step[o + 4], step[o + 5]),
                                affine[j].column(2) + SIMD3(step[o + 6], step[o + 7], step[o + 8]))
            translation[j] += SIMD3(step[o + 9], step[o + 10], step[o + 11])
        }
    }

    /// The weighted energy E = w_rot E_rot + w_reg E_reg + w_con E_con.
    public func energy(_ constraints: [Constraint]) -> Double {
        var rot = 0.0, reg = 0.0, con = 0.0
        for j in 0..<nodeCount {
            let r = rotationResiduals(affine[j])
            rot += r.map { $0 * $0 }.reduce(0, +)
        }
        for (j, k) in edges {
            let d = affine[j] * (positions[k] - positions[j]) + positions[j] + translation[j] - positions[k] - translation[k]
            reg += (d * d).sum()
        }
        for c in constraints { let d = deform(c.source, c.influence) - c.target; con += (d * d).sum() }
        return parameters.rotationWeight * rot + parameters.regularisationWeight * reg + parameters.constraintWeight * con
    }

    /// c1·c2, c1·c3, c2·c3, c1·c1 − 1, c2·c2 − 1, c3·c3 − 1.
    func rotationResiduals(_ a: Matrix3) -> [Double] {
        let c1 = a.column(0), c2 = a.column(1), c3 = a.column(2)
        func dot(_ u: SIMD3<Double>, _ v: SIMD3<Double>) -> Double { (u * v).sum() }
        return [dot(c1, c2), dot(c1, c3), dot(c2, c3), dot(c1, c1) - 1, dot(c2, c2) - 1, dot(c3, c3) - 1]
    }

    /// The normal equations JᵀJ δ = −Jᵀr of the current linearisation, as lower-triangle
    /// triplets of 12x12 node blocks, and their right-hand side.
    func normalEquations(_ constraints: [Constraint]) -> (rows: [Int32], cols: [Int32], values: [Double], rhs: [Double]) {
        let n = 12 * nodeCount
        var blocks: [SIMD2<Int32>: [Double]] = [:]   // (row node, col node), row >= col
        var rhs = [Double](repeating: 0, count: n)
        let zeroBlock = [Double](repeating: 0, count: 144)
        /// Adds one residual row: entries (parameter index, derivative), residual value, weight.
        func addRow(_ entries: [(Int, Double)], _ residual: Double, _ weight: Double) {
            for (p, dp) in entries {
                rhs[p] -= weight * dp * residual
                for (q, dq) in entries where q <= p {
                    blocks[SIMD2(Int32(p / 12), Int32(q / 12)), default: zeroBlock][(p % 12) * 12 + q % 12] += weight * dp * dq
                }
            }
        }
        for j in 0..<nodeCount {
            let a = affine[j], o = 12 * j
            let c = [a.column(0), a.column(1), a.column(2)]
            let r = rotationResiduals(a)
            // ∂(ci·ck)/∂ci = ck, ∂/∂ck = ci; ∂(ci·ci − 1)/∂ci = 2 ci.
            let pairs = [(0, 1), (0, 2), (1, 2)]
            for (index, (i, k)) in pairs.enumerated() {
                var entries: [(Int, Double)] = []
                for e in 0..<3 { entries.append((o + 3 * i + e, c[k][e])); entries.append((o + 3 * k + e, c[i][e])) }
                addRow(entries, r[index], parameters.rotationWeight)
            }
            for i in 0..<3 {
                addRow((0..<3).map { (o + 3 * i + $0, 2 * c[i][$0]) }, r[3 + i], parameters.rotationWeight)
            }
        }
        for (j, k) in edges {
            let d = positions[k] - positions[j]
            let residual = affine[j] * d + positions[j] + translation[j] - positions[k] - translation[k]
            for e in 0..<3 {
                var entries: [(Int, Double)] = []
                for m in 0..<3 { entries.append((12 * j + 3 * m + e, d[m])) }
                entries.append((12 * j + 9 + e, 1))
                entries.append((12 * k + 9 + e, -1))
                addRow(entries, residual[e], parameters.regularisationWeight)
            }
        }
        for constraint in constraints {
            let residual = deform(constraint.source, constraint.influence) - constraint.target
            for e in 0..<3 {
                var entries: [(Int, Double)] = []
                for (node, w) in zip(constraint.influence.nodes, constraint.influence.weights) {
                    let j = Int(node), v = constraint.source - positions[j]
                    for m in 0..<3 { entries.append((12 * j + 3 * m + e, w * v[m])) }
                    entries.append((12 * j + 9 + e, w))
                }
                addRow(entries, residual[e], parameters.constraintWeight)
            }
        }
        var rows: [Int32] = [], cols: [Int32] = [], values: [Double] = []
        for (key, block) in blocks.sorted(by: { ($0.key.x, $0.key.y) < ($1.key.x, $1.key.y) }) {
            for a in 0..<12 {
                for b in 0..<12 {
                    let row = Int(key.x) * 12 + a, col = Int(key.y) * 12 + b
                    guard row >= col, block[a * 12 + b] != 0 else { continue }
                    rows.append(Int32(row)); cols.append(Int32(col)); values.append(block[a * 12 + b])
                }
            }
        }
        return (rows, cols, values, rhs)
    }

    /// One Gauss-Newton step (nil when the system is singular).
    func solveStep(_ constraints: [Constraint], dense: Bool = false, damping: Double = 0) -> [Double]? {
        var system = normalEquations(constraints)
        let n = 12 * nodeCount
        if damping > 0 {
            for i in 0..<n { system.rows.append(Int32(i)); system.cols.append(Int32(i)); system.values.append(damping) }
        }
        var x = [Double](repeating: 0, count: n)
        let status = dense
            ? eb_dense_ldlt_from_triplets(Int32(n), Int32(system.values.count), system.rows, system.cols, system.values, system.rhs, &x)
            : eb_sparse_ldlt(Int32(n), Int32(system.values.count), system.rows, system.cols, system.values, system.rhs, &x)
        return status == 0 ? x : nil
    }
}
