/// Errors from loading weights and running the network; each names the file or tensor involved.
public enum NetworkError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case malformedSafetensors(path: String, reason: String)
    case weightMismatch(path: String, missing: [String], extra: [String], misshaped: [String])
    case invalidTensor(path: String, name: String, reason: String)
    case invalidInput(String)
    /// A converted mobile model (`docs/graph-format.md`) that the engine cannot run as it is.
    case invalidGraph(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): return "\(p): cannot read weights: \(r)"
        case .malformedSafetensors(let p, let r): return "\(p): not a valid safetensors file: \(r)"
        case .weightMismatch(let p, let missing, let extra, let misshaped):
            var lines = ["\(p): weights do not match the network (MobileNet-v2 Light-Weight RefineNet, official key names; see docs/network.md)"]
            func list(_ title: String, _ names: [String]) {
                guard !names.isEmpty else { return }
                let shown = names.prefix(12).joined(separator: ", ")
                lines.append("  \(title) (\(names.count)): \(shown)\(names.count > 12 ? ", …" : "")")
            }
            list("missing", missing)
            list("mis-shaped or wrong dtype", misshaped)
            list("unexpected", extra)
            return lines.joined(separator: "\n")
        case .invalidTensor(let p, let n, let r): return "\(p): tensor \(n): \(r)"
        case .invalidInput(let r): return "network input: \(r)"
        case .invalidGraph(let p, let r): return "\(p): \(r)"
        }
    }
}
