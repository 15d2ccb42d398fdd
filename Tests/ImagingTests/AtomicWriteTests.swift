import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import Imaging
import TestSupport
import XCTest

/// `FileData.writeAtomically`, the one path every output of semfuse goes through (PLY,
/// trajectory, PNG, NPY, sequence files): it replaces a regular file or nothing, never a device
/// node, FIFO, socket or folder, and a failed write never destroys the file already there.
final class AtomicWriteTests: XCTestCase {
    private func assertRefused(_ url: URL, _ reason: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try FileData.writeAtomically(Data("new".utf8), to: url), file: file, line: line) { error in
            guard case ImagingError.writeFailed(let path, let message) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(path, url.path, file: file, line: line)
            XCTAssertTrue(message.contains(reason), "\(message)", file: file, line: line)
        }
    }

    private func leftovers(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".partial-") }
    }

    func testSpecialFilesAreRefusedAndLeftAsTheyWere() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let fifo = dir.appendingPathComponent("map.ply")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        assertRefused(fifo, "is a FIFO (named pipe); semfuse writes outputs only as regular files")
        XCTAssertEqual(FileKind(atPath: fifo.path), .fifo)

        let folder = dir.appendingPathComponent("folder.png")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        assertRefused(folder, "is a folder")
        XCTAssertEqual(FileKind(atPath: folder.path), .directory)

        // A symbolic link to a device, and a dangling one: refused, the link untouched.
        let toDevice = dir.appendingPathComponent("to-null.txt")
        try FileManager.default.createSymbolicLink(atPath: toDevice.path, withDestinationPath: "/dev/null")
        assertRefused(toDevice, "is a symbolic link to /dev/null, a character device")
        let dangling = dir.appendingPathComponent("dangling.txt")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: "nowhere/at-all.txt")
        assertRefused(dangling, "is a symbolic link to nowhere/at-all.txt, which does not exist")
        XCTAssertEqual(FileKind(atPath: toDevice.path), .symbolicLink)
        XCTAssertEqual(FileKind(atPath: dangling.path), .symbolicLink)
        XCTAssertEqual(FileKind(atPath: "/dev/null"), .characterDevice)
        XCTAssertEqual(try leftovers(dir), [])
    }

    /// As root, the rename of the old atomic write replaced a device node with a regular file.
    /// A node made here (/dev/null's numbers 1:3, dev_t 0x103 on Linux) must stay a device; skipped where the
    /// test may not create device nodes.
    func testADeviceNodeIsNeverReplaced() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let node = dir.appendingPathComponent("device.ply")
        guard mknod(node.path, S_IFCHR | 0o666, dev_t(0x103)) == 0 else {
            throw XCTSkip("cannot create a device node here (\(String(cString: strerror(errno)))); needs root")
        }
        assertRefused(node, "is a character device; semfuse writes outputs only as regular files")
        XCTAssertEqual(FileKind(atPath: node.path), .characterDevice)
        XCTAssertEqual(try leftovers(dir), [])
    }

    /// A symbolic link to a regular file is followed: the file is replaced, the link stays.
    /// An existing file keeps its permissions.
    func testLinksToRegularFilesAreFollowedAndPermissionsKept() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let real = dir.appendingPathComponent("real.txt")
        try Data("old".utf8).write(to: real)
        XCTAssertEqual(chmod(real.path, 0o600), 0)
        let link = dir.appendingPathComponent("link.txt")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "real.txt")
        try FileData.writeAtomically(Data("new".utf8), to: link)
        XCTAssertEqual(FileKind(atPath: link.path), .symbolicLink)
        XCTAssertEqual(try String(contentsOf: real, encoding: .utf8), "new")
        var info = stat()
        XCTAssertEqual(stat(real.path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        XCTAssertEqual(try leftovers(dir), [])
    }

    /// A write that fails part-way (here: the file size limit, as a full disk would) leaves the
    /// good file that was there untouched and no temporary file behind.
    func testAFailedWriteKeepsTheExistingFile() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("map.ply")
        try Data("good".utf8).write(to: url)
        var saved = rlimit()
        XCTAssertEqual(getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &saved), 0)
        let previous = signal(SIGXFSZ, SIG_IGN)
        var small = saved
        small.rlim_cur = 1024
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &small), 0)
        var thrown: Error?
        do { try FileData.writeAtomically(Data(repeating: 7, count: 64 * 1024), to: url) } catch { thrown = error }
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &saved), 0)
        signal(SIGXFSZ, previous)
        guard case ImagingError.writeFailed(let path, let reason)? = thrown else { return XCTFail("expected a write failure, got \(String(describing: thrown))") }
        XCTAssertEqual(path, url.path)
        XCTAssertTrue(reason.contains("too large"), reason)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "good")
        XCTAssertEqual(try leftovers(dir), [])
    }

    /// Outputs that name one file, however spelled (`./`, `..`, a symbolic link to the folder, a
    /// hard link), are one output.
    func testCollidingOutputsAreRefused() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let a = dir.appendingPathComponent("a.ply")
        let spelled = URL(fileURLWithPath: dir.path + "/sub/../a.ply")
        let linkedFolder = dir.appendingPathComponent("linked")
        try FileManager.default.createSymbolicLink(atPath: linkedFolder.path, withDestinationPath: dir.path)
        XCTAssertThrowsError(try FileData.checkDistinctOutputs([("map", a), ("trajectory", spelled)])) { error in
            XCTAssertEqual("\(error)", "\(spelled.path): cannot write: is both the map and the trajectory; each output needs its own file")
        }
        XCTAssertTrue(FileData.sameFile(a, linkedFolder.appendingPathComponent("a.ply")), "not yet existing, through a linked folder")
        try Data("x".utf8).write(to: a)
        let hard = dir.appendingPathComponent("hard.ply")
        XCTAssertEqual(link(a.path, hard.path), 0)
        XCTAssertTrue(FileData.sameFile(a, hard))
        XCTAssertFalse(FileData.sameFile(a, dir.appendingPathComponent("b.ply")))
        XCTAssertNoThrow(try FileData.checkDistinctOutputs([("map", a), ("trajectory", dir.appendingPathComponent("a.trajectory.txt"))]))
    }
}
