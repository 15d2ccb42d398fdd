import CBLAS
import Foundation

/// Dense convolution (groups = 1): out[o] = clamp(bias[o] + Σ_{i,ky,kx} W[o][i][ky][kx] · in[i][y·sy + ky·dy − padTop][x·sx + kx·dx − padLeft] + residual[o]).
/// weights layout [cout][cin][kh][kw], which is already the GEMM's A = [cout, cin·kh·kw] for
/// im2col rows ordered (cin, ky, kx); bias and residual optional. A 1x1, stride-1, unpadded
/// convolution is one GEMM straight off the map; everything else goes through im2col, in bands of
/// output rows so the column buffer stays bounded on large maps.
///
/// With `quantised` (the same weights from `QuantisedWeights`), the GEMMs run in int8
/// (`int8Gemm`), the epilogue applied as the results are stored.
package func convolution(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 geometry g: ConvGeometry, clamp: Clamp, residual: FeatureMap?, workspace: Workspace, threads: Int,
                 quantised: QuantisedWeights? = nil) {
    if let residual { precondition(residual.count == output.count) }
    let pointwise = g.kernelHeight == 1 && g.kernelWidth == 1 && g.strideY == 1 && g.strideX == 1 && g.padTop == 0 && g.padLeft == 0
        && output.height == input.height && output.width == input.width
    if let quantised {
        precondition(quantised.rows == output.channels && quantised.columns == input.channels * g.kernelHeight * g.kernelWidth)
        if pointwise {
            int8Gemm(weights: quantised, n: input.plane, b: input.base, ldb: input.plane, c: output.base, ldc: output.plane,
                     threads: threads, workspace: workspace, bias: bias, residual: residual.map { UnsafePointer($0.base) },
                     residualStride: output.plane, clamp: clamp)
            return
        }
        let ho = output.height, wo = output.width, k = quantised.columns
        let bandRows = max(1, min(ho, (1 << 24) / max(1, k * wo)))
        let columns = workspace.floats("graph.im2col", count: k * bandRows * wo)
        var y0 = 0
        while y0 < ho {
            let rows = y0..<min(ho, y0 + bandRows), n = rows.count * wo, start = y0 * wo
            im2col(input, rows: rows, outputWidth: wo, geometry: g, into: columns, threads: threads)
            int8Gemm(weights: quantised, n: n, b: columns, ldb: n, c: output.base + start, ldc: output.plane,
                     threads: threads, workspace: workspace, bias: bias, residual: residual.map { UnsafePointer($0.base + start) },
                     residualStride: output.plane, clamp: clamp)
            y0 = rows.upperBound
        }
        return
    }
    if pointwise {
        pointwiseConvolution(input, into: output, weights: weights, bias: bias, clamp: clamp, residual: residual, threads: threads)
        return
    }
    let ho = output.height, wo = output.width, cout = output.channels
    let k = input.channels * g.kernelHeight * g.kernelWidth
    // ~16 M floats (64 MB) of columns at most; a 512x512 stem (K = 27) fits in one band.
    let bandRows = max(1, min(ho, (1 << 24) / max(1, k * wo)))
    let columns = workspace.floats("graph.im2col", count: k * bandRows * wo)
    let epilogue = bias != nil || residual != nil || !clamp.isNone
    var y0 = 0
    while y0 < ho {
        let rows = y0..<min(ho, y0 + bandRows), n = rows.count * wo, start = y0 * wo
        im2col(input, rows: rows, outputWidth: wo, geometry: g, into: columns, threads: threads)
        if rows.count == ho {
            gemm(m: cout, n: n, k: k, a: weights, b: columns, c: output.base, threads: threads)
        } else {
            gemm(m: cout, n: n, k: k, a: weights, b: columns, c: output.base + start, ldc: output.plane, threads: threads)
        }
        if epilogue {
            // Right after the band's GEMM, while (part of) it is still in cache.
            parallelRanges(cout, threads: threads) { _, channels in
                for o in channels {
                    clampEpilogue(output.channel(o) + start, count: n, bias: bias?[o] ?? 0,
                                  residual: residual.map { UnsafePointer($0.channel(o) + start) }, clamp: clamp)
                }
            }
        }
        y0 = rows.upperBound
    }
}

/// A 1x1 convolution with its epilogue (bias, optional residual, clamp) applied block by block:
/// the pixels are cut into column blocks small enough that a block's outputs are still in cache
/// when the epilogue touches them, instead of a second full pass over a map that can be 30 MB at
/// 1/2 resolution. Blocks are spread evenly over the threads. Meant for thin layers (encoders):
/// with 256x256 weights re-packing A per block costs more than the cache saves, so the joint
/// network's decoder uses `gemm` directly.
package func pointwiseConvolution(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>,
                                  bias: UnsafePointer<Float>?, clamp: Clamp, residual: FeatureMap?, threads: Int) {
    let m = output.channels, n = input.plane, k = input.channels
    let parallel = m * n * k >= (1 << 20) && threads > 1
    let target = max(256, (48 * 1024 / max(m, 1)) & ~63)
    var blocks = max(1, (n + target - 1) / target)
    if parallel { blocks = (blocks + threads - 1) / threads * threads }
    let columnsPerBlock = max(16, ((n + blocks - 1) / blocks + 15) & ~15)
    blocks = (n + columnsPerBlock - 1) / columnsPerBlock
    let workers = parallel ? max(1, min(threads, blocks)) : 1
    let epilogue = bias != nil || residual != nil || !clamp.isNone
    parallelRanges(blocks, threads: workers) { _, range in
        for block in range {
            let start = block * columnsPerBlock, end = min(n, start + columnsPerBlock), count = end - start
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(count), Int32(k),
                        1, weights, Int32(k), input.base + start, Int32(n), 0, output.base + start, Int32(n))
            guard epilogue else { continue }
            for c in 0..<m {
                clampEpilogue(output.channel(c) + start, count: count, bias: bias?[c] ?? 0,
                              residual: residual.map { UnsafePointer($0.channel(c) + start) }, clamp: clamp)
            }
        }
    }
}

/// `gemm` into a band of a larger output: `C` rows are `ldc` floats apart (the full plane) while
/// `B` is the band's own dense `[K, n]` columns. Same column split over the threads as `gemm`.
package func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
          c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
    let workers = m * n * k >= (1 << 21) && n >= 64 ? max(1, min(threads, n / 32)) : 1
    parallelRanges(workers, threads: workers) { w, _ in
        let start = (n * w / workers) & ~15, end = w == workers - 1 ? n : (n * (w + 1) / workers) & ~15
        guard start < end else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(end - start), Int32(k),
                    1, a, Int32(k), b + start, Int32(n), 0, c + start, Int32(ldc))
    }
}

/// im2col for output rows `rows`: column-buffer row (i, ky, kx) holds, for every output pixel of
/// the band, the input tap it multiplies (zero outside the image). The in-image span of each
/// output row is worked out once per (kx), so the copies carry no per-pixel bounds tests.
private func im2col(_ input: FeatureMap, rows: Range<Int>, outputWidth wo: Int, geometry g: ConvGeometry,
                    into columns: UnsafeMutablePointer<Float>, threads: Int) {
    let h = input.height, w = input.width, kh = g.kernelHeight, kw = g.kernelWidth
    let sx = g.strideX, area = kh * kw, n = rows.count * wo
    parallelRanges(input.channels * area, threads: threads) { _, range in
        for row in range {
            let c = row / area, ky = (row % area) / kw, kx = row % kw
            let src = UnsafePointer(input.channel(c)), dst = columns + row * n
            // Input column x·sx + offset is inside [0, w) for x in [x0, x1).
            let offset = kx * g.dilationX - g.padLeft
            let x0 = offset >= 0 ? 0 : min(wo, (sx - 1 - offset) / sx)
            let x1 = offset >= w ? 0 : min(wo, (w - 1 - offset) / sx + 1)
            for (j, y) in rows.enumerated() {
                let iy = y * g.strideY + ky * g.dilationY - g.padTop
                let out = dst + j * wo
                guard iy >= 0 && iy < h && x0 < x1 else { out.initialize(repeating: 0, count: wo); continue }
                let line = src + iy * w
                if x0 > 0 { out.initialize(repeating: 0, count: x0) }
                if sx == 1 {
                    (out + x0).update(from: line + (x0 + offset), count: x1 - x0)
                } else {
                    for x in x0..<x1 { out[x] = line[x * sx + offset] }
                }
                if x1 < wo { (out + x1).initialize(repeating: 0, count: wo - x1) }
            }
        }
    }
}
