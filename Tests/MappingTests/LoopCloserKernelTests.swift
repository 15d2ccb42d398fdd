import Geometry
@testable import Mapping
import XCTest

/// The loop closer's allocation-free surfel bend against the deformation graph's own reference
/// (`influence` + `deform` per point, in Double).
final class LoopCloserKernelTests: XCTestCase {
    func testFastBendMatchesTheGraph() throws {
        var random = SplitMix64(seed: 7)
        let n = 3000
        let positions = (0..<n).map { i in SIMD3<Float>(Float(i) * 0.001, Float.random(in: -0.5...0.5, using: &random), 2 + Float.random(in: -0.1...0.1, using: &random)) }
        let normals = (0..<n).map { _ in SIMD3<Float>(Float.random(in: -0.2...0.2, using: &random), 0.1, -1).normalizedF }
        let map = SurfelMap(positions: positions, normals: normals, radii: nil, confidences: nil, colors: nil)
        map.initTimes = (0..<n).map { Int32($0 / 30 + 1) }
        var parameters = LoopClosureParameters()
        parameters.minNodes = 40
        let closer = LoopCloser(parameters: parameters)
        let deformation = try XCTUnwrap(closer.makeGraph(map))
        var graph = deformation.graph
        // Bend it: the start pinned, the end pulled sideways and turned.
        var constraints: [DeformationGraph.Constraint] = []
        for i in stride(from: 0, to: n, by: 37) {
            let p = SIMD3<Double>(positions[i])
            let influence = deformation.influence(of: p, time: map.initTimes[i])
            let target = i < n / 4 ? p : Matrix3.rotation(axis: SIMD3(0, 1, 0), angle: 0.05) * p + SIMD3(0.03, 0.02, 0)
            constraints.append(.init(source: p, target: target, influence: influence))
        }
        XCTAssertNotNil(graph.optimise(constraints))
        let bent = MapDeformation(graph: graph, nodeTimes: deformation.nodeTimes, temporalCandidates: deformation.temporalCandidates)
        closer.apply(bent, to: map, threads: 2)
        var worst = 0.0, worstNormal = 0.0
        for i in 0..<n {
            let influence = bent.influence(of: SIMD3<Double>(positions[i]), time: map.initTimes[i])
            let expected = graph.deform(SIMD3<Double>(positions[i]), influence)
            let expectedNormal = graph.deformNormal(SIMD3<Double>(normals[i]), influence)
            worst = max(worst, (SIMD3<Double>(map.positions[i]) - expected).length)
            worstNormal = max(worstNormal, (SIMD3<Double>(map.normals[i]) - expectedNormal).length)
        }
        XCTAssertGreaterThan((SIMD3<Double>(map.positions[n - 1]) - SIMD3<Double>(positions[n - 1])).length, 0.01, "the map was bent")
        XCTAssertLessThan(worst, 2e-6, "positions agree to float precision")
        XCTAssertLessThan(worstNormal, 1e-5)
    }
}

private extension SIMD3 where Scalar == Float {
    var normalizedF: SIMD3<Float> { self / (self * self).sum().squareRoot() }
}
