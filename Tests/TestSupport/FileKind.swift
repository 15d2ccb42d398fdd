import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What is at a path, without following a symbolic link: tests of outputs check that a FIFO,
/// device node or folder at an output path is still exactly that after a refused write.
public enum FileKind: Equatable, CustomStringConvertible {
    case missing, regular, directory, fifo, characterDevice, blockDevice, socket, symbolicLink, other

    public init(atPath path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { self = .missing; return }
        switch info.st_mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFIFO: self = .fifo
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFSOCK: self = .socket
        case S_IFLNK: self = .symbolicLink
        default: self = .other
        }
    }

    public var description: String {
        switch self {
        case .missing: return "nothing"
        case .regular: return "a regular file"
        case .directory: return "a folder"
        case .fifo: return "a FIFO"
        case .characterDevice: return "a character device"
        case .blockDevice: return "a block device"
        case .socket: return "a socket"
        case .symbolicLink: return "a symbolic link"
        case .other: return "something else"
        }
    }
}
