import Imaging

/// Errors opening or reading sequences. Each names the file or folder and what is wrong.
public enum SequenceError: Error, CustomStringConvertible {
    case notFound(path: String)
    case unknownLayout(path: String, reason: String)
    case malformed(path: String, line: Int?, reason: String)
    case missingFile(path: String, frame: Int)
    case imageSizeMismatch(path: String, expected: String, found: String)
    case invalidIntrinsics(path: String, reason: String)
    case frameOutOfRange(index: Int, count: Int)
    case image(ImagingError)
    case writeFailed(path: String, reason: String)
    /// A value given to a reader (not read from a file) is out of range (`InputLimits`).
    case invalidValue(String)

    public var description: String {
        switch self {
        case .notFound(let p): return "\(p): not found"
        case .unknownLayout(let p, let r): return "\(p): not a recognised sequence layout: \(r)"
        case .malformed(let p, let line, let r):
            if let line { return "\(p):\(line): \(r)" }
            return "\(p): \(r)"
        case .missingFile(let p, let f): return "\(p): missing file for frame \(f)"
        case .imageSizeMismatch(let p, let e, let f): return "\(p): image is \(f), expected \(e)"
        case .invalidIntrinsics(let p, let r): return "\(p): invalid intrinsics: \(r)"
        case .frameOutOfRange(let i, let n): return "frame \(i) is outside the sequence (0..<\(n))"
        case .image(let e): return e.description
        case .writeFailed(let p, let r): return "\(p): cannot write: \(r)"
        case .invalidValue(let m): return m
        }
    }
}
