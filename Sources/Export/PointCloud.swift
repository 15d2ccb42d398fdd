import Imaging
import Semantics

/// Points with optional per-point attributes, stored as a structure of arrays; what PLY files
/// hold. All present columns have `count` entries.
public struct PointCloud: @unchecked Sendable {
    public var positions: [SIMD3<Float>]
    public var normals: [SIMD3<Float>]?
    public var colors: [RGB8]?
    /// Class id per point, -1 for none.
    public var labels: [Int32]?
    /// Probability of the label.
    public var labelConfidence: [Float]?
    /// Surfel confidence (accumulated fusion weight).
    public var confidence: [Float]?
    public var radius: [Float]?
    /// All class probabilities, point-major.
    public var classProbabilities: (classCount: Int, values: [Float])?
    /// Names and colours written as header comments.
    public var classSet: ClassSet?

    public init(positions: [SIMD3<Float>]) { self.positions = positions }

    public var count: Int { positions.count }

    /// PLY property names in file order.
    public var propertyNames: [String] {
        var names = ["x", "y", "z"]
        if normals != nil { names += ["nx", "ny", "nz"] }
        if colors != nil { names += ["red", "green", "blue"] }
        if labels != nil { names.append("label") }
        if labelConfidence != nil { names.append("label_confidence") }
        if confidence != nil { names.append("confidence") }
        if radius != nil { names.append("radius") }
        if let probabilities = classProbabilities { names += (0..<probabilities.classCount).map { "prob_\($0)" } }
        return names
    }

    /// Why the cloud cannot be written, if it cannot.
    public func validationProblem() -> String? {
        let n = count
        let counts: [(String, Int?)] = [("normals", normals?.count), ("colors", colors?.count), ("labels", labels?.count),
                                        ("label_confidence", labelConfidence?.count), ("confidence", confidence?.count),
                                        ("radius", radius?.count)]
        for (name, c) in counts where c != nil && c != n { return "\(name) has \(c!) entries for \(n) points" }
        if let p = classProbabilities, p.values.count != p.classCount * n {
            return "class probabilities have \(p.values.count) values for \(n) points x \(p.classCount) classes"
        }
        if let bad = positions.firstIndex(where: { !($0.x.isFinite && $0.y.isFinite && $0.z.isFinite) }) {
            return "point \(bad) has a non-finite position"
        }
        return nil
    }
}

extension PointCloud {
    /// The points at `indices`, in that order, with every column that is present.
    public func subset(_ indices: [Int]) -> PointCloud {
        var out = PointCloud(positions: indices.map { positions[$0] })
        out.normals = normals.map { n in indices.map { n[$0] } }
        out.colors = colors.map { c in indices.map { c[$0] } }
        out.labels = labels.map { l in indices.map { l[$0] } }
        out.labelConfidence = labelConfidence.map { l in indices.map { l[$0] } }
        out.confidence = confidence.map { c in indices.map { c[$0] } }
        out.radius = radius.map { r in indices.map { r[$0] } }
        if let p = classProbabilities {
            var values = [Float]()
            values.reserveCapacity(indices.count * p.classCount)
            for i in indices { values.append(contentsOf: p.values[(i * p.classCount)..<((i + 1) * p.classCount)]) }
            out.classProbabilities = (classCount: p.classCount, values: values)
        }
        out.classSet = classSet
        return out
    }
}
