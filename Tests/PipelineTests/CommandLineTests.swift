import Foundation
import XCTest
import TestSupport

/// Runs the built `semfuse` binary the way scripts do.
final class CommandLineTests: XCTestCase {
    private func binary() throws -> URL {
        // Tests/PipelineTests/<file> → repository root → .build/<configuration>/semfuse
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for configuration in ["release", "debug"] {
            let url = root.appendingPathComponent(".build/\(configuration)/semfuse")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("semfuse binary not built (run `swift build` first)")
    }

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testScriptFormOfReconstruct() throws {
        let sequence = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        let ply = dir.appendingPathComponent("map.ply"), trajectory = dir.appendingPathComponent("poses.txt")
        let result = try run(["reconstruct", sequence.path, "--poses", "groundtruth", "-o", ply.path,
                              "--trajectory", trajectory.path, "--frames", "0:12", "--all-surfels", "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ply.path))
        XCTAssertEqual(try String(contentsOf: trajectory, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.count, 12)
        XCTAssertTrue(result.output.contains("Wrote \(ply.path)"), result.output)
    }

    func testBadInputsExitNonZeroWithAMessage() throws {
        let dir = try SharedData.temporaryDirectory(self)
        var result = try run(["reconstruct", dir.appendingPathComponent("missing").path, "-q"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("missing: not found"), result.output)
        result = try run(["reconstruct", dir.path, "--labels", "sometimes"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("--labels"), result.output)
        result = try run(["reconstruct", "--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("--poses"))
    }
}
