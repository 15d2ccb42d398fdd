import Foundation
import XCTest
import Geometry
import Imaging
import Mapping
import Sequences
import TestSupport
@testable import Pipeline

/// Frame-to-model ICP tracking (first step of the tracking issue: geometric term only).
final class TrackingTests: XCTestCase {
    nonisolated(unsafe) static var shared: URL?

    override class func tearDown() {
        if let shared { try? FileManager.default.removeItem(at: shared.deletingLastPathComponent()) }
        shared = nil
        super.tearDown()
    }

    private func makeSequence(_ name: String = #function) throws -> URL {
        if Self.shared == nil {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("semfuse-track-\(UUID().uuidString.prefix(8))")
            var options = SyntheticSequence.Options()
            options.frames = 90
            options.width = 192
            options.height = 144
            options.trajectory = SyntheticTrajectory(framesPerLoop: 720)
            try SyntheticSequence.write(to: root.appendingPathComponent("room"), name: "room", options: options)
            Self.shared = root.appendingPathComponent("room")
        }
        let copy = try SharedData.temporaryDirectory(self, name: name).appendingPathComponent("room")
        try FileManager.default.copyItem(at: Self.shared!, to: copy)
        return copy
    }

    private func track(_ url: URL, frames: Int? = nil) throws -> Reconstruction {
        let source = try SequenceLoader.open(url)
        var options = ReconstructionOptions()
        options.poses = .track
        if let frames { options.selection = FrameSelection(start: 0, end: frames) }
        let r = try Reconstruction(source: source, predictor: nil, options: options)
        XCTAssertTrue(r.run().isSuccess)
        return r
    }

    func testSyntheticSequenceIsTrackedToACentimetre() throws {
        let r = try track(try makeSequence())
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        print("synthetic tracking: \(ate)")
        XCTAssertTrue(r.trackingFailures.isEmpty, "\(r.trackingFailures)")
        XCTAssertLessThanOrEqual(ate.rmse, 0.01)
    }

    func testSevenScenesIsTrackedFromTheFirstPose() throws {
        let r = try track(try SharedData.require("7scenes-redkitchen-png50"))
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        print("7-Scenes frames 150-199 tracking: \(ate)")
        XCTAssertLessThanOrEqual(ate.rmse, 0.04, "aim 2 cm; geometric ICP alone reaches about 2.2 cm here")
    }

    func testMissingDepthIsReportedAndNotFused() throws {
        let url = try makeSequence()
        try PNGCodec.writeGray16(Image<UInt16>(width: 192, height: 144, repeating: 0), to: url.appendingPathComponent("depth/000040.png"))
        let r = try track(url)
        XCTAssertEqual(r.trackingFailures.map(\.position), [40])
        XCTAssertTrue(r.trackingFailures[0].reason.contains("pixels matched"), r.trackingFailures[0].reason)
        XCTAssertEqual(r.framesFused, 89)
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        XCTAssertLessThanOrEqual(ate.rmse, 0.01, "tracking goes on after the failure")
    }

    func testSuddenJumpIsReportedInsteadOfFused() throws {
        let url = try makeSequence()
        // Frame 50's depth from a viewpoint far along the loop: the camera seems to jump.
        let far = SyntheticRenderer(trajectory: SyntheticTrajectory(framesPerLoop: 720),
                                    intrinsics: SyntheticRenderer.defaultIntrinsics(width: 192, height: 144)).render(400).frame
        try PNGCodec.writeGray16(far.depth!.map { UInt16(($0 * 1000).rounded()) }, to: url.appendingPathComponent("depth/000050.png"))
        let r = try track(url)
        XCTAssertTrue(r.trackingFailures.map(\.position).contains(50), "\(r.trackingFailures)")
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        XCTAssertLessThanOrEqual(ate.rmse, 0.01, "the map and the later frames are not corrupted")
    }

    func testAbsoluteTrajectoryErrorAlignsRigidly() throws {
        let truth = (0..<20).map { RigidTransform(translation: SIMD3(Double($0) * 0.1, sin(Double($0)), 0.5), quaternion: SIMD4(0, 0, 0, 1)) }
        let offset = RigidTransform.exp(rho: SIMD3(1, -2, 0.5), omega: SIMD3(0.2, 0.1, -0.4))
        let estimated = truth.map { offset * $0 }
        let ate = try XCTUnwrap(AbsoluteTrajectoryError(estimated: estimated, groundTruth: truth))
        XCTAssertLessThan(ate.rmse, 1e-9)
        var noisy = estimated
        noisy[3].translation.x += 0.05
        XCTAssertGreaterThan(try XCTUnwrap(AbsoluteTrajectoryError(estimated: noisy, groundTruth: truth)).max, 0.03)
    }
}
