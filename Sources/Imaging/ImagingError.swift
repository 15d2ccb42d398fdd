/// Errors reading or writing images. Every case names the file.
public enum ImagingError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case unreadable(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case unexpectedFormat(path: String, expected: String, found: String)
    /// A declared size (image dimensions, array shape) beyond what the reader accepts or beyond
    /// what the file's bytes can hold: refused before anything is allocated.
    case tooLarge(path: String, reason: String)
    case unsupportedExtension(path: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let p): return "\(p): file not found"
        case .unreadable(let p, let r): return "\(p): cannot read: \(r)"
        case .corrupt(let p, let r): return "\(p): corrupt or truncated image: \(r)"
        case .unexpectedFormat(let p, let e, let f): return "\(p): expected \(e), found \(f)"
        case .tooLarge(let p, let r): return "\(p): declared size refused: \(r)"
        case .unsupportedExtension(let p): return "\(p): unsupported image type (use .png, .jpg or .jpeg)"
        case .writeFailed(let p, let r): return "\(p): cannot write: \(r)"
        }
    }
}
