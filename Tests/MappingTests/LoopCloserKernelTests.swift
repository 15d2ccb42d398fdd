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

    /// The graph's nodes are chosen from the surfels, not from where the map stores them: the
    /// same surfels in another order (the spatial reordering, then a reversal) give the same
    /// nodes, in the same order.
    func testNodesDoNotDependOnStorageOrder() throws {
        var random = SplitMix64(seed: 11)
        let n = 4000
        let positions = (0..<n).map { _ in SIMD3<Float>(Float.random(in: -1...1, using: &random), Float.random(in: -1...1, using: &random), 2) }
        let map = SurfelMap(positions: positions, normals: [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: n), radii: nil, confidences: nil, colors: nil)
        map.initTimes = (0..<n).map { Int32($0 / 100 + 1) }   // 100 surfels per frame
        var parameters = LoopClosureParameters()
        parameters.minNodes = 60
        let closer = LoopCloser(parameters: parameters)
        let reference = try XCTUnwrap(closer.makeGraph(map))
        map.sortSpatially(cell: 0.1, threads: 2)
        XCTAssertNotEqual(map.positions, positions)
        let sorted = try XCTUnwrap(closer.makeGraph(map))
        let reversed = SurfelMap(positions: positions.reversed(), normals: [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: n),
                                 radii: nil, confidences: nil, colors: nil)
        reversed.initTimes = (0..<n).map { Int32((n - 1 - $0) / 100 + 1) }
        let other = try XCTUnwrap(closer.makeGraph(reversed))
        XCTAssertEqual(reference.graph.positions.count, 60)
        XCTAssertEqual(sorted.graph.positions, reference.graph.positions)
        XCTAssertEqual(other.graph.positions, reference.graph.positions)
        XCTAssertEqual(sorted.nodeTimes, reference.nodeTimes)
    }

    /// A camera moves with the nodes made within `cameraWindow` frames of it, or with the
    /// `poseCandidates` nearest in time when the window holds fewer.
    func testCamerasUseTheNodesOfTheirWindow() {
        let graph = DeformationGraph(nodes: (0..<60).map { SIMD3<Double>(Double($0), 0, 2) }, parameters: DeformationGraph.Parameters())
        let times = (0..<60).map { Int32($0 * 2 + 1) }   // one node every other frame: 1, 3, ..., 119
        func nodes(_ window: Int, _ time: Int) -> Range<Int> {
            MapDeformation(graph: graph, nodeTimes: times, temporalCandidates: 20, cameraWindow: window).cameraNodes(time: time)
        }
        XCTAssertEqual(nodes(10, 61), 25..<36)    // times 51...71
        XCTAssertEqual(nodes(40, 61), 10..<51)    // times 21...101
        XCTAssertEqual(nodes(40, 5), 0..<23)      // times 1...45, cut at the start
        XCTAssertEqual(nodes(0, 61), 26..<34)     // the 8 nearest in time
        XCTAssertEqual(nodes(2, 61), 26..<34)     // 3 nodes in the window: the 8 nearest instead
    }
}

private extension SIMD3 where Scalar == Float {
    var normalizedF: SIMD3<Float> { self / (self * self).sum().squareRoot() }
}
