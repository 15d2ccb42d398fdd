/// Depthwise convolution with channel multiplier m: output channel o reads input channel o / m.
/// weights layout [cout][kh][kw]. Any kernel size, stride, dilation and (non-negative) padding.
///
/// As in `depthwise3x3`, each input channel is first copied into a zero-bordered per-worker plane
/// (padTop rows above, padLeft columns to the left, zeros right and below as far as any tap can
/// reach), so every tap is a plain offset load with no bounds tests; the plane is shared by the m
/// output channels that read it. Horizontal strides 1 and 2 run eight outputs at a time (stride 2
/// de-interleaves a 16-float load), with a 3x3 specialisation that keeps the nine weights in
/// registers; other strides take a scalar loop over the same padded plane.
package func depthwiseConvolution(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          geometry g: ConvGeometry, multiplier: Int, clamp: Clamp, workspace: Workspace, threads: Int) {
    precondition(multiplier >= 1 && output.channels == input.channels * multiplier)
    precondition(g.padTop >= 0 && g.padLeft >= 0)
    let h = input.height, w = input.width, ho = output.height, wo = output.width
    let kh = g.kernelHeight, kw = g.kernelWidth, sx = g.strideX
    let vector = sx == 1 || sx == 2
    // Columns the loads can reach: a full last pair of 8-wide blocks (stride 2: of 16 inputs each)
    // from every tap.
    let reach = vector ? sx * ((wo + 15) & ~15) + (kw - 1) * g.dilationX
                       : (wo - 1) * sx + (kw - 1) * g.dilationX + 1
    let paddedWidth = max(g.padLeft + w, reach)
    let paddedHeight = max(g.padTop + h, (ho - 1) * g.strideY + (kh - 1) * g.dilationY + 1)
    let paddedCount = paddedHeight * paddedWidth
    let workers = max(1, min(threads, input.channels))
    let scratch = workspace.floats("graph.dw.padded", count: paddedCount * workers)
    parallelRanges(input.channels, threads: workers) { worker, channels in
        let padded = scratch + worker * paddedCount
        // Borders are zeroed once per call; each channel only overwrites the interior.
        padded.initialize(repeating: 0, count: paddedCount)
        for c in channels {
            let src = input.channel(c)
            for y in 0..<h {
                (padded + (y + g.padTop) * paddedWidth + g.padLeft).update(from: src + y * w, count: w)
            }
            for j in 0..<multiplier {
                let o = c * multiplier + j
                let plane = DepthwisePlane(padded: padded, width: paddedWidth, output: output.channel(o),
                                           outputHeight: ho, outputWidth: wo)
                let k = weights + o * kh * kw, b = bias?[o] ?? 0
                if vector && kh == 3 && kw == 3 {
                    depthwise3x3Plane(plane, weights: k, bias: b, geometry: g, clamp: clamp)
                } else if vector {
                    depthwiseVectorPlane(plane, weights: k, bias: b, geometry: g, clamp: clamp)
                } else {
                    depthwiseScalarPlane(plane, weights: k, bias: b, geometry: g, clamp: clamp)
                }
            }
        }
    }
}

/// One output channel's job: its zero-bordered input plane and where its outputs go.
private struct DepthwisePlane {
    let padded: UnsafeMutablePointer<Float>
    let width: Int
    let output: UnsafeMutablePointer<Float>
    let outputHeight: Int
    let outputWidth: Int
}

/// Stores a block of eight outputs (fewer at the end of a row).
@inline(__always)
private func storeBlock(_ v: F8, _ out: UnsafeMutablePointer<Float>, _ x: Int, _ wo: Int) {
    if x + 8 <= wo { store8(v, out + x) } else { storePartial(v, out + x, wo - x) }
}

/// 3x3 taps at any dilation, horizontal stride 1 or 2.
private func depthwise3x3Plane(_ p: DepthwisePlane, weights k: UnsafePointer<Float>, bias: Float,
                               geometry g: ConvGeometry, clamp: Clamp) {
    let w0 = F8(repeating: k[0]), w1 = F8(repeating: k[1]), w2 = F8(repeating: k[2])
    let w3 = F8(repeating: k[3]), w4 = F8(repeating: k[4]), w5 = F8(repeating: k[5])
    let w6 = F8(repeating: k[6]), w7 = F8(repeating: k[7]), w8 = F8(repeating: k[8])
    let b = F8(repeating: bias), (lo, hi) = clamp.vectors
    let dx = g.dilationX, dx2 = 2 * g.dilationX, rowStep = g.dilationY * p.width
    let wo = p.outputWidth
    for y in 0..<p.outputHeight {
        let r0 = p.padded + y * g.strideY * p.width, r1 = r0 + rowStep, r2 = r1 + rowStep
        let out = p.output + y * wo
        var x = 0
        if g.strideX == 1 {
            while x < wo {
                var acc = b
                acc.addProduct(w0, load8(r0 + x)); acc.addProduct(w1, load8(r0 + x + dx)); acc.addProduct(w2, load8(r0 + x + dx2))
                acc.addProduct(w3, load8(r1 + x)); acc.addProduct(w4, load8(r1 + x + dx)); acc.addProduct(w5, load8(r1 + x + dx2))
                acc.addProduct(w6, load8(r2 + x)); acc.addProduct(w7, load8(r2 + x + dx)); acc.addProduct(w8, load8(r2 + x + dx2))
                storeBlock(clamped(acc, lo, hi), out, x, wo)
                x += 8
            }
        } else {
            while x < wo {
                let s = 2 * x
                var acc = b
                acc.addProduct(w0, load16(r0 + s).evenHalf); acc.addProduct(w1, load16(r0 + s + dx).evenHalf); acc.addProduct(w2, load16(r0 + s + dx2).evenHalf)
                acc.addProduct(w3, load16(r1 + s).evenHalf); acc.addProduct(w4, load16(r1 + s + dx).evenHalf); acc.addProduct(w5, load16(r1 + s + dx2).evenHalf)
                acc.addProduct(w6, load16(r2 + s).evenHalf); acc.addProduct(w7, load16(r2 + s + dx).evenHalf); acc.addProduct(w8, load16(r2 + s + dx2).evenHalf)
                storeBlock(clamped(acc, lo, hi), out, x, wo)
                x += 8
            }
        }
    }
}

/// Any kernel size and dilation, horizontal stride 1 or 2 (e.g. FastDepth's 5x5).
private func depthwiseVectorPlane(_ p: DepthwisePlane, weights k: UnsafePointer<Float>, bias: Float,
                                  geometry g: ConvGeometry, clamp: Clamp) {
    let kh = g.kernelHeight, kw = g.kernelWidth, dx = g.dilationX
    let b = F8(repeating: bias), (lo, hi) = clamp.vectors
    let wo = p.outputWidth
    for y in 0..<p.outputHeight {
        let top = p.padded + y * g.strideY * p.width
        let out = p.output + y * wo
        var x = 0
        if g.strideX == 1 && kw == 5 {
            // FastDepth's decoder: two blocks per step, so two independent FMA chains are in flight.
            while x < wo {
                var a0 = b, a1 = b
                for ky in 0..<kh {
                    let r = top + ky * g.dilationY * p.width + x, kr = k + ky * kw
                    let k0 = F8(repeating: kr[0]), k1 = F8(repeating: kr[1]), k2 = F8(repeating: kr[2])
                    let k3 = F8(repeating: kr[3]), k4 = F8(repeating: kr[4])
                    a0.addProduct(k0, load8(r)); a1.addProduct(k0, load8(r + 8))
                    a0.addProduct(k1, load8(r + dx)); a1.addProduct(k1, load8(r + dx + 8))
                    a0.addProduct(k2, load8(r + 2 * dx)); a1.addProduct(k2, load8(r + 2 * dx + 8))
                    a0.addProduct(k3, load8(r + 3 * dx)); a1.addProduct(k3, load8(r + 3 * dx + 8))
                    a0.addProduct(k4, load8(r + 4 * dx)); a1.addProduct(k4, load8(r + 4 * dx + 8))
                }
                storeBlock(clamped(a0, lo, hi), out, x, wo)
                if x + 8 < wo { storeBlock(clamped(a1, lo, hi), out, x + 8, wo) }
                x += 16
            }
        } else if g.strideX == 1 {
            while x < wo {
                var acc = b
                for ky in 0..<kh {
                    let r = top + ky * g.dilationY * p.width + x, kr = k + ky * kw
                    for kx in 0..<kw { acc.addProduct(F8(repeating: kr[kx]), load8(r + kx * dx)) }
                }
                storeBlock(clamped(acc, lo, hi), out, x, wo)
                x += 8
            }
        } else {
            while x < wo {
                var acc = b
                for ky in 0..<kh {
                    let r = top + ky * g.dilationY * p.width + 2 * x, kr = k + ky * kw
                    for kx in 0..<kw { acc.addProduct(F8(repeating: kr[kx]), load16(r + kx * dx).evenHalf) }
                }
                storeBlock(clamped(acc, lo, hi), out, x, wo)
                x += 8
            }
        }
    }
}

/// Horizontal strides other than 1 and 2: plain loops over the same padded plane.
private func depthwiseScalarPlane(_ p: DepthwisePlane, weights k: UnsafePointer<Float>, bias: Float,
                                  geometry g: ConvGeometry, clamp: Clamp) {
    let kh = g.kernelHeight, kw = g.kernelWidth
    for y in 0..<p.outputHeight {
        let top = p.padded + y * g.strideY * p.width
        for x in 0..<p.outputWidth {
            var acc = bias
            for ky in 0..<kh {
                let r = top + ky * g.dilationY * p.width + x * g.strideX
                for kx in 0..<kw { acc += k[ky * kw + kx] * r[kx * g.dilationX] }
            }
            p.output[y * p.outputWidth + x] = clamped(acc, clamp)
        }
    }
}
