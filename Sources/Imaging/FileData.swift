import Foundation

/// Whole-file reads and atomic writes with errors that name the file.
public enum FileData {
    /// The largest file `read` loads whole (a map PLY of tens of millions of points stays far
    /// below it).
    public static let maxFileBytes = 1 << 32

    public static func read(_ url: URL) throws -> Data {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ImagingError.fileNotFound(path: path)
        }
        if isDirectory.boolValue { throw ImagingError.unreadable(path: path, reason: "is a directory") }
        // A FIFO or a device (/dev/zero, /dev/urandom) has no end to read to, and a file larger
        // than any input this tool reads is refused before it is loaded into memory.
        var status = stat()
        if stat(path, &status) == 0 {
            let type = status.st_mode & S_IFMT
            guard type == S_IFREG else {
                let kind = type == S_IFIFO ? "a FIFO" : (type == S_IFCHR || type == S_IFBLK ? "a device" : (type == S_IFSOCK ? "a socket" : "a special file"))
                throw ImagingError.unreadable(path: path, reason: "is \(kind), not a regular file")
            }
            guard Int(status.st_size) <= maxFileBytes else {
                throw ImagingError.tooLarge(path: path, reason: "the file is \(status.st_size) bytes; inputs above \(maxFileBytes) bytes (4 GiB) are refused")
            }
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw ImagingError.unreadable(path: path, reason: error.localizedDescription)
        }
    }

    /// Writes through a temporary file and a rename, so a full disk or a crash never leaves a
    /// half-written file under the final name.
    public static func writeAtomically(_ data: Data, to url: URL) throws {
        let path = url.path
        let directory = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                throw ImagingError.writeFailed(path: path, reason: "cannot create folder \(directory.path): \(error.localizedDescription)")
            }
        } else if !isDirectory.boolValue {
            throw ImagingError.writeFailed(path: path, reason: "\(directory.path) is not a folder")
        }
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw ImagingError.writeFailed(path: path, reason: "folder \(directory.path) is not writable")
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            defer { try? handle.close() }
            try handle.write(contentsOf: data)
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw ImagingError.writeFailed(path: path, reason: error.localizedDescription)
        }
        if rename(temporary.path, path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw ImagingError.writeFailed(path: path, reason: reason)
        }
    }
}
