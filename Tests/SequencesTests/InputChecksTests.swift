import Foundation
import XCTest
import Geometry
import Imaging
import TestSupport
@testable import Sequences

/// Issue 9, families 1, 5 and 6 at the reader level: real-data pose tolerances, nonsense values
/// refused with the file named, and messages that say what is actually wrong.
final class InputChecksTests: XCTestCase {
    /// The error's text, asserting it is a `SequenceError`.
    private func sequenceError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        var text = ""
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is SequenceError, "\(type(of: error)): \(error)", file: file, line: line)
            text = "\(error)"
        }
        return text
    }

    /// A 7-Scenes folder of 8x6 frames with the given 4x4 pose files (row-major, 16 numbers).
    private func sevenScenes(_ dir: URL, poses: [[Double]], intrinsics: Bool = true) throws -> URL {
        let folder = dir.appendingPathComponent("seq")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (n, pose) in poses.enumerated() {
            let stem = folder.appendingPathComponent(String(format: "frame-%06d", n)).path
            try PNGCodec.writeRGB(ColorImage(width: 8, height: 6, repeating: RGB8(100, 120, 140)), to: URL(fileURLWithPath: stem + ".color.png"))
            try PNGCodec.writeGray16(Image<UInt16>(width: 8, height: 6, repeating: 1500), to: URL(fileURLWithPath: stem + ".depth.png"))
            let rows = (0..<4).map { r in (0..<4).map { String(format: "%.9e", pose[r * 4 + $0]) }.joined(separator: " ") }
            try (rows.joined(separator: "\n") + "\n").write(toFile: stem + ".pose.txt", atomically: true, encoding: .utf8)
        }
        if intrinsics {
            try "7 0 3.5\n0 7 2.5\n0 0 1\n".write(to: folder.appendingPathComponent("camera-intrinsics.txt"), atomically: true, encoding: .utf8)
        }
        return folder
    }

    /// Frame 0 of the shared 7-Scenes sequence as stored (8.4e-5 from the nearest rotation).
    private static let realPose: [Double] = [
        9.093128999999999795e-01, 2.726222899999999894e-01, -3.142243299999999961e-01, -3.404563400000000239e-01,
        -2.724861800000000223e-01, 9.610497999999999541e-01, 4.527962600000000337e-02, 1.646981800000000065e-02,
        3.143392500000000145e-01, 4.444964600000000238e-02, 9.482093499999999509e-01, 2.965691699999999931e-01,
        0, 0, 0, 1]

    /// `pose` with its rotation multiplied by `m` (row-major 3x3) on the right.
    private static func distort(_ pose: [Double], _ m: [Double]) -> [Double] {
        var out = pose
        for r in 0..<3 { for c in 0..<3 { out[r * 4 + c] = (0..<3).reduce(0) { $0 + pose[r * 4 + $1] * m[$1 * 3 + c] } } }
        return out
    }

    // MARK: Family 1: real-data poses

    func testNearlyOrthonormalPosesAreAcceptedAndReorthonormalisedClearlyNonRigidOnesRefused() throws {
        let dir = try SharedData.temporaryDirectory(self)
        // Like redkitchen frames 500-999: a symmetric error of ~1e-3 (single-precision tracker).
        let e = 1e-3
        let imprecise = Self.distort(Self.realPose, [1 - e, 0.5 * e, 0, 0.5 * e, 1 + 0.3 * e, -0.4 * e, 0, -0.4 * e, 1 - 0.8 * e])
        let scaled = Self.distort(Self.realPose, [1.05, 0, 0, 0, 1.05, 0, 0, 0, 1.05])
        let sheared = Self.distort(Self.realPose, [1, 0.1, 0, 0, 1, 0, 0, 0, 1])
        let mirrored = Self.distort(Self.realPose, [1, 0, 0, 0, 1, 0, 0, 0, -1])
        let folder = try sevenScenes(dir, poses: [Self.realPose, imprecise, scaled, sheared, mirrored])
        let source = try SequenceLoader.open(folder)
        XCTAssertTrue(source.capabilities.hasPoses)
        for k in 0..<2 {
            let frame = try source.frame(at: k)
            XCTAssertNil(frame.poseError)
            let pose = try XCTUnwrap(frame.worldFromCamera)
            XCTAssertEqual(try XCTUnwrap(pose.rotation.nearestRotation).deviation, 0, accuracy: 1e-13, "re-orthonormalised")
            XCTAssertEqual(pose.rotation.determinant, 1, accuracy: 1e-13)
            XCTAssertGreaterThan(frame.poseDeviation, k == 0 ? 8e-5 : 1e-3)
            XCTAssertLessThan(frame.poseDeviation, RigidTransform.rotationTolerance)
            XCTAssertEqual(pose.translation.x, -0.34045634, accuracy: 1e-12)
        }
        // Reading the frame never throws for its pose: the error rides on the frame, naming the
        // file and its first line.
        for (k, words) in [(2, "scaled or sheared"), (3, "scaled or sheared"), (4, "determinant is -1")] {
            let frame = try source.frame(at: k)
            XCTAssertNil(frame.worldFromCamera)
            let error = try XCTUnwrap(frame.poseError)
            XCTAssertTrue(error.description.contains(String(format: "frame-%06d.pose.txt:1: not a rigid transform", k)), error.description)
            XCTAssertTrue(error.description.contains(words), error.description)
            // The cheap ground-truth path agrees.
            XCTAssertEqual(try source.groundTruth(at: k).poseError?.description, error.description)
        }
    }

    /// All 500 poses of the shared 7-Scenes sequence at their real precision.
    func testRealSevenScenesPosesAtTheirRealPrecision() throws {
        let source = try SequenceLoader.open(try SharedData.require("7scenes-redkitchen"))
        XCTAssertEqual(source.frameCount, 500)
        var worst = 0.0
        for k in 0..<source.frameCount {
            let truth = try source.groundTruth(at: k)
            XCTAssertNil(truth.poseError, "frame \(k)")
            // Re-orthonormalised exactly; the stored matrices are not.
            XCTAssertEqual(try XCTUnwrap(truth.pose?.rotation.nearestRotation).deviation, 0, accuracy: 1e-13, "frame \(k)")
            let url = try SharedData.require(String(format: "7scenes-redkitchen/frame-%06d.pose.txt", k))
            worst = max(worst, try SevenScenesReader.readPose(url, frame: k).deviation)
        }
        XCTAssertEqual(try source.frame(at: 0).poseDeviation, 8.4e-5, accuracy: 0.1e-5, "numpy: ‖R − UVᵀ‖_F of frame 0")
        XCTAssertGreaterThan(worst, 1e-4, "the shared poses are stored to ~1e-4; a smaller value means they were not measured")
        XCTAssertLessThan(worst, 2e-4)
        XCTAssertLessThan(worst * 10, RigidTransform.rotationTolerance, "a margin of 10 over the worst real pose")
    }

    // MARK: Family 5: nonsense values

    func testOutOfRangeDepthScaleAndIntrinsicsAreRefused() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let folder = try sevenScenes(dir, poses: [Self.realPose])
        for bad in [0, .nan, 1e-300, -1000, 1e308] as [Double] {
            let text = sequenceError { _ = try SequenceLoader.open(folder, options: ReaderOptions(depthScale: bad)) }
            XCTAssertTrue(text.contains("depth-scale") && text.contains("expected a finite number in [1, 100000]"), text)
        }
        // A negative fx mirrors the map; a negative fy (ICL-NUIM's y-up images) is accepted.
        try "-7 0 3.5\n0 7 2.5\n0 0 1\n".write(to: folder.appendingPathComponent("camera-intrinsics.txt"), atomically: true, encoding: .utf8)
        var text = sequenceError { _ = try SequenceLoader.open(folder) }
        XCTAssertTrue(text.contains("seq: invalid intrinsics: fx = -7 is negative"), text)
        try "7 0 3.5\n0 -7 2.5\n0 0 1\n".write(to: folder.appendingPathComponent("camera-intrinsics.txt"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try SequenceLoader.open(folder).intrinsics.fy, -7)
        // Principal point far off the image, and an image side that would trap converting to Int.
        text = sequenceError { _ = try SequenceLoader.open(folder, options: ReaderOptions(intrinsics: IntrinsicsArgument.parse("7,7,900,2.5"))) }
        XCTAssertTrue(text.contains("cx is 900"), text)
        text = sequenceError { _ = try IntrinsicsArgument.parse("7,7,3.5,2.5,1e300,6") }
        XCTAssertTrue(text.contains("width") && text.contains("whole number"), text)
    }

    func testMissingCalibrationIsAnAssumptionTheUserSees() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let folder = try sevenScenes(dir, poses: [Self.realPose], intrinsics: false)
        let source = try SequenceLoader.open(folder)
        XCTAssertTrue(source.assumptions.contains { $0.contains("no camera-intrinsics.txt: assuming 7-Scenes' Kinect calibration") }, "\(source.assumptions)")
        XCTAssertTrue(source.assumptions.contains { $0.contains("1000 units per metre") }, "\(source.assumptions)")
        // Said only when assumed.
        let given = try SequenceLoader.open(folder, options: ReaderOptions(intrinsics: IntrinsicsArgument.parse("7,7,3.5,2.5"), depthScale: 1000))
        XCTAssertEqual(given.assumptions, [])
    }

    func testDuplicatedTUMListLineIsAnErrorNamingBothLines() throws {
        let dir = try SharedData.temporaryDirectory(self)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("rgb"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("depth"), withIntermediateDirectories: true)
        for k in 0..<2 {
            try PNGCodec.writeRGB(ColorImage(width: 8, height: 6, repeating: RGB8(1, 2, 3)), to: dir.appendingPathComponent("rgb/\(k).png"))
            try PNGCodec.writeGray16(Image<UInt16>(width: 8, height: 6, repeating: 5000), to: dir.appendingPathComponent("depth/\(k).png"))
        }
        try "# rgb\n1.0 rgb/0.png\n1.1 rgb/1.png\n".write(to: dir.appendingPathComponent("rgb.txt"), atomically: true, encoding: .utf8)
        try "1.0 depth/0.png\n1.1 depth/1.png\n".write(to: dir.appendingPathComponent("depth.txt"), atomically: true, encoding: .utf8)
        try "7 7 3.5 2.5\n".write(to: dir.appendingPathComponent("intrinsics.txt"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try SequenceLoader.open(dir).frameCount, 2)
        try "1.0 depth/0.png\n1.1 depth/1.png\n1.1 depth/1.png\n".write(to: dir.appendingPathComponent("depth.txt"), atomically: true, encoding: .utf8)
        let text = sequenceError { _ = try SequenceLoader.open(dir) }
        XCTAssertTrue(text.hasSuffix("depth.txt:3: timestamp 1.1 is listed twice (also on line 2)"), text)
        // Two depth images nearest to one colour image: paired one to one, the colour frame once.
        try "1.0 depth/0.png\n1.005 depth/1.png\n".write(to: dir.appendingPathComponent("depth.txt"), atomically: true, encoding: .utf8)
        let source = try SequenceLoader.open(dir)
        XCTAssertEqual(try (0..<source.frameCount).map { try source.frame(at: $0).timestamp }, [1.0])
    }

    func testShortICLPoseFileIsLoudAndLeavesTheUncoveredFramesWithoutGroundTruth() throws {
        let shared = try SharedData.require("icl-nuim-livingroom5")
        let dir = try SharedData.temporaryDirectory(self)
        for sub in ["color", "depth"] {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(sub), withDestinationURL: shared.appendingPathComponent(sub))
        }
        let lines = try String(contentsOf: shared.appendingPathComponent("pose.txt"), encoding: .utf8).split(separator: "\n")
        try (lines.prefix(3).joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("pose.txt"), atomically: true, encoding: .utf8)
        let source = try SequenceLoader.open(dir)
        XCTAssertEqual(source.frameCount, 5)
        XCTAssertTrue(source.capabilities.hasPoses)
        XCTAssertEqual(source.warnings.count, 1)
        XCTAssertTrue(source.warnings[0].contains("pose.txt: 3 poses (line k is frame k) for 5 frames numbered 1-5: 2 frames have no ground-truth pose (4, 5)"),
                      source.warnings[0])
        XCTAssertNotNil(try source.groundTruth(at: 2).pose)
        let missing = try source.groundTruth(at: 3)
        XCTAssertNil(missing.pose)
        XCTAssertTrue(missing.poseError?.description.contains("pose.txt: no pose for frame 4: the file has 3 poses") == true, "\(String(describing: missing.poseError))")
        XCTAssertTrue(source.assumptions.contains { $0.contains("fy=-480") }, "\(source.assumptions)")
    }

    // MARK: Family 5 and 6: the semfuse manifest

    /// A one-frame semfuse sequence whose manifest is `json` (with `RGB`/`DEPTH` placeholders
    /// replaced by the real file names).
    private func manifestSequence(_ dir: URL, _ json: String) throws -> URL {
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("rgb"), withIntermediateDirectories: true)
        try PNGCodec.writeRGB(ColorImage(width: 8, height: 6, repeating: RGB8(1, 2, 3)), to: dir.appendingPathComponent("rgb/0.png"))
        try json.write(to: dir.appendingPathComponent("sequence.json"), atomically: true, encoding: .utf8)
        return dir
    }

    private func manifest(depthScale: String = "5000", fx: String = "7", rgb: String = "\"rgb/0.png\"", poses: String = "") -> String {
        """
        {"format": "semfuse-sequence", "version": 1, "name": "m", "depth_scale": \(depthScale), \(poses)
         "intrinsics": {"fx": \(fx), "fy": 7, "cx": 3.5, "cy": 2.5, "width": 8, "height": 6},
         "frames": [{"timestamp": 0, "rgb": \(rgb)}]}
        """
    }

    func testManifestValuesAreRangeCheckedAndWrongTypesNamed() throws {
        let dir = try SharedData.temporaryDirectory(self)
        XCTAssertEqual(try SequenceLoader.open(try manifestSequence(dir, manifest())).frameCount, 1)
        var text = sequenceError { _ = try SequenceLoader.open(try manifestSequence(dir, manifest(depthScale: "1e308"))) }
        XCTAssertTrue(text.hasSuffix("sequence.json: depth_scale is 1e+308, expected a finite number in [1, 100000] units per metre"), text)
        text = sequenceError { _ = try SequenceLoader.open(try manifestSequence(dir, manifest(depthScale: "\"1000\""))) }
        XCTAssertTrue(text.hasSuffix("sequence.json: field 'depth_scale' has the wrong type: expected a number, found a string"), text)
        text = sequenceError { _ = try SequenceLoader.open(try manifestSequence(dir, manifest(fx: "[7]"))) }
        XCTAssertTrue(text.hasSuffix("sequence.json: field 'intrinsics.fx' has the wrong type: expected a number, found a list"), text)
        text = sequenceError { _ = try SequenceLoader.open(try manifestSequence(dir, manifest(rgb: "5"))) }
        XCTAssertTrue(text.hasSuffix("sequence.json: field 'frames[0].rgb' has the wrong type: expected a string, found 5"), text)
        text = sequenceError { _ = try SequenceLoader.open(try manifestSequence(dir, manifest(fx: "-7"))) }
        XCTAssertTrue(text.contains("sequence.json: invalid intrinsics: fx = -7 is negative"), text)
        text = sequenceError { _ = try SequenceLoader.open(try manifestSequence(dir, "{\"format\": ")) }
        XCTAssertTrue(text.contains("sequence.json: not valid JSON"), text)
    }

    func testManifestPathsStayInsideTheSequenceFolder() throws {
        let dir = try SharedData.temporaryDirectory(self)
        for (field, json) in [("frames[0].rgb '../outside.png' contains '..'", manifest(rgb: "\"../outside.png\"")),
                              ("frames[0].rgb 'rgb/../../x.png' contains '..'", manifest(rgb: "\"rgb/../../x.png\"")),
                              ("frames[0].rgb '/etc/passwd' is absolute", manifest(rgb: "\"/etc/passwd\"")),
                              ("poses '../poses.txt' contains '..'", manifest(poses: "\"poses\": \"../poses.txt\","))] {
            let text = sequenceError { _ = try SequenceLoader.open(try manifestSequence(dir, json)) }
            XCTAssertTrue(text.hasSuffix("sequence.json: \(field): paths must be relative and stay inside the sequence folder"), text)
        }
    }

    // MARK: Family 6: a FIFO where a file is expected

    func testFIFOIsReportedAsNotARegularFile() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let folder = try manifestSequence(dir, manifest())
        let image = folder.appendingPathComponent("rgb/0.png")
        try FileManager.default.removeItem(at: image)
        XCTAssertEqual(mkfifo(image.path, 0o644), 0)
        let source = try SequenceLoader.open(folder)
        let text = sequenceError { _ = try source.frame(at: 0) }
        XCTAssertTrue(text.hasSuffix("rgb/0.png: cannot read: not a regular file: a FIFO (named pipe)"), text)
        // Text files (pose and intrinsics files) go through the same check.
        let calibration = dir.appendingPathComponent("k.txt")
        XCTAssertEqual(mkfifo(calibration.path, 0o644), 0)
        let message = sequenceError { _ = try IntrinsicsArgument.parse(calibration.path) }
        XCTAssertTrue(message.hasSuffix("k.txt: cannot read: not a regular file: a FIFO (named pipe)"), message)
    }
}
