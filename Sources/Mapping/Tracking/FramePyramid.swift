import Foundation
import Geometry
import Imaging

/// Per-level camera-frame vertex and normal maps of one depth image, coarse levels by
/// ElasticFusion's depth pyramid (5x5 Gaussian, only samples within 9 cm of the centre).
public struct VertexNormalMap: Sendable {
    public var intrinsics: Intrinsics
    /// NaN-free: invalid pixels have z == 0.
    public var vertices: [SIMD3<Float>]
    /// Unit normals toward the camera; zero where invalid.
    public var normals: [SIMD3<Float>]

    /// Vertices by back-projection and normals by forward differences (NaN at borders and
    /// around missing depth, as ElasticFusion's tracking normals).
    public init(depth: [Float], intrinsics k: Intrinsics, threads: Int = 1) {
        intrinsics = k
        let w = k.width, h = k.height
        var v = [SIMD3<Float>](repeating: .zero, count: w * h)
        var n = [SIMD3<Float>](repeating: .zero, count: w * h)
        let chunks = threads > 1 ? 4 * threads : 1
        depth.withKernelInput { dp in
            v.withKernelOutput { vp in
                ParallelFor.run(h, chunks: chunks, threads: threads) { _, rows in
                    for y in rows {
                        for x in 0..<w where dp[y * w + x] > 0 {
                            vp[y * w + x] = k.backProject(u: Float(x), v: Float(y), depth: dp[y * w + x])
                        }
                    }
                }
            }
        }
        v.withKernelInput { vp in
            n.withKernelOutput { np in
                ParallelFor.run(max(0, h - 1), chunks: chunks, threads: threads) { _, rows in
                    for y in rows {
                        for x in 0..<(w - 1) {
                            let p = y * w + x
                            let c = vp[p], r = vp[p + 1], d = vp[p + w]
                            guard c.z > 0, r.z > 0, d.z > 0 else { continue }
                            var normal = (r - c).cross(d - c)
                            let len = normal.length
                            guard len > 0 else { continue }
                            normal /= len
                            if normal.dot(c) > 0 { normal = -normal }
                            np[p] = normal
                        }
                    }
                }
            }
        }
        vertices = v
        normals = n
    }

    public init(intrinsics: Intrinsics, vertices: [SIMD3<Float>], normals: [SIMD3<Float>]) {
        self.intrinsics = intrinsics; self.vertices = vertices; self.normals = normals
    }

    /// Read-only views of both maps for one kernel call (`KernelMemory.swift`).
    func withKernelInputs<R>(_ body: (_ vertices: KernelInput<SIMD3<Float>>, _ normals: KernelInput<SIMD3<Float>>) throws -> R) rethrows -> R {
        try vertices.withKernelInput { v in try normals.withKernelInput { n in try body(v, n) } }
    }

    /// This model prediction and its coarser levels (`downsampled`), finest first.
    public func pyramid(levels: Int, threads: Int = 1) -> [VertexNormalMap] {
        var maps = [self]
        for _ in 1..<max(1, levels) { maps.append(maps[maps.count - 1].downsampled(threads: threads)) }
        return maps
    }

    /// The next coarser level of a model prediction: 2x2 average, invalid if any input is.
    public func downsampled(threads: Int = 1) -> VertexNormalMap {
        let w = intrinsics.width, h = intrinsics.height, w2 = w / 2, h2 = h / 2
        var v = [SIMD3<Float>](repeating: .zero, count: w2 * h2)
        var n = [SIMD3<Float>](repeating: .zero, count: w2 * h2)
        vertices.withKernelInput { vs in
        normals.withKernelInput { ns in
        v.withKernelOutput { vo in
        n.withKernelOutput { no in
            ParallelFor.run(h2, chunks: threads > 1 ? 4 * threads : 1, threads: threads) { _, rows in
                for y in rows {
                    for x in 0..<w2 {
                        let a = (2 * y) * w + 2 * x, b = a + 1, c = a + w, d = c + 1
                        guard vs[a].z > 0, vs[b].z > 0, vs[c].z > 0, vs[d].z > 0,
                              ns[a] != .zero, ns[b] != .zero, ns[c] != .zero, ns[d] != .zero else { continue }
                        vo[y * w2 + x] = (vs[a] + vs[b] + vs[c] + vs[d]) / 4
                        no[y * w2 + x] = (ns[a] + ns[b] + ns[c] + ns[d]).normalized
                    }
                }
            }
        }}}}
        return VertexNormalMap(intrinsics: Self.half(intrinsics), vertices: v, normals: n)
    }

    static func half(_ k: Intrinsics) -> Intrinsics {
        Intrinsics(fx: k.fx / 2, fy: k.fy / 2, cx: (k.cx + 0.5) / 2 - 0.5, cy: (k.cy + 0.5) / 2 - 0.5, width: k.width / 2, height: k.height / 2)
    }

    /// ElasticFusion's depth pyramid step: 5x5 [1 4 6 4 1]² weights, only samples within
    /// 90 mm of the centre, then every second pixel.
    static func downsampleDepth(_ depth: [Float], width w: Int, height h: Int, threads: Int = 1) -> [Float] {
        gaussianDownsample(depth, width: w, height: h, maxDifference: 0.09, threads: threads)
    }

    /// Three-level pyramid of a (filtered) depth image.
    public static func pyramid(depth: [Float], intrinsics: Intrinsics, levels: Int, threads: Int = 1) -> [VertexNormalMap] {
        var maps = [VertexNormalMap(depth: depth, intrinsics: intrinsics, threads: threads)]
        var d = depth, k = intrinsics
        for _ in 1..<levels {
            d = downsampleDepth(d, width: k.width, height: k.height, threads: threads)
            k = half(k)
            maps.append(VertexNormalMap(depth: d, intrinsics: k, threads: threads))
        }
        return maps
    }
}

/// One pyramid step shared by depth and intensity: a 5x5 [1 4 6 4 1]² Gaussian centred on every
/// second pixel, over the samples that have data (> 0) and, with `maxDifference`, lie within it
/// of the centre (ElasticFusion's depth rule); pixels whose centre has no data stay 0.
///
/// Away from the borders eight outputs go at once (`gaussianDownsampleBlock`), each lane with
/// the scalar loop's operations in its order, so the results are the same bits (tested).
func gaussianDownsample(_ values: [Float], width w: Int, height h: Int, maxDifference: Float?, threads: Int = 1) -> [Float] {
    let w2 = w / 2, h2 = h / 2
    let limit = maxDifference ?? .infinity
    var out = [Float](repeating: 0, count: w2 * h2)
    // Outputs whose taps all lie inside the image, and whose eight-wide loads do too: columns
    // 2x − 2 ... 2(x + 7) + 2 + 1 (the de-interleaving load reads one past the last tap).
    let firstX = 1, lastBlockX = (w - 18) / 2   // a block may start at x ≤ lastBlockX
    values.withKernelInput { dp in
    out.withKernelOutput { op in
        ParallelFor.run(h2, chunks: threads > 1 ? 4 * threads : 1, threads: threads) { _, rows in
            for y in rows {
                var x = 0
                let interiorRow = y >= 1 && 2 * y + 2 <= h - 1
                while x < w2 {
                    if interiorRow && x >= firstX && x <= lastBlockX {
                        let block = gaussianDownsampleBlock(dp.address(2 * y * w + 2 * x), width: w, limit: limit)
                        for i in 0..<8 { op[y * w2 + x + i] = block[i] }
                        x += 8
                        continue
                    }
                    op[y * w2 + x] = gaussianDownsampleScalar(dp, width: w, height: h, x: x, y: y, limit: limit)
                    x += 1
                }
            }
        }
    }}
    return out
}

private let pyramidWeights: [Float] = [0.0625, 0.25, 0.375, 0.25, 0.0625]

@inline(__always)
private func gaussianDownsampleScalar(_ dp: KernelInput<Float>, width w: Int, height h: Int, x: Int, y: Int, limit: Float) -> Float {
    let g = pyramidWeights
    let cx = 2 * x, cy = 2 * y
    let c = dp[cy * w + cx]
    guard c > 0 else { return 0 }
    var sum: Float = 0, wsum: Float = 0
    for dy in -2...2 {
        let yy = cy + dy
        guard yy >= 0, yy < h else { continue }
        for dx in -2...2 {
            let xx = cx + dx
            guard xx >= 0, xx < w else { continue }
            let v = dp[yy * w + xx]
            guard v > 0, abs(v - c) < limit else { continue }
            let wt = g[dx + 2] * g[dy + 2]
            sum += wt * v; wsum += wt
        }
    }
    return sum / wsum
}

/// Eight outputs of an interior row from `centre` (the first output's centre sample): per lane
/// the taps in the scalar loop's order, a skipped tap adding exactly zero to both sums.
@inline(__always)
private func gaussianDownsampleBlock(_ centre: UnsafePointer<Float>, width w: Int, limit: Float) -> SIMD8<Float> {
    let g = pyramidWeights
    let zero = SIMD8<Float>(), limits = SIMD8<Float>(repeating: limit)
    let c = UnsafeRawPointer(centre).loadUnaligned(as: SIMD16<Float>.self).evenHalf
    var sum = zero, wsum = zero
    for dy in -2...2 {
        let row = centre + dy * w
        for dx in -2...2 {
            let v = UnsafeRawPointer(row + dx).loadUnaligned(as: SIMD16<Float>.self).evenHalf
            // |v − c| by clearing the sign bit: exactly `abs`.
            let difference = unsafeBitCast(unsafeBitCast(v - c, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
            let valid = (v .> zero) .& (difference .< limits)
            let wt = SIMD8<Float>(repeating: g[dx + 2] * g[dy + 2])
            sum += (wt * v).replacing(with: 0, where: .!valid)
            wsum += wt.replacing(with: 0, where: .!valid)
        }
    }
    return (sum / wsum).replacing(with: 0, where: .!(c .> zero))
}
