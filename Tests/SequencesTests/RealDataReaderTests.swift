import Foundation
import XCTest
import Geometry
import Imaging
import TestSupport
@testable import Sequences

/// Readers on the real datasets in ../shared/data (skipped with a message when absent).
final class RealDataReaderTests: XCTestCase {
    func testSevenScenesFramesPosesAndIntrinsics() throws {
        let url = try SharedData.require("7scenes-redkitchen-png50")
        let source = try SequenceLoader.open(url)
        XCTAssertEqual(source.layout, "7scenes")
        XCTAssertEqual(source.frameCount, 50)
        XCTAssertEqual(source.intrinsics, Intrinsics(fx: 585, fy: 585, cx: 320, cy: 240, width: 640, height: 480))
        XCTAssertTrue(source.capabilities.hasPoses)
        XCTAssertFalse(source.capabilities.colorRegisteredToDepth, "7-Scenes ships the two cameras' raw images")
        XCTAssertFalse(source.capabilities.depthIsRendered)
        let frame = try source.frame(at: 0)
        XCTAssertEqual(frame.timestamp, 150)
        let depth = try XCTUnwrap(frame.depth)
        // Raw value 1556 mm at (320, 240), checked with an independent decoder (ImagingTests).
        XCTAssertEqual(depth[320, 240], 1.556, accuracy: 1e-6)
        XCTAssertTrue(depth.pixels.allSatisfy { $0 == 0 || ($0 >= 0.3 && $0 <= 8) })
        // The pose file's first row, read by hand: 7.0352107e-001 3.1905547e-001 -6.3492483e-001 ...
        // The stored rotation is 1.2e-4 from orthonormal; the reader gives the nearest rotation,
        // whose first entry numpy's SVD puts at 0.70356538.
        let pose = try XCTUnwrap(frame.worldFromCamera)
        XCTAssertEqual(pose.rotation[0, 0], 0.70356538, accuracy: 1e-8)
        XCTAssertEqual(frame.poseDeviation, 1.18e-4, accuracy: 0.01e-4)
        XCTAssertTrue(pose.isValid)
    }

    func testSevenScenesJPEGSequence() throws {
        let url = try SharedData.require("7scenes-redkitchen")
        let source = try SequenceLoader.open(url)
        XCTAssertEqual(source.frameCount, 500)
        let frame = try source.frame(at: 499)
        XCTAssertEqual(frame.timestamp, 499)
        XCTAssertEqual(frame.color.width, 640)
    }

    /// Back-projects ICL-NUIM frames with the signed intrinsics and their poses: the views must
    /// overlap in world space, and clearly more than with a positive fy. This checks the fy sign
    /// and the camera-to-world pose convention together.
    func testICLNegativeFocalLengthAndPosesAgree() throws {
        let url = try SharedData.require("icl-nuim-livingroom5")
        let source = try SequenceLoader.open(url)
        XCTAssertEqual(source.layout, "icl-nuim")
        XCTAssertTrue(source.capabilities.colorRegisteredToDepth, "rendered from one camera")
        XCTAssertTrue(source.capabilities.depthIsRendered)
        XCTAssertEqual(source.intrinsics.fy, -480)
        let frames = try (0..<source.frameCount).map { try source.frame(at: $0) }
        func overlap(fy: Double) throws -> Double {
            var k = source.intrinsics
            k.fy = fy
            let clouds: [[SIMD3<Double>]] = try frames.map { frame in
                let depth = try XCTUnwrap(frame.depth), pose = try XCTUnwrap(frame.worldFromCamera)
                var pts: [SIMD3<Double>] = []
                for y in Swift.stride(from: 0, to: 480, by: 16) {
                    for x in Swift.stride(from: 0, to: 640, by: 16) where depth[x, y] > 0 {
                        pts.append(pose * SIMD3<Double>(k.backProject(u: Float(x), v: Float(y), depth: depth[x, y])))
                    }
                }
                return pts
            }
            var best = 0.0
            for i in 0..<clouds.count {
                for j in (i + 1)..<clouds.count {
                    let near = clouds[j].filter { p in clouds[i].contains { ($0 - p).length < 0.05 } }.count
                    best = max(best, Double(near) / Double(clouds[j].count))
                }
            }
            return best
        }
        let signed = try overlap(fy: -480), flipped = try overlap(fy: 480)
        XCTAssertGreaterThan(signed, 0.25)
        XCTAssertGreaterThan(signed, 2 * flipped)
    }

    func testTUMRealFrame() throws {
        let color = try SharedData.require("open3d-testdata/RGBD/other_formats/TUM_color.png")
        let depth = try SharedData.require("open3d-testdata/RGBD/other_formats/TUM_depth.png")
        let dir = try SharedData.temporaryDirectory(self)
        try FileManager.default.copyItem(at: color, to: dir.appendingPathComponent("c.png"))
        try FileManager.default.copyItem(at: depth, to: dir.appendingPathComponent("d.png"))
        try "# rgb\n1.000000 c.png\n".write(to: dir.appendingPathComponent("rgb.txt"), atomically: true, encoding: .utf8)
        try "# depth\n1.010000 d.png\n".write(to: dir.appendingPathComponent("depth.txt"), atomically: true, encoding: .utf8)
        let source = try SequenceLoader.open(dir)
        XCTAssertEqual(source.layout, "tum")
        XCTAssertFalse(source.capabilities.hasPoses)
        XCTAssertTrue(source.capabilities.colorRegisteredToDepth, "the TUM benchmark's depth is registered to its colour")
        XCTAssertFalse(source.capabilities.depthIsRendered)
        let values = try XCTUnwrap(source.frame(at: 0).depth).pixels.filter { $0 > 0 }.sorted()
        XCTAssertGreaterThan(values.count, 10_000)
        let median = values[values.count / 2]
        XCTAssertTrue(median > 0.5 && median < 5, "median depth \(median) m")
    }
}
