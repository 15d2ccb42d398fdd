import Imaging
import Mapping
import Semantics

/// Turns the surfel map into a `PointCloud` for PLY export.
public enum MapExport {
    /// How points are coloured.
    public enum ColorMode: String, Sendable {
        /// The class palette of each surfel's most likely class (grey when never labelled).
        case semantic
        /// The fused surfel colour.
        case rgb
    }

    /// Colour of surfels that never received label evidence.
    public static let unlabelledColor = RGB8(128, 128, 128)

    /// - Parameters:
    ///   - confidenceThreshold: keep only surfels at or above it (stable surfels); nil keeps all.
    ///   - includeProbabilities: add every class probability per point.
    public static func pointCloud(_ map: SurfelMap, classSet: ClassSet?, colorMode: ColorMode,
                                  confidenceThreshold: Float?, includeProbabilities: Bool) -> PointCloud {
        let keep = (0..<map.count).filter { confidenceThreshold == nil || map.confidences[$0] >= confidenceThreshold! }
        var cloud = PointCloud(positions: keep.map { map.positions[$0] })
        cloud.normals = keep.map { map.normals[$0] }
        cloud.confidence = keep.map { map.confidences[$0] }
        cloud.radius = keep.map { map.radii[$0] }
        if let classSet, map.classCount > 0 {
            var labels = [Int32](), labelConfidence = [Float](), colors = [RGB8]()
            labels.reserveCapacity(keep.count); labelConfidence.reserveCapacity(keep.count); colors.reserveCapacity(keep.count)
            for i in keep {
                if let (label, p) = map.label(of: i) {
                    labels.append(Int32(label)); labelConfidence.append(p)
                    colors.append(colorMode == .semantic ? classSet.color(of: label) : map.colors[i])
                } else {
                    labels.append(-1); labelConfidence.append(0)
                    colors.append(colorMode == .semantic ? unlabelledColor : map.colors[i])
                }
            }
            cloud.labels = labels
            cloud.labelConfidence = labelConfidence
            cloud.colors = colors
            cloud.classSet = classSet
            if includeProbabilities {
                var values = [Float]()
                values.reserveCapacity(keep.count * map.classCount)
                for i in keep { values.append(contentsOf: map.classProbabilities(of: i)) }
                cloud.classProbabilities = (classCount: map.classCount, values: values)
            }
        } else {
            cloud.colors = keep.map { map.colors[$0] }
        }
        return cloud
    }
}
