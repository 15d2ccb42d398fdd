import Geometry
import Imaging
@testable import Mapping

/// A flat wall seen by a slowly moving camera: exact depth by ray casting, for fusion tests.
struct PlaneScene {
    var intrinsics = Intrinsics(fx: 72, fy: 72, cx: 47.5, cy: 35.5, width: 96, height: 72)
    /// World plane n·X = d (z = 2 m in front of the start pose).
    var normal = SIMD3<Double>(0, 0, -1)
    var offset = -2.0

    func pose(_ i: Int) -> RigidTransform {
        let t = Double(i)
        // Slow enough (< 1 mm, < 0.06 deg per frame) for ElasticFusion's velocity weight to stay near 1.
        return RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 1, 0), angle: 0.001 * t),
                              translation: SIMD3(0.0006 * t, 0.0002 * t, 0.0004 * t))
    }

    func depth(_ pose: RigidTransform) -> DepthImage {
        var img = DepthImage(width: intrinsics.width, height: intrinsics.height, repeating: 0)
        let origin = pose.translation
        for y in 0..<intrinsics.height {
            for x in 0..<intrinsics.width {
                let dirCam = SIMD3((Double(x) - intrinsics.cx) / intrinsics.fx, (Double(y) - intrinsics.cy) / intrinsics.fy, 1)
                let dir = pose.rotation * dirCam
                let denom = (normal * dir).sum()
                guard abs(denom) > 1e-9 else { continue }
                let s = (offset - (normal * origin).sum()) / denom
                if s > 0 { img[x, y] = Float(s) } // s is depth since dirCam.z == 1
            }
        }
        return img
    }

    func color() -> ColorImage {
        ColorImage(width: intrinsics.width, height: intrinsics.height, repeating: RGB8(100, 150, 200))
    }

    /// Distance of a world point from the plane.
    func distance(_ p: SIMD3<Float>) -> Double {
        abs((normal * SIMD3<Double>(p)).sum() - offset)
    }
}
