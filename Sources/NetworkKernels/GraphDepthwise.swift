/// Depthwise convolution with channel multiplier m: output channel o reads input channel o / m.
/// weights layout [cout][kh][kw]. Any kernel size, stride, dilation and (non-negative) padding.
///
/// Every tap is a plain offset load with no bounds tests: input rows are read from zero-bordered
/// copies (padLeft zeros to the left, zeros to the right as far as any tap can reach), and rows
/// above or below the image are a row of zeros. The 3x3 kernels (MobileNet's, at strides 1 and 2)
/// keep only the rows their taps span in a small per-worker ring, each input row copied once as
/// the output rows advance, so the copies stay in L1 next to the arithmetic; other kernels copy
/// the whole channel into a zero-bordered plane first. Either copy is shared by the m output
/// channels that read it. Horizontal strides 1 and 2 run eight outputs at a time (stride 2
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
    let workers = max(1, min(threads, input.channels))
    if vector && kh == 3 && kw == 3 {
        depthwise3x3Rows(input, into: output, weights: weights, bias: bias, geometry: g, multiplier: multiplier, clamp: clamp,
                         paddedWidth: paddedWidth, workspace: workspace, workers: workers)
        return
    }
    let paddedHeight = max(g.padTop + h, (ho - 1) * g.strideY + (kh - 1) * g.dilationY + 1)
    let paddedCount = paddedHeight * paddedWidth
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
                if vector {
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

/// The 3x3 kernels with horizontal stride 1 or 2, row by row. Each worker has a ring of
/// 2·dilationY + 1 zero-bordered rows (the rows one output row's taps span, which fall in distinct
/// slots modulo that count) and one row of zeros for taps above or below the image.
private func depthwise3x3Rows(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                              geometry g: ConvGeometry, multiplier: Int, clamp: Clamp, paddedWidth: Int, workspace: Workspace,
                              workers: Int) {
    let h = input.height, w = input.width, ho = output.height, wo = output.width
    let ringRows = 2 * g.dilationY + 1
    let perWorker = (ringRows + 1) * paddedWidth
    let scratch = workspace.floats("graph.dw.rows", count: perWorker * workers)
    parallelRanges(input.channels, threads: workers) { worker, channels in
        let ring = scratch + worker * perWorker, zeros = ring + ringRows * paddedWidth
        // Borders are zeroed once per call; copies only overwrite each row's interior.
        ring.initialize(repeating: 0, count: perWorker)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: ringRows) { held in
        withUnsafeTemporaryAllocation(of: Taps3x3.self, capacity: multiplier) { kernels in
            for c in channels {
                let src = input.channel(c)
                for j in 0..<multiplier {
                    let o = c * multiplier + j
                    (kernels.baseAddress! + j).initialize(to: Taps3x3(weights + o * 9, bias: bias?[o] ?? 0, clamp: clamp))
                }
                held.initialize(repeating: -1)   // the input row each ring slot holds
                for y in 0..<ho {
                    let top = y * g.strideY - g.padTop
                    var r = (zeros, zeros, zeros)
                    for tap in 0..<3 {
                        let iy = top + tap * g.dilationY
                        guard iy >= 0 && iy < h else { continue }
                        let slot = iy % ringRows, line = ring + slot * paddedWidth
                        if held[slot] != iy {
                            (line + g.padLeft).update(from: src + iy * w, count: w)
                            held[slot] = iy
                        }
                        switch tap { case 0: r.0 = line; case 1: r.1 = line; default: r.2 = line }
                    }
                    for j in 0..<multiplier {
                        kernels[j].row(r.0, r.1, r.2, into: output.channel(c * multiplier + j) + y * wo, count: wo,
                                       dilationX: g.dilationX, strideX: g.strideX)
                    }
                }
            }
        }}
    }
}

/// One output channel's nine weights, bias and clamp as vectors, and one output row from the
/// three input rows its taps read.
struct Taps3x3 {
    var w0: F8, w1: F8, w2: F8, w3: F8, w4: F8, w5: F8, w6: F8, w7: F8, w8: F8, b: F8, lo: F8, hi: F8

    init(_ k: UnsafePointer<Float>, bias: Float, clamp: Clamp) {
        (lo, hi) = clamp.vectors
        w0 = F8(repeating: k[0]); w1 = F8(repeating: k[1]); w2 = F8(repeating: k[2])
        w3 = F8(repeating: k[3]); w4 = F8(repeating: k[4]); w5 = F8(repeating: k[5])
        w6 = F8(repeating: k[6]); w7 = F8(repeating: k[7]); w8 = F8(repeating: k[8])
        b = F8(repeating: bias)
    }

    @inline(__always)
    func row(_ r0: UnsafeMutablePointer<Float>, _ r1: UnsafeMutablePointer<Float>, _ r2: UnsafeMutablePointer<Float>,
             into out: UnsafeMutablePointer<Float>, count wo: Int, dilationX dx: Int, strideX: Int) {
        let dx2 = 2 * dx
        var x = 0
        if strideX == 1 {
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
