/// Depthwise 3x3 convolution (padding 1, stride 1 or 2) with the folded BatchNorm bias and
/// ReLU6, as in every MobileNet-v2 inverted residual. Each channel is first copied into a
/// zero-bordered per-worker plane so the inner loops need no bounds checks; the SIMD loads may run
/// past the last column into slack that is never stored.
func depthwise3x3(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>,
                  bias: UnsafePointer<Float>, stride: Int, workspace: Workspace, threads: Int) {
    precondition(stride == 1 || stride == 2)
    let h = input.height, w = input.width
    let ho = output.height, wo = output.width
    precondition(ho == (h + stride - 1) / stride && wo == (w + stride - 1) / stride)
    let paddedWidth = w + 2 + 40
    let paddedCount = (h + 3) * paddedWidth
    let workers = max(1, min(threads, input.channels))
    let scratch = workspace.floats("depthwise.padded", count: paddedCount * workers)
    parallelRanges(input.channels, threads: workers) { worker, channels in
        let padded = scratch + worker * paddedCount
        padded.initialize(repeating: 0, count: paddedCount)
        for c in channels {
            let src = input.channel(c)
            for y in 0..<h {
                (padded + (y + 1) * paddedWidth + 1).update(from: src + y * w, count: w)
            }
            let k = weights + 9 * c
            let w0 = F8(repeating: k[0]), w1 = F8(repeating: k[1]), w2 = F8(repeating: k[2])
            let w3 = F8(repeating: k[3]), w4 = F8(repeating: k[4]), w5 = F8(repeating: k[5])
            let w6 = F8(repeating: k[6]), w7 = F8(repeating: k[7]), w8 = F8(repeating: k[8])
            let b = F8(repeating: bias[c])
            let dst = output.channel(c)
            for y in 0..<ho {
                let r0 = padded + stride * y * paddedWidth
                let r1 = r0 + paddedWidth, r2 = r1 + paddedWidth
                let out = dst + y * wo
                var x = 0
                while x < wo {
                    var acc = b
                    if stride == 1 {
                        acc.addProduct(w0, load8(r0 + x)); acc.addProduct(w1, load8(r0 + x + 1)); acc.addProduct(w2, load8(r0 + x + 2))
                        acc.addProduct(w3, load8(r1 + x)); acc.addProduct(w4, load8(r1 + x + 1)); acc.addProduct(w5, load8(r1 + x + 2))
                        acc.addProduct(w6, load8(r2 + x)); acc.addProduct(w7, load8(r2 + x + 1)); acc.addProduct(w8, load8(r2 + x + 2))
                    } else {
                        let s = 2 * x
                        acc.addProduct(w0, load16(r0 + s).evenHalf); acc.addProduct(w1, load16(r0 + s).oddHalf); acc.addProduct(w2, load16(r0 + s + 2).evenHalf)
                        acc.addProduct(w3, load16(r1 + s).evenHalf); acc.addProduct(w4, load16(r1 + s).oddHalf); acc.addProduct(w5, load16(r1 + s + 2).evenHalf)
                        acc.addProduct(w6, load16(r2 + s).evenHalf); acc.addProduct(w7, load16(r2 + s).oddHalf); acc.addProduct(w8, load16(r2 + s + 2).evenHalf)
                    }
                    acc = clamp6(acc)
                    if x + 8 <= wo { store8(acc, out + x) } else { storePartial(acc, out + x, wo - x) }
                    x += 8
                }
            }
        }
    }
}

extension SIMD8 where Scalar == Float {
    @inline(__always) mutating func addProduct(_ a: F8, _ b: F8) { self = self.addingProduct(a, b) }
}
