import Geometry
@testable import Mapping
import XCTest

/// The embedded deformation graph on shapes whose undeformed form is known.
final class DeformationGraphTests: XCTestCase {
    /// A 2 m strip (a wall seen while walking along it) whose far end drifted: each point is
    /// turned about the start by an angle that grows along the strip, as accumulated tracking
    /// drift does. Returns (true, drifted) points ordered along the strip (the order they were seen).
    func bentStrip(bend: Double = 0.08) -> (truth: [SIMD3<Double>], drifted: [SIMD3<Double>]) {
        var truth: [SIMD3<Double>] = [], drifted: [SIMD3<Double>] = []
        for i in 0..<200 {
            for h in 0..<5 {
                let x = Double(i) * 0.01, y = Double(h) * 0.1
                let p = SIMD3(x, y, 2.0)
                let r = Matrix3.rotation(axis: SIMD3(0, 1, 0), angle: bend * x)
                truth.append(p)
                drifted.append(r * p - r * SIMD3(0, 0, 2) + SIMD3(0, 0, 2))
            }
        }
        return (truth, drifted)
    }

    func testLoopConstraintsBendTheStripBackIntoShape() throws {
        let (truth, drifted) = bentStrip()
        let nodes = stride(from: 0, to: drifted.count, by: 23).map { drifted[$0] }
        var graph = DeformationGraph(nodes: nodes)
        var constraints: [DeformationGraph.Constraint] = []
        for (i, p) in drifted.enumerated() where i % 7 == 0 {
            if truth[i].x < 0.2 {        // the start: pinned where it is
                constraints.append(.init(source: p, target: p, influence: graph.influence(of: p)))
            } else if truth[i].x > 1.8 { // the revisited end: back onto where it really is
                constraints.append(.init(source: p, target: truth[i], influence: graph.influence(of: p)))
            }
        }
        let drift = zip(truth, drifted).map { ($0 - $1).length }.max()!
        XCTAssertGreaterThan(drift, 0.05, "the drift to undo: \(drift) m")
        let report = try XCTUnwrap(graph.optimise(constraints))
        print("deformation: constraint RMS \(report.constraintErrorBefore) → \(report.constraintErrorAfter) m, energies \(report.energies)")
        XCTAssertLessThan(report.constraintErrorAfter, 0.002)
        for (e0, e1) in zip(report.energies, report.energies.dropFirst()) { XCTAssertLessThanOrEqual(e1, e0) }
        // Every point, constrained or not, ends close to its true place: the strip is straight again.
        let errors = drifted.indices.map { (graph.deform(drifted[$0], graph.influence(of: drifted[$0])) - truth[$0]).length }
        XCTAssertLessThan(errors.max()!, 0.1 * drift, "worst \(errors.max()!) m of \(drift) m drift")
        XCTAssertLessThan(errors.reduce(0, +) / Double(errors.count), 0.05 * drift)
        // The node transforms stay rotations (E_rot).
        for a in graph.affine { XCTAssertEqual(a.determinant, 1, accuracy: 0.02) }
        // A camera at the far end moves with the map. (Its rotation is not checked: on a flat strip
        // translations alone satisfy the constraints, so the graph need not turn.)
        let index = drifted.count - 3
        let far = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 1, 0), angle: 0.1), translation: drifted[index])
        let moved = graph.deform(far, graph.influence(of: far.translation))
        XCTAssertLessThan((moved.translation - truth[index]).length, 0.01)
        XCTAssertEqual(moved.rotation.determinant, 1, accuracy: 1e-9)
    }

    /// The sparse Cholesky step equals the dense LDLT step of the same normal equations.
    func testSparseSolveMatchesDenseSolve() throws {
        var random = SplitMix64(seed: 11)
        let nodes = (0..<6).map { i in SIMD3(Double(i) * 0.2, Double.random(in: -0.1...0.1, using: &random), 1.5) }
        let graph = DeformationGraph(nodes: nodes)
        let constraints = (0..<40).map { _ -> DeformationGraph.Constraint in
            let p = SIMD3(Double.random(in: 0...1, using: &random), Double.random(in: -0.2...0.2, using: &random), 1.5)
            return .init(source: p, target: p + SIMD3(0.01, Double.random(in: -0.02...0.02, using: &random), 0.005), influence: graph.influence(of: p))
        }
        let sparse = try XCTUnwrap(graph.solveStep(constraints, dense: false))
        let dense = try XCTUnwrap(graph.solveStep(constraints, dense: true))
        XCTAssertEqual(sparse.count, 72)
        let scale = dense.map(abs).max()!
        XCTAssertGreaterThan(scale, 1e-4)
        for (a, b) in zip(sparse, dense) { XCTAssertEqual(a, b, accuracy: 1e-9 * max(1, scale)) }
    }

    func testInfluenceWeightsAreNormalisedAndLocal() {
        let graph = DeformationGraph(nodes: (0..<10).map { SIMD3(Double($0), 0, 0) })
        let influence = graph.influence(of: SIMD3(3.2, 0, 0))
        XCTAssertEqual(influence.nodes.count, 4)
        XCTAssertEqual(influence.weights.reduce(0, +), 1, accuracy: 1e-12)
        XCTAssertEqual(influence.nodes.first, 3)
        XCTAssertEqual(Set(influence.nodes), [2, 3, 4, 5])
        // An untouched graph moves nothing.
        XCTAssertLessThan((graph.deform(SIMD3(3.2, 0.5, -1), influence) - SIMD3(3.2, 0.5, -1)).length, 1e-12)
        XCTAssertNil({ var g = graph; return g.optimise([]) }())
    }
}
