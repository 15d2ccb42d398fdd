/// Errors from fusion inputs; each names the frame source and the problem.
public enum MappingError: Error, CustomStringConvertible, Equatable {
    case imageSize(source: String, what: String, found: String, expected: String)
    case invalidPose(source: String)
    case classCountMismatch(source: String, found: Int, expected: Int)
    case invalidProbabilities(source: String, reason: String)

    public var description: String {
        switch self {
        case .imageSize(let s, let w, let f, let e): return "\(s): \(w) is \(f), expected \(e)"
        case .invalidPose(let s): return "\(s): camera pose is not a valid rigid transform (NaN or non-orthonormal rotation)"
        case .classCountMismatch(let s, let f, let e): return "\(s): class probabilities have \(f) classes, the map has \(e)"
        case .invalidProbabilities(let s, let r): return "\(s): invalid class probabilities: \(r)"
        }
    }
}
