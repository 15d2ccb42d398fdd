import Foundation

/// Whole-file reads and atomic writes with errors that name the file.
public enum FileData {
    /// Every input file is read here, so what it is (not a regular file) is checked once: a
    /// FIFO would block the run or fail as "permission denied", a device would be read forever.
    public static func read(_ url: URL) throws -> Data {
        let path = url.path
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw ImagingError.fileNotFound(path: path) }
            throw ImagingError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        if let kind = specialFileKind(info.st_mode) { throw ImagingError.unreadable(path: path, reason: "not a regular file: \(kind)") }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw ImagingError.unreadable(path: path, reason: error.localizedDescription)
        }
    }

    /// What a non-regular file is, for messages; nil for a regular file.
    static func specialFileKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
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
