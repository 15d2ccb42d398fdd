import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whole-file reads and atomic writes with errors that name the file.
public enum FileData {
    /// The largest file `read` loads whole (a map PLY of tens of millions of points stays far
    /// below it).
    public static let maxFileBytes = 1 << 32

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
        guard Int(info.st_size) <= maxFileBytes else {
            throw ImagingError.tooLarge(path: path, reason: "the file is \(info.st_size) bytes; inputs above \(maxFileBytes) bytes (4 GiB) are refused")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw ImagingError.unreadable(path: path, reason: error.localizedDescription)
        }
    }

    /// What a non-regular file is, for messages; nil for a regular file.
    static func specialFileKind(_ mode: mode_t) -> String? {
        mode & S_IFMT == S_IFREG ? nil : kind(mode)
    }

    /// Writes through a temporary file and a rename, so a full disk, a failed write or a crash
    /// never leaves a half-written file under the final name and never destroys a good file
    /// already there. Only a regular file (or nothing) is ever replaced: the rename would
    /// otherwise turn a device node, FIFO or socket into a regular file (as root, `-o /dev/full`
    /// replaced the device), so those, and folders, are refused before anything is written. A
    /// symbolic link to a regular file is followed: the file it points to is replaced and the
    /// link kept. An existing file keeps its permissions.
    public static func writeAtomically(_ data: Data, to url: URL) throws {
        let path = url.path
        let target = try checkOutputFile(url)
        let directory = target.deletingLastPathComponent()
        try prepareFolder(directory, for: path)
        var existing = stat()
        let keepMode: mode_t? = stat(target.path, &existing) == 0 ? existing.st_mode & 0o7777 : nil
        let temporary = directory.appendingPathComponent(".\(target.lastPathComponent).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        // O_EXCL | O_NOFOLLOW: the temporary name is ours alone, never a link planted there.
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw ImagingError.writeFailed(path: path, reason: "cannot create a file in \(directory.path): \(String(cString: strerror(errno)))")
        }
        func fail(_ reason: String) -> ImagingError {
            close(fd)
            unlink(temporary.path)
            return ImagingError.writeFailed(path: path, reason: reason)
        }
        if let keepMode, fchmod(fd, keepMode) != 0 { throw fail("cannot set permissions: \(String(cString: strerror(errno)))") }
        var failure: Int32 = 0
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += n
            }
        }
        if failure != 0 { throw fail(String(cString: strerror(failure))) }
        if fsync(fd) != 0 { throw fail(String(cString: strerror(errno))) }
        // What is at the target may have changed while writing: check again right before the rename.
        do { _ = try checkOutputFile(url) } catch { _ = fail(""); throw error }
        if close(fd) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary.path)
            throw ImagingError.writeFailed(path: path, reason: reason)
        }
        if rename(temporary.path, target.path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary.path)
            throw ImagingError.writeFailed(path: path, reason: reason)
        }
        // Make the rename itself durable (best effort: not every file system syncs folders).
        let folder = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folder >= 0 { fsync(folder); close(folder) }
    }

    /// Checks what is at `url` before an output is written there and returns the file that will
    /// be replaced: `url` itself when it is a regular file or does not exist yet, or the regular
    /// file a symbolic link points to. Device nodes, FIFOs, sockets, folders, links to any of
    /// them and dangling links are refused with `ImagingError.writeFailed` naming the path and
    /// what is there. Callers check every output with it before a long run, so a bad path fails
    /// at once instead of after the work.
    @discardableResult
    public static func checkOutputFile(_ url: URL) throws -> URL {
        let path = url.path
        var info = stat()
        guard lstat(path, &info) == 0 else {
            switch errno {
            case ENOENT: return url
            case ENOTDIR: throw ImagingError.writeFailed(path: path, reason: "a component of the path is not a folder")
            default: throw ImagingError.writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
        }
        let refusal = "semfuse writes outputs only as regular files and never replaces a device, FIFO, socket or folder"
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return url
        case S_IFLNK:
            guard let resolved = realpath(path, nil) else {
                throw ImagingError.writeFailed(path: path, reason: "is a symbolic link to \(linkText(path)), which does not exist")
            }
            defer { free(resolved) }
            let target = String(cString: resolved)
            var pointed = stat()
            guard stat(target, &pointed) == 0 else {
                throw ImagingError.writeFailed(path: path, reason: "is a symbolic link to \(target): \(String(cString: strerror(errno)))")
            }
            guard pointed.st_mode & S_IFMT == S_IFREG else {
                throw ImagingError.writeFailed(path: path, reason: "is a symbolic link to \(target), \(kind(pointed.st_mode)); \(refusal)")
            }
            return URL(fileURLWithPath: target)
        default:
            throw ImagingError.writeFailed(path: path, reason: "is \(kind(info.st_mode)); \(refusal)")
        }
    }

    /// Creates the folder `directory` (with its parents) unless it exists; an existing
    /// non-folder there is an error naming what it is. `path` is the output the error names.
    public static func prepareFolder(_ directory: URL, for path: String? = nil) throws {
        let named = path ?? directory.path
        var info = stat()
        if stat(directory.path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                let what = named == directory.path ? "is" : "\(directory.path) is"
                throw ImagingError.writeFailed(path: named, reason: "\(what) \(kind(info.st_mode)), not a folder")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw ImagingError.writeFailed(path: named, reason: "cannot create folder \(directory.path): \(error.localizedDescription)")
        }
    }

    /// Whether two output paths name the same file: the same inode when both exist (hard links,
    /// symbolic links), else the same path once `.`, `..` and symbolic links in the part of the
    /// path that exists are resolved. Outputs that collide would silently overwrite each other.
    public static func sameFile(_ a: URL, _ b: URL) -> Bool {
        var sa = stat(), sb = stat()
        if stat(a.path, &sa) == 0, stat(b.path, &sb) == 0 { return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino }
        return resolvedPath(a) == resolvedPath(b)
    }

    /// The absolute path with symbolic links resolved as far as the path exists.
    public static func resolvedPath(_ url: URL) -> String {
        var current = url.standardizedFileURL
        var rest: [String] = []
        while true {
            if let resolved = realpath(current.path, nil) {
                defer { free(resolved) }
                return ([String(cString: resolved)] + rest).joined(separator: "/").replacingOccurrences(of: "//", with: "/")
            }
            if current.path == "/" || current.path.isEmpty { return url.standardizedFileURL.path }
            rest.insert(current.lastPathComponent, at: 0)
            current = current.deletingLastPathComponent()
        }
    }

    /// Refuses outputs that name the same file (`roles` say which option each came from), in
    /// the order given: the error names the later one's path and both roles.
    public static func checkDistinctOutputs(_ outputs: [(role: String, url: URL)]) throws {
        for (j, later) in outputs.enumerated() {
            for earlier in outputs[..<j] where sameFile(earlier.url, later.url) {
                throw ImagingError.writeFailed(path: later.url.path,
                                               reason: "is both the \(earlier.role) and the \(later.role); each output needs its own file")
            }
        }
    }

    /// Refuses an output that would replace one of the run's inputs: the input file itself, or,
    /// when `input` is a folder (a sequence), any file that already exists inside it (its frames,
    /// poses, lists and manifest are all inputs; a new file next to them is fine). Links are
    /// resolved first, so `seq/link -> seq/poses.txt` is caught too.
    public static func checkNotInput(_ output: (role: String, url: URL), input: URL, inputRole: String = "input") throws {
        if sameFile(output.url, input) {
            throw ImagingError.writeFailed(path: output.url.path,
                                           reason: "the \(output.role) is the \(inputRole) itself; semfuse never replaces what it reads")
        }
        var info = stat()
        guard stat(input.path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, stat(output.url.path, &info) == 0 else { return }
        let folder = resolvedPath(input)
        let target = resolvedPath(output.url)
        if target.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/") {
            throw ImagingError.writeFailed(path: output.url.path, reason: """
                the \(output.role) would replace a file of the \(inputRole) \(input.path); semfuse never replaces what it reads \
                (write outputs elsewhere, e.g. under Output/)
                """)
        }
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a folder"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }

    static func linkText(_ path: String) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return "?" }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
