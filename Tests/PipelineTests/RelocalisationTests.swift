import Foundation
import Geometry
import Imaging
import Mapping
import Sequences
import TestSupport
import XCTest
@testable import Pipeline

/// Relocalisation on the real kitchen: a camera that lost tracking across a gap in the sequence
/// (frames 200-259 removed: 44 cm and 10 degrees of motion, beyond ICP's reach) is found again
/// and the rest is fused into the same map.
final class RealRelocalisationTests: XCTestCase {
    /// A 7-Scenes folder of links to the given frames of the shared sequence.
    func sequence(_ frames: [Int]) throws -> URL {
        let shared = try SharedData.require("7scenes-redkitchen")
        let folder = try SharedData.temporaryDirectory(self).appendingPathComponent("gap")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("camera-intrinsics.txt"),
                                                   withDestinationURL: shared.appendingPathComponent("camera-intrinsics.txt"))
        for f in frames {
            for suffix in ["color.jpg", "depth.png", "pose.txt"] {
                let name = String(format: "frame-%06d.%@", f, suffix)
                try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent(name),
                                                           withDestinationURL: shared.appendingPathComponent(name))
            }
        }
        return folder
    }

    func track(_ url: URL, relocalise: Bool) throws -> Reconstruction {
        var options = ReconstructionOptions()
        options.poses = .track
        options.relocalise = relocalise
        let r = try Reconstruction(source: try SequenceLoader.open(url), predictor: nil, options: options)
        XCTAssertTrue(r.run().isSuccess)
        return r
    }

    func testTrackingRecoversAfterAGap() throws {
        let url = try sequence(Array(150..<200) + Array(260..<290))
        let lost = try track(url, relocalise: false)
        XCTAssertGreaterThan(lost.trackingFailures.count, 20, "without relocalisation the camera stays lost")
        XCTAssertTrue(lost.relocalisations.isEmpty)

        let found = try track(url, relocalise: true)
        XCTAssertEqual(found.framesFused, 80, "\(found.trackingFailures.prefix(3))")
        let first = try XCTUnwrap(found.relocalisations.first)
        XCTAssertEqual(first.position, 50, "the first frame after the gap")
        XCTAssertGreaterThan(first.inliers, 15, "registered by keypoints, not from the keyframe's own pose")
        let ate = try XCTUnwrap(found.absoluteTrajectoryError)
        print("gap 150-199 + 260-289: \(ate), \(found.relocaliser!.keyframeCount) keyframes")
        XCTAssertLessThan(ate.rmse, 0.04, "one consistent trajectory, so one copy of the room")
    }

    /// Keypoints with depth and RANSAC between the frames on either side of a 30-frame gap
    /// (24 cm, 10 degrees) agree with the ground-truth relative pose.
    func testKeypointRegistrationAcrossTheGapMatchesGroundTruth() throws {
        let source = try SequenceLoader.open(try sequence([199, 230]))
        let a = try source.frame(at: 0), b = try source.frame(at: 1)
        let detector = KeypointDetector()
        func features(_ f: Frame) throws -> KeypointSet {
            let color = try XCTUnwrap(f.color), depth = try XCTUnwrap(f.depth)
            return detector.detect(grey: IntensityMap.luma(color), width: color.width, height: color.height, depth: depth, intrinsics: source.intrinsics)
        }
        let ka = try features(a), kb = try features(b)
        let matches = KeypointDetector.match(kb, ka)
        let fit = try XCTUnwrap(RigidRANSAC.estimate(source: matches.map { kb.points[$0.0] }, target: matches.map { ka.points[$0.1] }))
        let truth = try XCTUnwrap(a.worldFromCamera).inverse * XCTUnwrap(b.worldFromCamera)
        let error = fit.targetFromSource.inverse * truth
        print("199 → 230: \(matches.count) matches, \(fit.inliers) inliers; error \(error.translationNorm * 100) cm, \(error.rotationAngle * 180 / .pi) deg; motion \(truth.translationNorm * 100) cm")
        XCTAssertLessThan(error.translationNorm, 0.05)
        XCTAssertLessThan(error.rotationAngle * 180 / .pi, 3)
    }
}
