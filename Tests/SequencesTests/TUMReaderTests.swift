import Foundation
import XCTest
import Geometry
import Imaging
import TestSupport
@testable import Sequences

/// A TUM-layout fixture built from 7-Scenes frames: jittered timestamps, depth at 5000/m,
/// ground truth as quaternions at a different rate.
final class TUMReaderTests: XCTestCase {
    func testAssociationPosesAndDepthMatchTheSource() throws {
        let sevenURL = try SharedData.require("7scenes-redkitchen-png50")
        let seven = try SequenceLoader.open(sevenURL)
        let dir = try SharedData.temporaryDirectory(self)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("rgb"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("depth"), withIntermediateDirectories: true)
        var rgbList = "# color images\n", depthList = "# depth images\n", gt = "# ground truth\n"
        let count = 6
        var truth: [(Double, RigidTransform)] = []
        for i in 0..<count {
            let frame = try seven.frame(at: i)
            let t = 100 + Double(i) / 30
            let depthT = t + (i % 2 == 0 ? 0.004 : -0.006)           // depth a few ms off
            try PNGCodec.writeRGB(frame.color, to: dir.appendingPathComponent("rgb/\(i).png"))
            let mm = try PNGCodec.readGray16(sevenURL.appendingPathComponent(String(format: "frame-%06d.depth.png", 150 + i)))
            try PNGCodec.writeGray16(mm.map { $0 == 65535 ? 0 : UInt16(min(65535, Int($0) * 5)) }, to: dir.appendingPathComponent("depth/\(i).png"))
            rgbList += String(format: "%.6f rgb/%d.png\n", t, i)
            depthList += String(format: "%.6f depth/%d.png\n", depthT, i)
            truth.append((t, try XCTUnwrap(frame.worldFromCamera)))
        }
        rgbList += String(format: "%.6f rgb/0.png\n", 100 + 1.0)       // an rgb image without depth
        // Ground truth exactly at the colour stamps and halfway between them.
        var gtPoses: [StampedPose] = []
        for (k, (t, pose)) in truth.enumerated() {
            gtPoses.append(StampedPose(timestamp: t, pose: pose))
            if k + 1 < truth.count {
                gtPoses.append(StampedPose(timestamp: (t + truth[k + 1].0) / 2, pose: pose))
            }
        }
        gt += TUMTrajectory.encode(gtPoses)
        try rgbList.write(to: dir.appendingPathComponent("rgb.txt"), atomically: true, encoding: .utf8)
        try depthList.write(to: dir.appendingPathComponent("depth.txt"), atomically: true, encoding: .utf8)
        try gt.write(to: dir.appendingPathComponent("groundtruth.txt"), atomically: true, encoding: .utf8)
        try "585 585 320 240\n".write(to: dir.appendingPathComponent("intrinsics.txt"), atomically: true, encoding: .utf8)

        let tum = try SequenceLoader.open(dir)
        XCTAssertEqual(tum.layout, "tum")
        XCTAssertEqual(tum.frameCount, count, "the extra colour image has no depth and is dropped")
        XCTAssertTrue(tum.capabilities.hasPoses)
        XCTAssertEqual(tum.intrinsics.fx, 585)
        for i in 0..<count {
            let a = try tum.frame(at: i), b = try seven.frame(at: i)
            XCTAssertEqual(a.timestamp, truth[i].0, accuracy: 1e-6)
            let pa = try XCTUnwrap(a.worldFromCamera), pb = try XCTUnwrap(b.worldFromCamera)
            // 7-Scenes' stored rotations are orthonormal only to ~1e-4; the quaternion is exact
            // for the nearest rotation, so rotations agree to that level and translations exactly.
            for (x, y) in zip(pa.rotation.rowMajor, pb.rotation.rowMajor) { XCTAssertEqual(x, y, accuracy: 2e-4) }
            XCTAssertEqual((pa.translation - pb.translation).length, 0, accuracy: 1e-6)
            let da = try XCTUnwrap(a.depth), db = try XCTUnwrap(b.depth)
            var maxDiff: Float = 0
            for p in 0..<da.count { maxDiff = max(maxDiff, abs(da.pixels[p] - db.pixels[p])) }
            XCTAssertLessThanOrEqual(maxDiff, 1 / 5000 + 1e-6)
            XCTAssertEqual(a.color.pixels, b.color.pixels)
        }
    }

    func testPoseInterpolationAndGaps() {
        let a = StampedPose(timestamp: 0, pose: .identity)
        let b = StampedPose(timestamp: 0.04, pose: RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 0, 1), angle: 0.2),
                                                                 translation: SIMD3(0.4, 0, 0)))
        let mid = TUMReader.interpolate([a, b], at: 0.01, maxGap: 0.05)!
        XCTAssertEqual(mid.translation.x, 0.1, accuracy: 1e-12)
        XCTAssertEqual(mid.rotationAngle, 0.05, accuracy: 1e-12)
        XCTAssertNil(TUMReader.interpolate([a, b], at: 0.5, maxGap: 0.05), "outside the ground truth")
        XCTAssertNil(TUMReader.interpolate([a, StampedPose(timestamp: 1, pose: .identity)], at: 0.5, maxGap: 0.05), "gap too long")
    }

    func testTrajectoryRoundTripAndErrors() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let poses = [
            StampedPose(timestamp: 1.5, pose: .identity),
            StampedPose(timestamp: 2.25, pose: RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(1, 0, 0), angle: .pi), translation: SIMD3(1, -2, 3))),
            StampedPose(timestamp: 3, pose: RigidTransform.exp(rho: SIMD3(0.1, 0.2, 0.3), omega: SIMD3(0.3, -0.2, 0.9))),
        ]
        let url = dir.appendingPathComponent("t.txt")
        try TUMTrajectory.write(poses, to: url, comment: "test")
        let back = try TUMTrajectory.read(url)
        XCTAssertEqual(back.count, 3)
        for (p, q) in zip(poses, back) {
            XCTAssertEqual(p.timestamp, q.timestamp, accuracy: 1e-6)
            for (x, y) in zip(p.pose.matrix4RowMajor, q.pose.matrix4RowMajor) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        }
        try "1 2 3\n".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TUMTrajectory.read(url)) { XCTAssertTrue("\($0)".contains("t.txt:1"), "\($0)") }
        try "1 0 0 0 0 0 0 0\n".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TUMTrajectory.read(url)) { XCTAssertTrue("\($0)".contains("zero quaternion"), "\($0)") }
    }
}
