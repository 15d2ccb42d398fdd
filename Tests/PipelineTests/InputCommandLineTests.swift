import Foundation
import XCTest
import TestSupport

/// Issue 9 at the command line: nonsense values refused before any work with nothing written,
/// assumptions said on the console, and a bad ground-truth pose that does not stop tracking.
final class InputCommandLineTests: XCTestCase {
    private func binary() throws -> URL { try ProcessRunner.semfuseBinary() }

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try ProcessRunner.run(try binary(), arguments)
    }

    private func files(in dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    func testNonsenseNumbersAreRefusedBeforeAnyWorkAndNothingIsWritten() throws {
        let sequence = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        let out = dir.appendingPathComponent("out")
        for (option, value, expected) in [
            ("--depth-scale", "0", "--depth-scale is 0, expected a finite number in [1, 100000] units per metre"),
            ("--depth-scale", "nan", "--depth-scale is nan, expected"),
            ("--depth-scale", "1e-300", "--depth-scale is 1e-300, expected"),
            ("--confidence-threshold", "nan", "--confidence-threshold is nan, expected a finite number in [0, 100000]"),
            ("--max-depth", "inf", "--max-depth is inf, expected a finite number in (0.3, 100] m"),
            ("--photometric-weight", "nan", "--photometric-weight is nan"),
            ("--threads", "0", "--threads is 0, expected 1 to 1024"),
            ("--time-window", "1", "--time-window is 1, expected 2 to 1000000"),
            ("--label-storage", "top0", "--label-storage: 'top0' is none of 'auto', 'log8', 'dense' and 'top<k>' with k from 1 to 64"),
            ("--label-storage", "sparse", "--label-storage: 'sparse' is none of"),
        ] {
            let result = try run(["reconstruct", sequence.path, option, value, "-o", out.appendingPathComponent("map.ply").path, "--frames", "0:2", "-q"])
            XCTAssertNotEqual(result.status, 0, "\(option) \(value): \(result.output)")
            XCTAssertTrue(result.output.contains(expected), "\(option) \(value): \(result.output)")
            XCTAssertEqual(files(in: out), [], "\(option) \(value): nothing may be written")
        }
        // bench tracking's fusion settings are checked the same way.
        for (option, value) in [("--keep-confidence", "-3"), ("--keep-confidence", "nan"), ("--model-confidence", "inf")] {
            let bench = try run(["bench", "tracking", sequence.path, "\(option)=\(value)", "--frames", "0:2"])
            XCTAssertNotEqual(bench.status, 0, "\(option) \(value): \(bench.output)")
            XCTAssertTrue(bench.output.contains("\(option) is \(value), expected a finite number in [0, 100000]"), "\(option) \(value): \(bench.output)")
        }
        // A negative fx would mirror the map: refused, naming the value.
        let result = try run(["reconstruct", sequence.path, "--intrinsics=-585,585,320,240", "-o", out.appendingPathComponent("map.ply").path, "-q"])
        XCTAssertNotEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("invalid intrinsics: fx = -585 is negative, which mirrors the map left-right"), result.output)
        XCTAssertEqual(files(in: out), [])
    }

    func testManifestOutOfRangeDepthScaleIsAnErrorNamingTheFile() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let sequence = dir.appendingPathComponent("seq")
        try FileManager.default.createDirectory(at: sequence, withIntermediateDirectories: true)
        try """
            {"format": "semfuse-sequence", "version": 1, "name": "m", "depth_scale": 1e308,
             "intrinsics": {"fx": 7, "fy": 7, "cx": 3.5, "cy": 2.5, "width": 8, "height": 6},
             "frames": [{"timestamp": 0, "rgb": "0.png", "depth": "0.depth.png"}]}
            """.write(to: sequence.appendingPathComponent("sequence.json"), atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("out")
        let result = try run(["reconstruct", sequence.path, "-o", out.appendingPathComponent("map.ply").path, "-q"])
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("seq/sequence.json: depth_scale is 1e+308, expected a finite number in [1, 100000] units per metre"), result.output)
        XCTAssertEqual(files(in: out), [])
    }

    /// Six real frames with one pose scaled by 5 %: tracking goes on and leaves that frame out of
    /// the score; fusing with ground truth stops there with the file and line.
    func testBadGroundTruthPoseNeverStopsTracking() throws {
        let shared = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        let sequence = dir.appendingPathComponent("kitchen")
        try FileManager.default.createDirectory(at: sequence, withIntermediateDirectories: true)
        for n in 150..<156 {
            let stem = String(format: "frame-%06d", n)
            for kind in ["color.png", "depth.png"] {
                try FileManager.default.createSymbolicLink(at: sequence.appendingPathComponent("\(stem).\(kind)"),
                                                           withDestinationURL: shared.appendingPathComponent("\(stem).\(kind)"))
            }
            var text = try String(contentsOf: shared.appendingPathComponent("\(stem).pose.txt"), encoding: .utf8)
            if n == 152 {
                // Scale the rotation (first three columns of the first three rows) by 1.05.
                let rows = text.split(whereSeparator: \.isNewline).map { $0.split(whereSeparator: \.isWhitespace).compactMap { Double($0) } }
                text = rows.enumerated().map { r, row in
                    row.enumerated().map { c, v in String(r < 3 && c < 3 ? v * 1.05 : v) }.joined(separator: " ")
                }.joined(separator: "\n") + "\n"
            }
            try text.write(to: sequence.appendingPathComponent("\(stem).pose.txt"), atomically: true, encoding: .utf8)
        }
        let ply = dir.appendingPathComponent("map.ply"), trajectory = dir.appendingPathComponent("map.txt")
        var result = try run(["reconstruct", sequence.path, "--poses", "track", "-o", ply.path, "--trajectory", trajectory.path,
                              "--all-surfels", "--no-preview"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("6 of 6 selected frames fused"), result.output)
        XCTAssertTrue(result.output.contains("ATE RMSE") && result.output.contains("over 5 frames"), result.output)
        XCTAssertTrue(result.output.contains("1 frames left out of the score (unusable ground-truth pose; tracked and fused): 2; first: "
                                             + sequence.appendingPathComponent("frame-000152.pose.txt").path + ":1: not a rigid transform"), result.output)
        // The assumption the reader made is on the console.
        XCTAssertTrue(result.output.contains("no camera-intrinsics.txt: assuming 7-Scenes' Kinect calibration"), result.output)

        // evaluate leaves the same frame out and says so.
        result = try run(["evaluate", sequence.path, "--trajectory", trajectory.path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("1 ground-truth frames left out (unusable pose): 2; first: "), result.output)
        XCTAssertTrue(result.output.contains("over 5 frames"), result.output)

        // Fusing with ground truth needs that pose: the run stops there, naming file and line.
        result = try run(["reconstruct", sequence.path, "--poses", "groundtruth", "-o", ply.path, "--no-preview", "-q"])
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("frame-000152.pose.txt:1: not a rigid transform: the rotation is 0.086 from the nearest rotation"), result.output)
        XCTAssertTrue(result.output.contains("2 of 6 frames fused before the failure"), result.output)
    }
}
