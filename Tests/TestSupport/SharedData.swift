import Foundation
import XCTest

/// Locates `../shared` (the project's read-only datasets) for tests that need real data.
///
/// Tests needing it call `try SharedData.require("7scenes-redkitchen-png50")`, which throws
/// `XCTSkip` with a message naming the missing path, so a run without the data says so instead
/// of passing silently. `SEMFUSE_SHARED_DIR` overrides the location.
public enum SharedData {
    public static var root: URL {
        if let env = ProcessInfo.processInfo.environment["SEMFUSE_SHARED_DIR"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        // Tests/TestSupport/SharedData.swift → repository root → ../shared
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared")
    }

    /// `../shared/data/<relative>`, or an `XCTSkip` explaining what is missing.
    public static func require(_ relative: String) throws -> URL {
        let url = root.appendingPathComponent("data").appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("needs ../shared/data/\(relative) (real dataset), not found at \(url.path); set SEMFUSE_SHARED_DIR")
        }
        return url
    }

    /// A fresh temporary folder removed when the test ends.
    public static func temporaryDirectory(_ test: XCTestCase, name: String = #function) throws -> URL {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("semfuse-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
