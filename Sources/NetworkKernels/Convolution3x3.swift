/// Dense 3x3 convolution (padding 1, stride 1) as one GEMM per tap: `T = W_taps[9·cout, cin] · X`
/// computes every tap's contribution at every pixel in one large, BLAS-friendly multiply
/// (M = 9·cout instead of im2col's M = cout, which is too thin for the 40-class and 1-channel
/// heads), then the nine shifted planes are summed into the output. `tapWeights` is
/// `[tap][cout][cin]` with tap = 3·dy + dx.
package func convolution3x3(_ input: FeatureMap, into output: FeatureMap, tapWeights: UnsafePointer<Float>,
                    bias: UnsafePointer<Float>, workspace: Workspace, threads: Int) {
    let h = input.height, w = input.width, cout = output.channels, plane = input.plane
    let taps = workspace.floats("conv3x3.taps", count: 9 * cout * plane)
    gemm(m: 9 * cout, n: plane, k: input.channels, a: tapWeights, b: input.base, c: taps, threads: threads)
    parallelRanges(cout, threads: threads) { _, channels in
        for o in channels {
            let dst = output.channel(o)
            dst.initialize(repeating: bias[o], count: plane)
            for dy in 0..<3 {
                for dx in 0..<3 {
                    let src = taps + ((3 * dy + dx) * cout + o) * plane
                    // out[y][x] += T[y + dy − 1][x + dx − 1] where the source pixel exists.
                    let y0 = max(0, 1 - dy), y1 = min(h, h + 1 - dy)
                    let x0 = max(0, 1 - dx), x1 = min(w, w + 1 - dx)
                    guard y0 < y1, x0 < x1 else { continue }
                    for y in y0..<y1 {
                        addInPlace(dst + y * w + x0, src + (y + dy - 1) * w + (x0 + dx - 1), x1 - x0)
                    }
                }
            }
        }
    }
}

/// The stem: 3x3 convolution, stride 2, padding 1, 3 → 32 channels, folded BatchNorm, ReLU6,
/// lowered to im2col (K = 27) and one GEMM.
package func stemConvolution(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>,
                     bias: UnsafePointer<Float>, workspace: Workspace, threads: Int) {
    let h = input.height, w = input.width, ho = output.height, wo = output.width
    let n = ho * wo, k = input.channels * 9
    let columns = workspace.floats("stem.im2col", count: k * n)
    parallelRanges(k, threads: threads) { _, rows in
        for row in rows {
            let c = row / 9, dy = (row % 9) / 3, dx = row % 3
            let src = input.channel(c), dst = columns + row * n
            for y in 0..<ho {
                let iy = 2 * y + dy - 1
                let out = dst + y * wo
                guard iy >= 0 && iy < h else { out.initialize(repeating: 0, count: wo); continue }
                let line = src + iy * w
                for x in 0..<wo {
                    let ix = 2 * x + dx - 1
                    out[x] = (ix >= 0 && ix < w) ? line[ix] : 0
                }
            }
        }
    }
    gemm(m: output.channels, n: n, k: k, a: weights, b: columns, c: output.base, threads: threads)
    addBias(output, bias: bias, relu6: true, threads: threads)
}

/// Dense 3x3 convolution (padding 1, stride 1) for heads with few output channels (the depth
/// head has one), computed directly: each input row, activated once as
/// min(max(x · inputScale[c], 0), 6) when `inputScale` is given (the heads' depthwise 1x1 +
/// ReLU6), is added into the three output rows it touches. A GEMM with M = 9 · cout ≤ 27 is too
/// thin for BLAS, and this reads the input once without a separate activation pass. Threads
/// split the output rows. `tapWeights` is `[tap][cout][cin]` with tap = 3·dy + dx.
package func narrowConvolution3x3(_ input: FeatureMap, into output: FeatureMap, tapWeights: UnsafePointer<Float>,
                                  bias: UnsafePointer<Float>, inputScale: UnsafePointer<Float>?,
                                  workspace: Workspace, threads: Int) {
    let h = input.height, w = input.width, cin = input.channels, cout = output.channels
    precondition(output.height == h && output.width == w, "3x3 with padding 1 keeps the size")
    guard h > 0, w > 0, cout > 0 else { return }
    let rowFloats = w + 16
    let workers = max(1, min(threads, h))
    let rows = workspace.floats("conv3x3.narrow.\(w)", count: workers * rowFloats)
    parallelRanges(h, threads: workers) { worker, outRows in
        // t[1 + x] = activated input column x; t[0] and t[w + 1] stay zero (the padding).
        let t = rows + worker * rowFloats
        t.initialize(repeating: 0, count: rowFloats)
        for o in 0..<cout {
            for y in outRows { output.channel(o).advanced(by: y * w).initialize(repeating: bias[o], count: w) }
        }
        let first = max(0, outRows.lowerBound - 1), last = min(h, outRows.upperBound + 1)
        for i in 0..<cin {
            let channel = input.channel(i)
            for yi in first..<last {
                let src = channel + yi * w
                if let inputScale {
                    scaleReLU6(src, by: inputScale[i], into: t + 1, count: w)
                } else {
                    (t + 1).update(from: src, count: w)
                }
                // Input row yi feeds output row y = yi + 1 − dy through kernel row dy.
                for dy in 0..<3 {
                    let y = yi + 1 - dy
                    guard outRows.contains(y) else { continue }
                    for o in 0..<cout {
                        let w0 = tapWeights[((3 * dy) * cout + o) * cin + i]
                        let w1 = tapWeights[((3 * dy + 1) * cout + o) * cin + i]
                        let w2 = tapWeights[((3 * dy + 2) * cout + o) * cin + i]
                        let a = F8(repeating: w0), b = F8(repeating: w1), c = F8(repeating: w2)
                        let dst = output.channel(o) + y * w
                        var x = 0
                        while x + 8 <= w {
                            var acc = load8(dst + x)
                            acc = acc.addingProduct(a, load8(t + x))
                            acc = acc.addingProduct(b, load8(t + x + 1))
                            acc = acc.addingProduct(c, load8(t + x + 2))
                            store8(acc, dst + x)
                            x += 8
                        }
                        while x < w { dst[x] += w0 * t[x] + w1 * t[x + 1] + w2 * t[x + 2]; x += 1 }
                    }
                }
            }
        }
    }
}
