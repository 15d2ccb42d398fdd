import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file read by offset (`pread`), never whole: recordings of many GB are indexed once and then
/// each frame's bytes are read on demand. `pread` has no shared file position, so frames may be
/// read from several threads at once (the prefetcher reads ahead while fusion asks for ground
/// truth).
final class RandomAccessFile: @unchecked Sendable {
    let path: String
    let size: Int64
    private let fd: Int32

    init(_ url: URL) throws {
        path = url.path
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw SequenceError.notFound(path: path) }
            throw SequenceError.malformed(path: path, line: nil, reason: "cannot read: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw SequenceError.malformed(path: path, line: nil, reason: "not a regular file")
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw SequenceError.malformed(path: path, line: nil, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        fd = descriptor
        size = Int64(info.st_size)
    }

    deinit { close(fd) }

    /// `count` bytes at `offset`; the caller has checked that they lie inside the file, so
    /// nothing larger than the file is ever allocated. `what` names the block for messages.
    func read(at offset: Int64, count: Int, what: String) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= size, Int64(count) <= size - offset else {
            throw SequenceError.malformed(path: path, line: nil,
                                          reason: "\(what): \(count) bytes at offset \(offset) run past the end of the \(size)-byte file")
        }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { buffer in
                pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw SequenceError.malformed(path: path, line: nil, reason: "\(what): read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw SequenceError.malformed(path: path, line: nil, reason: "\(what): the file ended after \(offset + Int64(done)) bytes (it shrank while being read)")
            }
            done += n
        }
        return bytes
    }
}

/// Little-endian fields of a byte block, with the block's name for messages.
struct ByteCursor {
    let bytes: [UInt8]
    var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, count <= remaining else { return nil }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    mutating func uint64() -> UInt64? {
        guard let s = take(8) else { return nil }
        return s.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    mutating func uint32() -> UInt32? {
        guard let s = take(4) else { return nil }
        return s.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
    mutating func int64() -> Int64? { uint64().map { Int64(bitPattern: $0) } }
    mutating func int32() -> Int32? { uint32().map { Int32(bitPattern: $0) } }
    mutating func float32() -> Float? { uint32().map { Float(bitPattern: $0) } }
}

/// Little-endian encoding for the writers.
extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }
    mutating func appendLittleEndian(_ value: Float) { appendLittleEndian(value.bitPattern) }
}
