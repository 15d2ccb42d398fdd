import Foundation
import Geometry
import Imaging
import Mapping
import Semantics

/// A picture of the map for people who would rather look than read: the stable surfels
/// rendered as discs from an overview camera, class colours on the left and fused RGB on the
/// right (RGB only when there are no labels).
public enum MapPreview {
    /// An overview pose: from the trajectory's centre, pulled back along the mean viewing
    /// direction and raised, looking at the centroid of the map.
    public static func overviewPose(map: SurfelMap, trajectory: [RigidTransform], minimumConfidence: Float) -> RigidTransform? {
        var centroid = SIMD3<Double>.zero
        var n = 0.0
        for i in Swift.stride(from: 0, to: map.count, by: max(1, map.count / 20_000)) where map.confidences[i] >= minimumConfidence {
            centroid += SIMD3<Double>(map.positions[i]); n += 1
        }
        guard n > 0 else { return nil }
        return overviewPose(centroid: centroid / n, trajectory: trajectory)
    }

    /// The overview pose looking at `centroid` from behind and above the trajectory.
    public static func overviewPose(centroid: SIMD3<Double>, trajectory: [RigidTransform]) -> RigidTransform? {
        guard !trajectory.isEmpty else { return nil }
        var eye = SIMD3<Double>.zero, forward = SIMD3<Double>.zero, down = SIMD3<Double>.zero
        for pose in trajectory {
            eye += pose.translation
            forward += pose.rotation * SIMD3(0, 0, 1)
            down += pose.rotation * SIMD3(0, 1, 0)
        }
        eye /= Double(trajectory.count)
        forward = forward.normalized
        down = down.normalized
        let distance = max(0.5, (centroid - eye).length)
        eye = eye - forward * distance * 0.9 - down * distance * 0.6
        let z = (centroid - eye).normalized
        var x = down.cross(z)
        if x.length < 1e-6 { x = SIMD3(1, 0, 0).cross(z) }
        x = x.normalized
        let y = z.cross(x)
        let rotation = Matrix3(rows: SIMD3(x.x, y.x, z.x), SIMD3(x.y, y.y, z.y), SIMD3(x.z, y.z, z.z))
        return RigidTransform(rotation: rotation, translation: eye)
    }

    /// Renders the preview image; nil when the map has nothing to show.
    public static func render(map: SurfelMap, classSet: ClassSet?, trajectory: [RigidTransform], minimumConfidence: Float,
                              width: Int = 640, height: Int = 480) -> ColorImage? {
        guard let pose = overviewPose(map: map, trajectory: trajectory, minimumConfidence: minimumConfidence) else { return nil }
        // Zoom so that most of the map fills the frame.
        let cameraFromWorld = pose.inverse.float
        var spreadX: [Float] = [], spreadY: [Float] = []
        for i in Swift.stride(from: 0, to: map.count, by: max(1, map.count / 5000)) where map.confidences[i] >= minimumConfidence {
            let p = cameraFromWorld.apply(map.positions[i])
            guard p.z > 0.1 else { continue }
            spreadX.append(abs(p.x / p.z)); spreadY.append(abs(p.y / p.z))
        }
        guard !spreadX.isEmpty else { return nil }
        spreadX.sort(); spreadY.sort()
        let px = Double(spreadX[spreadX.count * 95 / 100]), py = Double(spreadY[spreadY.count * 95 / 100])
        let f = min(Double(width) / 2 / max(px, 1e-3), Double(height) / 2 / max(py, 1e-3)) * 0.9
        let intrinsics = Intrinsics(fx: f, fy: f, cx: Double(width) / 2 - 0.5, cy: Double(height) / 2 - 0.5, width: width, height: height)
        let out = SurfelRenderer().render(map, cameraFromWorld: pose.inverse, intrinsics: intrinsics,
                                          selection: .init(minimumConfidence: minimumConfidence), maxPixelRadius: 6)
        // Simple shading by the normal's angle to the view so shapes read without lighting.
        func shade(_ c: RGB8, _ pixel: Int) -> RGB8 {
            let k = 0.55 + 0.45 * min(1, abs(out.normals[pixel].z))
            return RGB8(UInt8(Float(c.r) * k), UInt8(Float(c.g) * k), UInt8(Float(c.b) * k))
        }
        let background = RGB8(24, 24, 28)
        var rgb = ColorImage(width: width, height: height, repeating: background)
        var semantic = rgb
        for p in 0..<out.surfel.count where out.surfel[p] >= 0 {
            let i = Int(out.surfel[p])
            rgb.pixels[p] = map.colors[i]
            if let classSet {
                semantic.pixels[p] = shade(map.label(of: i).map { classSet.color(of: $0.classId) } ?? RGB8(128, 128, 128), p)
            }
        }
        guard classSet != nil else { return rgb }
        var both = ColorImage(width: width * 2, height: height, repeating: background)
        for y in 0..<height {
            for x in 0..<width {
                both[x, y] = semantic[x, y]
                both[x + width, y] = rgb[x, y]
            }
        }
        return both
    }
}
