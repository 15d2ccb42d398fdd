/// Errors of the reconstruction pipeline and its options.
public enum PipelineError: Error, CustomStringConvertible {
    case invalidOption(String)
    case noFrames(String)
    case missingPoses(sequence: String)
    case missingLabels(sequence: String, source: String)
    case frameFailed(index: Int, source: String, underlying: Error)

    public var description: String {
        switch self {
        case .invalidOption(let m): return m
        case .noFrames(let m): return m
        case .missingPoses(let s):
            return "\(s): the sequence has no camera poses; --poses groundtruth needs them (use --poses track)"
        case .missingLabels(let s, let src): return "\(s): --labels \(src) needs \(src == "recorded" ? "recorded probabilities" : "label images") in the sequence"
        case .frameFailed(let i, let s, let e): return "frame \(i) (\(s)): \(e)"
        }
    }
}
