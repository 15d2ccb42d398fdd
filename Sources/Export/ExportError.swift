/// Errors writing or reading export files; each names the file.
public enum ExportError: Error, CustomStringConvertible {
    case invalidCloud(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case malformedPLY(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidCloud(let p, let r): return "\(p): cannot write point cloud: \(r)"
        case .writeFailed(let p, let r): return "\(p): cannot write: \(r)"
        case .malformedPLY(let p, let r): return "\(p): malformed PLY: \(r)"
        }
    }
}
