import Foundation
import Geometry
import Imaging

/// Per-level camera-frame vertex and normal maps of one depth image, coarse levels by
/// ElasticFusion's depth pyramid (5x5 Gaussian, only samples within 9 cm of the centre).
public struct VertexNormalMap: @unchecked Sendable {
    public var intrinsics: Intrinsics
    /// NaN-free: invalid pixels have z == 0.
    public var vertices: [SIMD3<Float>]
    /// Unit normals toward the camera; zero where invalid.
    public var normals: [SIMD3<Float>]

    /// Vertices by back-projection and normals by forward differences (NaN at borders and
    /// around missing depth, as ElasticFusion's tracking normals).
    public init(depth: [Float], intrinsics k: Intrinsics) {
        intrinsics = k
        let w = k.width, h = k.height
        var v = [SIMD3<Float>](repeating: .zero, count: w * h)
        for y in 0..<h {
            for x in 0..<w where depth[y * w + x] > 0 {
                v[y * w + x] = k.backProject(u: Float(x), v: Float(y), depth: depth[y * w + x])
            }
        }
        var n = [SIMD3<Float>](repeating: .zero, count: w * h)
        for y in 0..<(h - 1) {
            for x in 0..<(w - 1) {
                let p = y * w + x
                let c = v[p], r = v[p + 1], d = v[p + w]
                guard c.z > 0, r.z > 0, d.z > 0 else { continue }
                var normal = (r - c).cross(d - c)
                let len = normal.length
                guard len > 0 else { continue }
                normal /= len
                if normal.dot(c) > 0 { normal = -normal }
                n[p] = normal
            }
        }
        vertices = v
        normals = n
    }

    public init(intrinsics: Intrinsics, vertices: [SIMD3<Float>], normals: [SIMD3<Float>]) {
        self.intrinsics = intrinsics; self.vertices = vertices; self.normals = normals
    }

    /// The next coarser level of a model prediction: 2x2 average, invalid if any input is.
    public func downsampled() -> VertexNormalMap {
        let w = intrinsics.width, h = intrinsics.height, w2 = w / 2, h2 = h / 2
        var v = [SIMD3<Float>](repeating: .zero, count: w2 * h2)
        var n = [SIMD3<Float>](repeating: .zero, count: w2 * h2)
        for y in 0..<h2 {
            for x in 0..<w2 {
                let a = (2 * y) * w + 2 * x, b = a + 1, c = a + w, d = c + 1
                guard vertices[a].z > 0, vertices[b].z > 0, vertices[c].z > 0, vertices[d].z > 0,
                      normals[a] != .zero, normals[b] != .zero, normals[c] != .zero, normals[d] != .zero else { continue }
                v[y * w2 + x] = (vertices[a] + vertices[b] + vertices[c] + vertices[d]) / 4
                n[y * w2 + x] = (normals[a] + normals[b] + normals[c] + normals[d]).normalized
            }
        }
        return VertexNormalMap(intrinsics: Self.half(intrinsics), vertices: v, normals: n)
    }

    static func half(_ k: Intrinsics) -> Intrinsics {
        Intrinsics(fx: k.fx / 2, fy: k.fy / 2, cx: (k.cx + 0.5) / 2 - 0.5, cy: (k.cy + 0.5) / 2 - 0.5, width: k.width / 2, height: k.height / 2)
    }

    /// ElasticFusion's depth pyramid step: 5x5 [1 4 6 4 1]² weights, only samples within
    /// 90 mm of the centre, then every second pixel.
    static func downsampleDepth(_ depth: [Float], width w: Int, height h: Int) -> [Float] {
        let w2 = w / 2, h2 = h / 2
        let g: [Float] = [0.0625, 0.25, 0.375, 0.25, 0.0625]
        var out = [Float](repeating: 0, count: w2 * h2)
        for y in 0..<h2 {
            for x in 0..<w2 {
                let cx = 2 * x, cy = 2 * y
                let c = depth[cy * w + cx]
                guard c > 0 else { continue }
                var sum: Float = 0, wsum: Float = 0
                for dy in -2...2 {
                    for dx in -2...2 {
                        let xx = cx + dx, yy = cy + dy
                        guard xx >= 0, yy >= 0, xx < w, yy < h else { continue }
                        let v = depth[yy * w + xx]
                        guard v > 0, abs(v - c) < 0.09 else { continue }
                        let wt = g[dx + 2] * g[dy + 2]
                        sum += wt * v; wsum += wt
                    }
                }
                out[y * w2 + x] = sum / wsum
            }
        }
        return out
    }

    /// Three-level pyramid of a (filtered) depth image.
    public static func pyramid(depth: [Float], intrinsics: Intrinsics, levels: Int) -> [VertexNormalMap] {
        var maps = [VertexNormalMap(depth: depth, intrinsics: intrinsics)]
        var d = depth, k = intrinsics
        for _ in 1..<levels {
            d = downsampleDepth(d, width: k.width, height: k.height)
            k = half(k)
            maps.append(VertexNormalMap(depth: d, intrinsics: k))
        }
        return maps
    }
}
