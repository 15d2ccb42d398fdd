import Foundation

/// Half-pixel bilinear resize (PyTorch `interpolate(mode: bilinear, align_corners: False)` to an
/// explicit size): `src = (d + 0.5)·in/out − 0.5`, clamped below at 0, the upper neighbour
/// clamped to the last index.
package func resizeBilinear(_ input: FeatureMap, into output: FeatureMap, workspace: Workspace, threads: Int) {
    let hi = input.height, wi = input.width, ho = output.height, wo = output.width
    if ho == 2 * hi && wo == 2 * wi && wi >= 2 {
        upsample2x(input, into: output, workspace: workspace, threads: threads)
        return
    }
    let table = workspace.raw("bilinear.table", bytes: (wo + ho) * MemoryLayout<BilinearTap>.stride)
        .assumingMemoryBound(to: BilinearTap.self)
    for x in 0..<wo { table[x] = BilinearTap(destination: x, outputSize: wo, inputSize: wi) }
    for y in 0..<ho { table[wo + y] = BilinearTap(destination: y, outputSize: ho, inputSize: hi) }
    let columns = UnsafePointer(table), rows = UnsafePointer(table + wo)
    parallelRanges(input.channels, threads: threads) { _, channels in
        for c in channels {
            let src = input.channel(c), dst = output.channel(c)
            for y in 0..<ho {
                let ty = rows[y]
                let r0 = src + ty.i0 * wi, r1 = src + ty.i1 * wi
                let out = dst + y * wo
                for x in 0..<wo {
                    let tx = columns[x]
                    let top = tx.w0 * r0[tx.i0] + tx.w1 * r0[tx.i1]
                    let bottom = tx.w0 * r1[tx.i0] + tx.w1 * r1[tx.i1]
                    out[x] = ty.w0 * top + ty.w1 * bottom
                }
            }
        }
    }
}

/// Exact 2x half-pixel bilinear (every decoder step on even sizes): the weights are the constants
/// 1/4 and 3/4, so rows are blended with SIMD and then each blended row is widened, instead of
/// a table lookup and four gathers per output.
package func upsample2x(_ input: FeatureMap, into output: FeatureMap, workspace: Workspace, threads: Int) {
    let hi = input.height, wi = input.width, wo = output.width
    let workers = max(1, min(threads, input.channels))
    let scratch = workspace.floats("bilinear.row", count: (wi + 16) * workers)
    parallelRanges(input.channels, threads: workers) { worker, channels in
        let row = scratch + worker * (wi + 16)
        let quarter = F8(repeating: 0.25), threeQuarters = F8(repeating: 0.75)
        for c in channels {
            let src = input.channel(c), dst = output.channel(c)
            for y in 0..<(2 * hi) {
                // Output row y samples input row (y + 0.5)/2 − 0.5: rows j−1, j (even y) or j, j+1 (odd y).
                let j = y / 2
                let near = src + j * wi
                let far = src + (y % 2 == 0 ? max(j - 1, 0) : min(j + 1, hi - 1)) * wi
                var x = 0
                while x + 8 <= wi {
                    store8(threeQuarters * load8(near + x) + quarter * load8(far + x), row + x)
                    x += 8
                }
                while x < wi { row[x] = 0.75 * near[x] + 0.25 * far[x]; x += 1 }
                let out = dst + y * wo
                out[0] = row[0]
                for i in 0..<(wi - 1) {
                    let a = row[i], b = row[i + 1]
                    out[2 * i + 1] = 0.75 * a + 0.25 * b
                    out[2 * i + 2] = 0.25 * a + 0.75 * b
                }
                out[wo - 1] = row[wi - 1]
            }
        }
    }
}

package struct BilinearTap {
    var i0: Int, i1: Int, w0: Float, w1: Float
    init(destination d: Int, outputSize: Int, inputSize: Int) {
        let scale = Float(inputSize) / Float(outputSize)
        let src = max((Float(d) + 0.5) * scale - 0.5, 0)
        i0 = min(Int(src), inputSize - 1)
        i1 = min(i0 + 1, inputSize - 1)
        w1 = src - Float(i0)
        w0 = 1 - w1
    }
}

/// Bicubic resize as OpenCV's `INTER_CUBIC` for float images (a = −0.75, half-pixel centres,
/// indices clamped at the borders), which the authors' notebooks use to bring the stride-4
/// outputs to full resolution. Plain CHW arrays in and out.
package func resizeBicubicKernel(_ input: [Float], channels: Int, height hi: Int, width wi: Int,
                          toHeight ho: Int, width wo: Int, threads: Int = 1) -> [Float] {
    precondition(input.count == channels * hi * wi)
    func taps(_ outputSize: Int, _ inputSize: Int) -> [(idx: (Int, Int, Int, Int), w: (Float, Float, Float, Float))] {
        let scale = Double(inputSize) / Double(outputSize)
        return (0..<outputSize).map { d in
            let src = (Double(d) + 0.5) * scale - 0.5
            let i = Int(src.rounded(.down))
            let t = Float(src - Double(i))
            let a: Float = -0.75
            let w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
            let w1 = ((a + 2) * t - (a + 3)) * t * t + 1
            let w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
            let w3 = 1 - w0 - w1 - w2
            func clamp(_ k: Int) -> Int { min(max(k, 0), inputSize - 1) }
            return ((clamp(i - 1), clamp(i), clamp(i + 1), clamp(i + 2)), (w0, w1, w2, w3))
        }
    }
    let tx = taps(wo, wi), ty = taps(ho, hi)
    var output = [Float](repeating: 0, count: channels * ho * wo)
    input.withUnsafeBufferPointer { inp in
        output.withUnsafeMutableBufferPointer { out in
            let src = inp.baseAddress!, dst = out.baseAddress!
            parallelRanges(channels, threads: threads) { _, cs in
                var horizontal = [Float](repeating: 0, count: hi * wo)
                for c in cs {
                    let plane = src + c * hi * wi
                    for y in 0..<hi {
                        let row = plane + y * wi
                        for x in 0..<wo {
                            let (i, w) = tx[x]
                            horizontal[y * wo + x] = w.0 * row[i.0] + w.1 * row[i.1] + w.2 * row[i.2] + w.3 * row[i.3]
                        }
                    }
                    let o = dst + c * ho * wo
                    for y in 0..<ho {
                        let (i, w) = ty[y]
                        for x in 0..<wo {
                            o[y * wo + x] = w.0 * horizontal[i.0 * wo + x] + w.1 * horizontal[i.1 * wo + x]
                                + w.2 * horizontal[i.2 * wo + x] + w.3 * horizontal[i.3 * wo + x]
                        }
                    }
                }
            }
        }
    }
    return output
}
