import Foundation
import FuzzTargets
import TestSupport
import XCTest

/// Replays `Tests/FuzzCorpus/<target>/` (the fuzzers' seeds and every input a fuzzer ever
/// crashed on) through the same parser entry points `scripts/fuzz.sh` fuzzes: each file must give
/// a valid result or one of the project's typed errors. A regression of a fixed crash traps here.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")

    func testEveryTargetHasACorpus() throws {
        for name in FuzzTargets.names {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: Self.corpus.appendingPathComponent(name).path)) ?? []
            XCTAssertFalse(files.isEmpty, "no corpus for fuzz target \(name) in \(Self.corpus.path)")
        }
    }

    func testCorpusGivesResultsOrTypedErrors() throws {
        var replayed = 0, rejected = 0
        for name in FuzzTargets.names {
            let body = try XCTUnwrap(FuzzTargets.body(name))
            let folder = Self.corpus.appendingPathComponent(name)
            for file in ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted() {
                let data = try Data(contentsOf: folder.appendingPathComponent(file))
                replayed += 1
                do {
                    try body(data)
                } catch {
                    rejected += 1
                    XCTAssertTrue(FuzzTargets.isTyped(error), "\(name)/\(file): untyped error \(type(of: error)): \(error)")
                }
            }
        }
        XCTAssertGreaterThan(replayed, FuzzTargets.names.count)
        XCTAssertGreaterThan(rejected, 0)
    }
}

/// The converters' fuzz findings (`scripts/fuzz.sh python`, atheris), replayed as users run the
/// tools: every input converts or fails with the tool's one-line `error:`, never a traceback.
final class ConverterCorpusTests: XCTestCase {
    static let repository = FuzzCorpusTests.corpus.deletingLastPathComponent().deletingLastPathComponent()

    func testTFLiteConverterCorpusGivesErrorsNotTracebacks() throws {
        guard (try? ProcessRunner.env(["python3", "-c", "import numpy, flatbuffers"]))?.status == 0 else {
            throw XCTSkip("needs python3 with numpy and flatbuffers for tools/convert_tflite.py (scripts/setup.sh installs them)")
        }
        try replay("convert-tflite", tool: "tools/convert_tflite.py")
    }

    /// The checkpoint converter's atheris findings (escaping exceptions, a >2 GB allocation, a
    /// plain `pickle.load` importing modules named by the file), fixed by the restricted reading.
    func testCheckpointConverterCorpusGivesErrorsNotTracebacks() throws {
        guard (try? ProcessRunner.env(["python3", "-c", "import numpy"]))?.status == 0 else {
            throw XCTSkip("needs python3 with numpy for tools/convert_checkpoint.py (scripts/setup.sh installs it)")
        }
        try replay("convert-checkpoint", tool: "tools/convert_checkpoint.py")
    }

    private func replay(_ target: String, tool: String) throws {
        let folder = FuzzCorpusTests.corpus.appendingPathComponent(target)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        XCTAssertFalse(files.isEmpty)
        let output = try SharedData.temporaryDirectory(self).appendingPathComponent("out.safetensors")
        for file in files {
            let (status, text) = try ProcessRunner.env(["python3", Self.repository.appendingPathComponent(tool).path,
                                                        folder.appendingPathComponent(file).path, output.path])
            XCTAssertTrue(status == 0 || (status == 1 && text.contains("error: ")), "\(file): status \(status): \(text)")
            XCTAssertFalse(text.contains("Traceback (most recent call last)"), "\(file): \(text)")
        }
    }
}
