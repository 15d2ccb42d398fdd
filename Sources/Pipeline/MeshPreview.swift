import Export
import Foundation
import Geometry
import Imaging

/// A picture of a mesh: its triangles rasterised with a z-buffer from an overview camera,
/// vertex colours interpolated and shaded by the angle between each face and the view.
public enum MeshPreview {
    /// The camera: the reconstruction's overview pose when a trajectory is given, otherwise a
    /// view from the side the normals face (they point towards the cameras that saw the surface).
    public static func render(_ mesh: TriangleMesh, trajectory: [RigidTransform] = [], width: Int = 640, height: Int = 480) -> ColorImage? {
        let positions = mesh.vertices.positions
        guard !mesh.faces.isEmpty, let normals = mesh.vertices.normals else { return nil }
        var centroid = SIMD3<Double>.zero, facing = SIMD3<Double>.zero
        for (p, n) in zip(positions, normals) { centroid += SIMD3<Double>(p); facing += SIMD3<Double>(n) }
        centroid /= Double(positions.count)
        var radius = 0.0
        for p in positions { radius = max(radius, (SIMD3<Double>(p) - centroid).length) }
        let pose: RigidTransform
        if let overview = MapPreview.overviewPose(centroid: centroid, trajectory: trajectory) {
            pose = overview
        } else {
            let back = facing.length > 1e-9 ? facing.normalized : SIMD3(0, 0, -1)
            pose = lookAt(eye: centroid + back * max(radius, 0.25) * 1.6, target: centroid)
        }
        let cameraFromWorld = pose.inverse.float
        let camera = positions.map { cameraFromWorld.apply($0) }
        // Zoom so that most of the mesh fills the frame.
        var spreadX: [Float] = [], spreadY: [Float] = []
        for p in Swift.stride(from: 0, to: camera.count, by: max(1, camera.count / 5000)).map({ camera[$0] }) where p.z > 0.05 {
            spreadX.append(abs(p.x / p.z)); spreadY.append(abs(p.y / p.z))
        }
        guard !spreadX.isEmpty else { return nil }
        spreadX.sort(); spreadY.sort()
        let f = min(Float(width) / 2 / max(spreadX[spreadX.count * 95 / 100], 1e-3),
                    Float(height) / 2 / max(spreadY[spreadY.count * 95 / 100], 1e-3)) * 0.9
        let cx = Float(width) / 2, cy = Float(height) / 2
        var depth = [Float](repeating: .infinity, count: width * height)
        let background = RGB8(24, 24, 28)
        var image = ColorImage(width: width, height: height, repeating: background)
        let colors = mesh.vertices.colors
        for face in mesh.faces {
            let i = [Int(face.x), Int(face.y), Int(face.z)]
            let a = camera[i[0]], b = camera[i[1]], c = camera[i[2]]
            guard a.z > 0.05, b.z > 0.05, c.z > 0.05 else { continue }
            let e1 = b - a, e2 = c - a
            var n = SIMD3(e1.y * e2.z - e1.z * e2.y, e1.z * e2.x - e1.x * e2.z, e1.x * e2.y - e1.y * e2.x)
            let length = (n * n).sum().squareRoot()
            guard length > 0 else { continue }
            n /= length
            let view = ((a + b + c) / 3)
            let shade = 0.3 + 0.7 * abs((n * view).sum()) / (view * view).sum().squareRoot()
            let s = [a, b, c].map { SIMD2<Float>(f * $0.x / $0.z + cx, f * $0.y / $0.z + cy) }
            let area = (s[1].x - s[0].x) * (s[2].y - s[0].y) - (s[2].x - s[0].x) * (s[1].y - s[0].y)
            guard abs(area) > 1e-9 else { continue }
            let minX = max(0, Int(min(s[0].x, s[1].x, s[2].x).rounded(.down))), maxX = min(width - 1, Int(max(s[0].x, s[1].x, s[2].x).rounded(.up)))
            let minY = max(0, Int(min(s[0].y, s[1].y, s[2].y).rounded(.down))), maxY = min(height - 1, Int(max(s[0].y, s[1].y, s[2].y).rounded(.up)))
            guard minX <= maxX, minY <= maxY, (maxX - minX) * (maxY - minY) < width * height / 4 else { continue }
            let inverseDepth = [1 / a.z, 1 / b.z, 1 / c.z]
            let rgb = i.map { v -> SIMD3<Float> in
                let c = colors?[v] ?? RGB8(200, 200, 200)
                return SIMD3(Float(c.r), Float(c.g), Float(c.b))
            }
            for y in minY...maxY {
                for x in minX...maxX {
                    let px = Float(x) + 0.5, py = Float(y) + 0.5
                    let w0 = ((s[1].x - px) * (s[2].y - py) - (s[2].x - px) * (s[1].y - py)) / area
                    let w1 = ((s[2].x - px) * (s[0].y - py) - (s[0].x - px) * (s[2].y - py)) / area
                    let w2 = 1 - w0 - w1
                    guard w0 >= 0, w1 >= 0, w2 >= 0 else { continue }
                    let z = 1 / (w0 * inverseDepth[0] + w1 * inverseDepth[1] + w2 * inverseDepth[2])
                    let pixel = y * width + x
                    guard z < depth[pixel] else { continue }
                    depth[pixel] = z
                    let color = (w0 * rgb[0] + w1 * rgb[1] + w2 * rgb[2]) * shade
                    image.pixels[pixel] = RGB8(UInt8(clamping: Int(color.x)), UInt8(clamping: Int(color.y)), UInt8(clamping: Int(color.z)))
                }
            }
        }
        return image
    }

    /// A camera at `eye` looking at `target`, its image x axis horizontal in the world's x-z
    /// plane unless the view is nearly vertical.
    static func lookAt(eye: SIMD3<Double>, target: SIMD3<Double>) -> RigidTransform {
        let z = (target - eye).normalized
        var up = SIMD3<Double>(0, -1, 0)
        if abs((up * z).sum()) > 0.95 { up = SIMD3(0, 0, 1) }
        let x = up.cross(z).normalized
        let y = z.cross(x)
        let rotation = Matrix3(rows: SIMD3(x.x, y.x, z.x), SIMD3(x.y, y.y, z.y), SIMD3(x.z, y.z, z.z))
        return RigidTransform(rotation: rotation, translation: eye)
    }
}
