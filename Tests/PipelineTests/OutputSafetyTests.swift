import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TestSupport
import XCTest

/// Outputs of the `semfuse` binary over special files and over each other: refused before any
/// work with a message naming the path, and whatever was there is left as it was.
final class OutputSafetyTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sequence = repository.appendingPathComponent("Sequences/synthetic-room")

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try ProcessRunner.run(try ProcessRunner.semfuseBinary(), arguments)
    }

    /// `reconstruct` over a FIFO, a folder, a device node (when the test may make one) and a
    /// link to /dev/null: status non-zero, the path and what is there named, before any frame
    /// is read (no progress, no other output), and the node unchanged.
    func testReconstructRefusesSpecialFiles() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let fifo = dir.appendingPathComponent("fifo.ply")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        let folder = dir.appendingPathComponent("folder.ply")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        let toNull = dir.appendingPathComponent("null.ply")
        try FileManager.default.createSymbolicLink(atPath: toNull.path, withDestinationPath: "/dev/null")
        var cases: [(URL, String, FileKind)] = [
            (fifo, "is a FIFO (named pipe)", .fifo),
            (folder, "is a folder", .directory),
            (toNull, "is a symbolic link to /dev/null, a character device", .symbolicLink),
        ]
        let device = dir.appendingPathComponent("device.ply")
        if mknod(device.path, S_IFCHR | 0o666, dev_t(0x103)) == 0 {  // /dev/null's numbers, 1:3
            cases.append((device, "is a character device", .characterDevice))
        } else {
            print("note: device node case skipped: cannot mknod here (\(String(cString: strerror(errno))))")
        }
        for (output, message, kind) in cases {
            let result = try run(["reconstruct", Self.sequence.path, "-o", output.path, "--frames", "0:3", "--all-surfels"])
            XCTAssertNotEqual(result.status, 0, result.output)
            XCTAssertTrue(result.output.contains("\(output.path): cannot write: \(message)"), result.output)
            XCTAssertFalse(result.output.contains("frame 1/"), "refused before any work: \(result.output)")
            XCTAssertEqual(FileKind(atPath: output.path), kind, output.lastPathComponent)
        }
        XCTAssertEqual(FileKind(atPath: "/dev/null"), .characterDevice)
        let written = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertEqual(written, cases.map(\.0.lastPathComponent).sorted(), "nothing else written: \(written)")
    }

    /// `-o same.ply --trajectory same.ply` used to leave only the trajectory; outputs naming one
    /// file, given or derived from -o (`<map>.preview.png`), however spelled, are refused first.
    func testCollidingOutputsAreRefusedBeforeAnyWork() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let same = dir.appendingPathComponent("same.ply")
        let cases: [([String], String)] = [
            (["-o", same.path, "--trajectory", same.path],
             "\(same.path): cannot write: is both the map (-o) and the trajectory (--trajectory)"),
            (["-o", same.path, "--trajectory", dir.path + "/sub/../same.ply"],
             "is both the map (-o) and the trajectory (--trajectory)"),
            (["-o", same.path, "--trajectory", dir.appendingPathComponent("same.preview.png").path],
             "is both the trajectory (--trajectory) and the map preview (<map>.preview.png)"),
        ]
        for (arguments, message) in cases {
            let result = try run(["reconstruct", Self.sequence.path, "--frames", "0:3", "--all-surfels"] + arguments)
            XCTAssertNotEqual(result.status, 0, result.output)
            XCTAssertTrue(result.output.contains(message), "lacks '\(message)': \(result.output)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "nothing written")
        }
        // Without the preview, the trajectory may take that name.
        let result = try run(["reconstruct", Self.sequence.path, "--frames", "0:3", "--all-surfels", "-q", "--no-preview",
                              "-o", same.path, "--trajectory", dir.appendingPathComponent("same.preview.png").path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(FileKind(atPath: same.path), .regular)
    }

    /// An output over a file of the sequence being read (its poses, its manifest, a link to
    /// one) would destroy the input, and the ground truth the run is scored against: refused
    /// before any work, the file unchanged. A new file inside the sequence folder is fine.
    func testOutputsNeverReplaceTheInputSequence() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let copy = dir.appendingPathComponent("room")
        try FileManager.default.copyItem(at: Self.sequence, to: copy)
        let poses = copy.appendingPathComponent("poses.txt")
        let before = try Data(contentsOf: poses)
        let link = dir.appendingPathComponent("link.txt")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: poses.path)
        let cases: [([String], String)] = [
            (["-o", dir.appendingPathComponent("map.ply").path, "--trajectory", poses.path],
             "\(poses.path): cannot write: the trajectory (--trajectory) would replace a file of the input sequence \(copy.path)"),
            (["-o", copy.appendingPathComponent("sequence.json").path],
             "the map (-o) would replace a file of the input sequence"),
            (["-o", dir.appendingPathComponent("map.ply").path, "--trajectory", link.path],
             "\(link.path): cannot write: the trajectory (--trajectory) would replace a file of the input sequence"),
            (["-o", copy.path], "cannot write: the map (-o) is the input sequence itself"),
        ]
        for (arguments, message) in cases {
            let result = try run(["reconstruct", copy.path, "--frames", "0:3", "--all-surfels"] + arguments)
            XCTAssertNotEqual(result.status, 0, result.output)
            XCTAssertTrue(result.output.contains(message), "lacks '\(message)': \(result.output)")
            XCTAssertFalse(result.output.contains("frame 1/"), "refused before any work: \(result.output)")
        }
        XCTAssertEqual(try Data(contentsOf: poses), before, "poses.txt unchanged")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("map.ply").path))
        let inside = copy.appendingPathComponent("map.ply")
        let result = try run(["reconstruct", copy.path, "--frames", "0:3", "--all-surfels", "-q", "--no-preview", "-o", inside.path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(FileKind(atPath: inside.path), .regular)
    }

    /// `predict` into a FIFO as its output folder, and `--record` into the very sequence it
    /// reads: refused before the models load, nothing changed.
    func testPredictRefusesSpecialFoldersAndRecordingOverItsInput() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let fifo = dir.appendingPathComponent("out")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        var result = try run(["predict", Self.sequence.path, "--weights", "deeplab", "-o", fifo.path, "--frames", "0:1"])
        XCTAssertNotEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("\(fifo.path): cannot write: is a FIFO (named pipe), not a folder"), result.output)
        XCTAssertEqual(FileKind(atPath: fifo.path), .fifo)

        let copy = dir.appendingPathComponent("sequence")
        try FileManager.default.copyItem(at: Self.sequence, to: copy)
        let manifest = try Data(contentsOf: copy.appendingPathComponent("sequence.json"))
        result = try run(["predict", copy.path, "--weights", "deeplab", "-o", dir.appendingPathComponent("predicted").path,
                          "--frames", "0:1", "--record", copy.path + "/."])
        XCTAssertNotEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("--record would overwrite the input sequence it reads"), result.output)
        XCTAssertEqual(try Data(contentsOf: copy.appendingPathComponent("sequence.json")), manifest)
    }
}
