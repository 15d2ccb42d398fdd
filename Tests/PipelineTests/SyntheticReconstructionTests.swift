import Foundation
import XCTest
import Export
import Geometry
import Imaging
import Mapping
import Semantics
import Sequences
import TestSupport
@testable import Pipeline

/// End to end on a synthetic room the project renders itself: exact ground truth for the
/// surfaces and their classes.
final class SyntheticReconstructionTests: XCTestCase {
    static let frames = 120

    /// One rendered sequence shared by the tests (rendering is the slow part).
    nonisolated(unsafe) static var shared: URL?

    override class func tearDown() {
        if let shared { try? FileManager.default.removeItem(at: shared.deletingLastPathComponent()) }
        shared = nil
        super.tearDown()
    }

    /// A private copy of a short synthetic sequence (slow loop so surfaces are seen long enough
    /// to become stable), rendered once per test run.
    private func makeSequence(_ name: String = #function) throws -> URL {
        if Self.shared == nil {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("semfuse-room-\(UUID().uuidString.prefix(8))")
            let dir = root.appendingPathComponent("room")
            var options = SyntheticSequence.Options()
            options.frames = Self.frames
            options.width = 192
            options.height = 144
            options.trajectory = SyntheticTrajectory(framesPerLoop: 720)
            try SyntheticSequence.write(to: dir, name: "room", options: options)
            Self.shared = dir
        }
        let copy = try SharedData.temporaryDirectory(self, name: name).appendingPathComponent("room")
        try FileManager.default.copyItem(at: Self.shared!, to: copy)
        return copy
    }

    /// `reconstruct --labels simulated` of the room with fusion parameters changed by
    /// `configure`; the point cloud as written.
    private func reconstruct(_ sequence: URL, to output: URL, configure: (inout FusionParameters) -> Void) throws -> PointCloud {
        var request = ReconstructionRequest(sequence: sequence)
        request.labels = .simulated
        configure(&request.fusion)
        request.output = output
        let result = try ReconstructionJob.run(request)
        XCTAssertTrue(result.outcome.isSuccess)
        return try PLYReader.read(result.output).pointCloud()
    }

    func testSurfaceErrorAndLabelAccuracyAgainstGroundTruth() throws {
        let sequence = try makeSequence()
        var request = ReconstructionRequest(sequence: sequence)
        request.labels = .simulated
        request.output = sequence.deletingLastPathComponent().appendingPathComponent("room.ply")
        let result = try ReconstructionJob.run(request)
        XCTAssertTrue(result.outcome.isSuccess)
        XCTAssertEqual(result.reconstruction.framesFused, Self.frames)

        // Score the PLY as written: distance of every point to the true surfaces, and its label
        // against the class of the nearest true surface.
        let ply = try PLYReader.read(result.output).pointCloud()
        XCTAssertGreaterThan(ply.count, 3000)
        let score = try XCTUnwrap(SyntheticScene.livingRoom().score(positions: ply.positions, labels: ply.labels))
        let median = score.medianDistance
        let mapAccuracy = try XCTUnwrap(score.labelAccuracy)
        let frameAccuracy = try XCTUnwrap(result.reconstruction.perFrameAccuracy.accuracy)
        print(String(format: "synthetic room: %d points, median surface error %.2f mm (p90 %.2f mm); label accuracy per frame %.1f %%, fused map %.1f %%",
                     ply.count, median * 1000, score.p90Distance * 1000, frameAccuracy * 100, mapAccuracy * 100))
        XCTAssertLessThanOrEqual(median, 0.01)
        XCTAssertGreaterThan(Double(score.labelledCount) / Double(ply.count), 0.95)
        XCTAssertGreaterThan(mapAccuracy, frameAccuracy + 0.05, "fusion must fix a good part of the per-frame errors")
    }

    /// The compact label storage (the default, `LabelStorage.standard`) against SemanticFusion's
    /// dense Float32 table on the same run: the same points, the same labels almost everywhere,
    /// and no loss of label accuracy against the true classes.
    func testCompactLabelStorageKeepsTheDenseMapsLabels() throws {
        let sequence = try makeSequence()
        let folder = sequence.deletingLastPathComponent()
        func run(_ storage: LabelStorage) throws -> PointCloud {
            try reconstruct(sequence, to: folder.appendingPathComponent("room-\(storage).ply")) { $0.labelStorage = storage }
        }
        let dense = try run(.dense)
        let a = try XCTUnwrap(dense.labels)
        let scene = SyntheticScene.livingRoom()
        let denseAccuracy = try XCTUnwrap(scene.score(positions: dense.positions, labels: a)?.labelAccuracy)
        for storage in [LabelStorage.standard, .topK(4), .log8] {
            let compact = try run(storage)
            XCTAssertEqual(dense.positions, compact.positions, "label storage must not change the geometry")
            let b = try XCTUnwrap(compact.labels)
            let agreement = Double(zip(a, b).filter { $0 == $1 }.count) / Double(a.count)
            let compactAccuracy = try XCTUnwrap(scene.score(positions: compact.positions, labels: b)?.labelAccuracy)
            print(String(format: "synthetic room, %d points: %@ labels agree with dense on %.3f %%; accuracy against the truth %.3f %% (dense %.3f %%)",
                         a.count, "\(storage)", agreement * 100, compactAccuracy * 100, denseAccuracy * 100))
            XCTAssertGreaterThanOrEqual(agreement, 0.995, "\(storage)")
            XCTAssertGreaterThanOrEqual(compactAccuracy, denseAccuracy - 0.002, "\(storage)")
        }
    }

    /// The map's periodic spatial reordering against none, on the same run. Only where surfels
    /// are stored changes, but where two candidates tie exactly (the same depth bits at a pixel)
    /// the lower index wins, so the maps are not bit-identical: the test bounds the difference
    /// by what it does to the map against the true scene (surface error within 0.05 mm, label
    /// accuracy within 0.3 points, point count within 1 %).
    func testSpatialOrderKeepsTheMapsQuality() throws {
        let sequence = try makeSequence()
        let folder = sequence.deletingLastPathComponent()
        let scene = SyntheticScene.livingRoom()
        func run(_ interval: Int) throws -> (count: Int, error: Double, accuracy: Double) {
            let cloud = try reconstruct(sequence, to: folder.appendingPathComponent("room-order\(interval).ply")) {
                $0.spatialOrderInterval = interval
            }
            let score = try XCTUnwrap(scene.score(positions: cloud.positions, labels: cloud.labels))
            return (cloud.count, score.medianDistance, try XCTUnwrap(score.labelAccuracy))
        }
        let plain = try run(0), sorted = try run(7)
        print(String(format: "synthetic room, spatial order every 7 frames against none: %d / %d points, surface error %.3f / %.3f mm, label accuracy %.2f / %.2f %%",
                     sorted.count, plain.count, sorted.error * 1000, plain.error * 1000, sorted.accuracy * 100, plain.accuracy * 100))
        XCTAssertEqual(Double(sorted.count), Double(plain.count), accuracy: 0.01 * Double(plain.count))
        XCTAssertEqual(sorted.error, plain.error, accuracy: 0.000_05)
        XCTAssertEqual(sorted.accuracy, plain.accuracy, accuracy: 0.003)
    }

    /// `reconstruct --mesh` on the synthetic room: the mesh lies on the true surfaces, its
    /// labels agree with the surfel map's around each vertex and with the true classes, and the
    /// faces are written as PLY triangles (`element face`, `list uchar int`).
    func testMeshOfTheRoomAgreesWithTheMapAndTheTruth() throws {
        let sequence = try makeSequence()
        let folder = sequence.deletingLastPathComponent()
        var request = ReconstructionRequest(sequence: sequence)
        request.labels = .simulated
        request.output = folder.appendingPathComponent("room.ply")
        var mesh = MeshRequest(output: folder.appendingPathComponent("room.mesh.ply"))
        mesh.perClassDirectory = folder.appendingPathComponent("classes")
        request.mesh = mesh
        let result = try ReconstructionJob.run(request)
        XCTAssertTrue(result.summary.contains("Wrote \(mesh.output.path): mesh of"), result.summary)

        let data = try Data(contentsOf: mesh.output)
        let header = String(decoding: data.prefix(4096), as: UTF8.self)
        XCTAssertTrue(header.contains("element face "), header)
        XCTAssertTrue(header.contains("property list uchar int vertex_indices"), header)
        let vertices = try PLYReader.read(mesh.output).pointCloud()
        let map = try PLYReader.read(result.output).pointCloud()
        XCTAssertGreaterThan(vertices.count, 1000)
        let score = try XCTUnwrap(SyntheticScene.livingRoom().score(positions: vertices.positions, labels: vertices.labels))
        let truthAccuracy = try XCTUnwrap(score.labelAccuracy)
        let mapScore = try XCTUnwrap(SyntheticScene.livingRoom().score(positions: map.positions, labels: map.labels))
        // Agreement with the label of the nearest exported surfel.
        let mapLabels = try XCTUnwrap(map.labels), meshLabels = try XCTUnwrap(vertices.labels)
        var buckets: [SIMD3<Int32>: [Int]] = [:]
        let cell: Float = 0.05
        func key(_ p: SIMD3<Float>) -> SIMD3<Int32> { SIMD3(Int32((p.x / cell).rounded(.down)), Int32((p.y / cell).rounded(.down)), Int32((p.z / cell).rounded(.down))) }
        for (i, p) in map.positions.enumerated() { buckets[key(p), default: []].append(i) }
        var agree = 0, compared = 0
        for (v, p) in vertices.positions.enumerated() {
            let k = key(p)
            var best = -1, bestDistance = Float.infinity
            for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
                for i in buckets[k &+ SIMD3(Int32(dx), Int32(dy), Int32(dz))] ?? [] {
                    let d = map.positions[i] - p
                    let d2 = (d * d).sum()
                    if d2 < bestDistance { bestDistance = d2; best = i }
                }
            }}}
            guard best >= 0, mapLabels[best] >= 0 else { continue }
            compared += 1
            if mapLabels[best] == meshLabels[v] { agree += 1 }
        }
        let agreement = Double(agree) / Double(max(compared, 1))
        print(String(format: "synthetic room mesh: %d vertices, median distance to the true surfaces %.2f mm (map %.2f mm), label accuracy %.1f %% (map %.1f %%), agreement with the nearest surfel's label %.1f %%",
                     vertices.count, score.medianDistance * 1000, mapScore.medianDistance * 1000, truthAccuracy * 100,
                     (mapScore.labelAccuracy ?? 0) * 100, agreement * 100))
        XCTAssertLessThanOrEqual(score.medianDistance, 0.01)
        XCTAssertGreaterThanOrEqual(truthAccuracy, 0.95)
        XCTAssertGreaterThanOrEqual(agreement, 0.98)
        let parts = try FileManager.default.contentsOfDirectory(atPath: mesh.perClassDirectory!.path)
        XCTAssertGreaterThan(parts.count, 2, "\(parts)")
        XCTAssertTrue(parts.allSatisfy { $0.hasSuffix(".ply") })
    }

    func testPLYIsReadBackPropertyByProperty() throws {
        let sequence = try makeSequence()
        var request = ReconstructionRequest(sequence: sequence)
        request.labels = .groundTruth
        request.selection = FrameSelection(start: 0, end: 40)
        request.includeProbabilities = true
        request.onlyStable = false
        let folder = sequence.deletingLastPathComponent()
        for ascii in [false, true] {
            request.ascii = ascii
            request.output = folder.appendingPathComponent(ascii ? "a.ply" : "b.ply")
            let result = try ReconstructionJob.run(request)
            let map = result.reconstruction.map
            let expected = MapExport.pointCloud(map, classSet: .nyu40, colorMode: .semantic, confidenceThreshold: nil, includeProbabilities: true)
            let file = try PLYReader.read(result.output)
            XCTAssertEqual(file.format, ascii ? "ascii" : "binary_little_endian")
            XCTAssertEqual(file.properties.map(\.name), ["x", "y", "z", "nx", "ny", "nz", "red", "green", "blue", "label",
                                                          "label_confidence", "confidence", "radius"] + (0..<40).map { "prob_\($0)" })
            XCTAssertTrue(file.comments.contains("class 0 wall 128 0 0"))
            let cloud = file.pointCloud()
            XCTAssertEqual(cloud.count, map.count)
            let tol: Float = ascii ? 1e-6 : 0
            for i in Swift.stride(from: 0, to: cloud.count, by: 7) {
                XCTAssertEqual((cloud.positions[i] - expected.positions[i]).length, 0, accuracy: tol * 10)
                XCTAssertEqual((cloud.normals![i] - expected.normals![i]).length, 0, accuracy: tol)
                XCTAssertEqual(cloud.colors![i], expected.colors![i])
                XCTAssertEqual(cloud.labels![i], expected.labels![i])
                XCTAssertEqual(cloud.labelConfidence![i], expected.labelConfidence![i], accuracy: tol)
                XCTAssertEqual(cloud.confidence![i], expected.confidence![i], accuracy: tol * 10)
                XCTAssertEqual(cloud.radius![i], expected.radius![i], accuracy: tol)
                for k in 0..<40 {
                    XCTAssertEqual(cloud.classProbabilities!.values[i * 40 + k], expected.classProbabilities!.values[i * 40 + k], accuracy: tol)
                }
                if let label = map.label(of: i) {
                    XCTAssertEqual(Int(cloud.labels![i]), label.classId)
                    XCTAssertEqual(cloud.colors![i], ClassSet.nyu40.color(of: label.classId))
                }
            }
            let trajectory = try TUMTrajectory.read(result.trajectory)
            XCTAssertEqual(trajectory.count, 40)
        }
    }

    func testAFailingFrameStillLeavesAValidMapOfTheFramesBefore() throws {
        let sequence = try makeSequence()
        // Corrupt frame 30's depth: the run must stop there and still write frames 0-29.
        let depth = sequence.appendingPathComponent("depth/000030.png")
        let bytes = try Data(contentsOf: depth)
        try bytes.prefix(100).write(to: depth)
        var request = ReconstructionRequest(sequence: sequence)
        request.labels = .groundTruth
        request.onlyStable = false
        request.output = sequence.deletingLastPathComponent().appendingPathComponent("partial.ply")
        let result = try ReconstructionJob.run(request)
        guard case .failed(let error) = result.outcome else { return XCTFail("expected a failure, got \(result.outcome)") }
        XCTAssertTrue("\(error)".contains("depth/000030.png"), "\(error)")
        XCTAssertEqual(result.exitCode, 1)
        XCTAssertEqual(result.reconstruction.framesFused, 30)
        let file = try PLYReader.read(result.output)
        XCTAssertEqual(file.vertexCount, result.reconstruction.map.count)
        XCTAssertTrue(file.comments.contains { $0.contains("PARTIAL") })
        XCTAssertEqual(try TUMTrajectory.read(result.trajectory).count, 30)
        XCTAssertTrue(result.summary.contains("FAILED"))
    }

    /// A tracked run writes the corrected trajectory and, on request, the raw one; the summary
    /// reports loop closure (none here: 40 frames never leave surface inactive), and
    /// `loopClosure = false` leaves it out.
    func testTrackedRunWritesRawTrajectoryAndReportsLoopClosure() throws {
        let sequence = try makeSequence()
        var request = ReconstructionRequest(sequence: sequence)
        request.labels = .none
        request.poses = .track
        request.selection = FrameSelection(start: 0, end: 40)
        request.output = sequence.deletingLastPathComponent().appendingPathComponent("tracked.ply")
        request.rawTrajectory = sequence.deletingLastPathComponent().appendingPathComponent("tracked.raw.txt")
        let result = try ReconstructionJob.run(request)
        XCTAssertEqual(result.exitCode, 0)
        let corrected = try TUMTrajectory.read(result.trajectory), raw = try TUMTrajectory.read(request.rawTrajectory!)
        XCTAssertEqual(corrected.count, 40)
        XCTAssertEqual(raw.count, 40)
        for (a, b) in zip(corrected, raw) { XCTAssertLessThan((a.pose.translation - b.pose.translation).length, 1e-6) }
        XCTAssertTrue(result.summary.contains("loop closure: no old (inactive) surface came back into view"), result.summary)

        request.loopClosure = false
        request.rawTrajectory = nil
        request.output = sequence.deletingLastPathComponent().appendingPathComponent("open-loop.ply")
        let open = try ReconstructionJob.run(request)
        XCTAssertFalse(open.summary.contains("loop closure"), open.summary)
        // The same raw output may not be named twice.
        request.rawTrajectory = open.trajectory
        XCTAssertThrowsError(try ReconstructionJob.run(request))
    }

    func testInterruptionWritesTheMapSoFar() throws {
        let sequence = try makeSequence()
        var request = ReconstructionRequest(sequence: sequence)
        request.labels = .none
        request.onlyStable = false
        request.output = sequence.deletingLastPathComponent().appendingPathComponent("stopped.ply")
        var calls = 0
        let result = try ReconstructionJob.run(request, shouldStop: { calls += 1; return calls > 10 })
        guard case .interrupted = result.outcome else { return XCTFail("expected interruption") }
        XCTAssertEqual(result.reconstruction.framesFused, 10)
        XCTAssertEqual(try PLYReader.read(result.output).vertexCount, result.reconstruction.map.count)
        XCTAssertEqual(result.exitCode, 130)
    }

    func testUnwritableOutputFailsBeforeAnyWork() throws {
        let sequence = try makeSequence()
        let blocker = sequence.deletingLastPathComponent().appendingPathComponent("not-a-folder")
        try Data("x".utf8).write(to: blocker)
        var request = ReconstructionRequest(sequence: sequence)
        request.output = blocker.appendingPathComponent("map.ply")
        XCTAssertThrowsError(try ReconstructionJob.run(request)) {
            XCTAssertTrue("\($0)".contains("not-a-folder") && "\($0)".contains("not a folder"), "\($0)")
        }
    }

    func testRecordedProbabilitiesReplayWithoutLabels() throws {
        let dir = try SharedData.temporaryDirectory(self).appendingPathComponent("recorded")
        var options = SyntheticSequence.Options()
        options.frames = 12
        options.width = 96
        options.height = 72
        options.recordProbabilities = true
        try SyntheticSequence.write(to: dir, name: "recorded", options: options)
        let source = try SequenceLoader.open(dir)
        XCTAssertTrue(source.capabilities.hasProbabilities)
        // The replayed probabilities equal the simulated ones up to float16 storage.
        let frame = try source.frame(at: 5)
        let direct = SimulatedSegmenter(classSet: .nyu40, seed: 1).predict(labels: frame.labels!, frameIndex: 5)
        let recorded = try XCTUnwrap(frame.probabilities)
        XCTAssertEqual(recorded.width, direct.width)
        for k in Swift.stride(from: 0, to: direct.values.count, by: 13) { XCTAssertEqual(recorded.values[k], direct.values[k], accuracy: 1e-3) }
        var request = ReconstructionRequest(sequence: dir)
        request.output = dir.deletingLastPathComponent().appendingPathComponent("r.ply")
        request.onlyStable = false
        let result = try ReconstructionJob.run(request)
        XCTAssertTrue(result.reconstruction.predictor is RecordedPredictor, "auto picks recorded probabilities")
        XCTAssertEqual(result.reconstruction.framesWithPrediction, 12)
    }

    func testNYU40SequenceFusedIntoNYU13() throws {
        let sequence = try makeSequence()
        var request = ReconstructionRequest(sequence: sequence)
        request.labels = .simulated
        request.classSet = .nyu13
        request.selection = FrameSelection(start: 0, end: 60)
        request.output = sequence.deletingLastPathComponent().appendingPathComponent("nyu13.ply")
        let result = try ReconstructionJob.run(request)
        XCTAssertEqual(result.reconstruction.map.classCount, 14)
        let file = try PLYReader.read(result.output)
        XCTAssertTrue(file.comments.contains("class_set nyu13"))
        let labels = try XCTUnwrap(file.column(named: "label"))
        XCTAssertTrue(labels.allSatisfy { $0 >= -1 && $0 <= 13 && $0 != 0 }, "NYU-13 ids, never the unlabelled class")
        XCTAssertGreaterThan(try XCTUnwrap(result.reconstruction.perFrameAccuracy.accuracy), 0.5)
    }
}
