import Foundation
import XCTest

/// Runs a program the way a user's shell would and returns its exit status and combined
/// stdout/stderr, for tests of the command-line tool and of `tools/`.
public enum ProcessRunner {
    public static func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `/usr/bin/env <arguments>`: finds the program on PATH.
    public static func env(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try run(URL(fileURLWithPath: "/usr/bin/env"), arguments)
    }

    /// The built `semfuse` binary (release, else debug), as scripts run it; skips the test when
    /// it is not built.
    public static func semfuseBinary() throws -> URL {
        // Tests/TestSupport/<file> → repository root → .build/<configuration>/semfuse
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for configuration in ["release", "debug"] {
            let url = root.appendingPathComponent(".build/\(configuration)/semfuse")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("semfuse binary not built (run `swift build` first)")
    }
}
