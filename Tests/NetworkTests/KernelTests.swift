import Foundation
@testable import Network
import XCTest
import NetworkKernels

/// Each kernel against a plain, obviously-correct loop, on odd sizes and 1 and 2 threads.
final class KernelTests: XCTestCase {
    var state: UInt64 = 42
    func random(_ n: Int) -> [Float] {
        (0..<n).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2000) / 500 - 2 // [-2, 2)
        }
    }

    func withMap<R>(_ values: [Float], _ c: Int, _ h: Int, _ w: Int, _ body: (FeatureMap) -> R) -> R {
        var copy = values + [Float](repeating: .nan, count: 64) // slack the kernels may read but not use
        return copy.withUnsafeMutableBufferPointer { body(FeatureMap(base: $0.baseAddress!, channels: c, height: h, width: w)) }
    }

    func assertClose(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-4, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        var worst: Float = 0
        for i in 0..<min(a.count, b.count) { worst = max(worst, abs(a[i] - b[i])) }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(message): max |Δ| \(worst)", file: file, line: line)
    }

    func run(_ c: Int, _ h: Int, _ w: Int, _ input: [Float], outChannels: Int, outH: Int, outW: Int,
             _ kernel: (FeatureMap, FeatureMap) -> Void) -> [Float] {
        var out = [Float](repeating: -99, count: outChannels * outH * outW + 64)
        withMap(input, c, h, w) { x in
            out.withUnsafeMutableBufferPointer { kernel(x, FeatureMap(base: $0.baseAddress!, channels: outChannels, height: outH, width: outW)) }
        }
        return Array(out.prefix(outChannels * outH * outW))
    }

    func testDepthwise3x3BothStridesOddSizes() {
        for (h, w) in [(7, 13), (10, 9), (1, 17), (5, 1)] {
            for stride in [1, 2] {
                let c = 5
                let x = random(c * h * w), k = random(c * 9), b = random(c)
                let ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride
                var expected = [Float](repeating: 0, count: c * ho * wo)
                for ch in 0..<c { for y in 0..<ho { for xo in 0..<wo {
                    var s = b[ch]
                    for dy in 0..<3 { for dx in 0..<3 {
                        let iy = stride * y + dy - 1, ix = stride * xo + dx - 1
                        if iy >= 0 && iy < h && ix >= 0 && ix < w { s += k[ch * 9 + dy * 3 + dx] * x[(ch * h + iy) * w + ix] }
                    } }
                    expected[(ch * ho + y) * wo + xo] = min(max(s, 0), 6)
                } } }
                for threads in [1, 2] {
                    let ws = Workspace()
                    let got = run(c, h, w, x, outChannels: c, outH: ho, outW: wo) { i, o in
                        k.withUnsafeBufferPointer { kp in b.withUnsafeBufferPointer { bp in
                            depthwise3x3(i, into: o, weights: kp.baseAddress!, bias: bp.baseAddress!, stride: stride, workspace: ws, threads: threads)
                        } }
                    }
                    assertClose(got, expected, 1e-4, "depthwise \(h)x\(w) stride \(stride) threads \(threads)")
                }
            }
        }
    }

    func naivePool(_ x: [Float], _ c: Int, _ h: Int, _ w: Int) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            var m = -Float.infinity
            for yy in max(0, y - 2)...min(h - 1, y + 2) { for xi in max(0, xx - 2)...min(w - 1, xx + 2) { m = max(m, x[(ch * h + yy) * w + xi]) } }
            out[(ch * h + y) * w + xx] = m
        } } }
        return out
    }

    /// The 5x5 max-pool on sizes that exercise its row pairs (odd and even heights, one row,
    /// two, three) and its vector/scalar columns, exactly.
    func testMaxPoolOnEdgeSizes() {
        for (h, w) in [(1, 1), (1, 17), (2, 9), (3, 8), (4, 16), (5, 3), (6, 25), (7, 1), (8, 40)] {
            let c = 3, x = random(c * h * w)
            for threads in [1, 2] {
                let ws = Workspace()
                var acc = [Float](repeating: 0, count: c * h * w)
                let pooled = run(c, h, w, x, outChannels: c, outH: h, outW: w) { i, o in
                    acc.withUnsafeMutableBufferPointer { a in
                        maxPoolAccumulating(i, into: o, accumulator: FeatureMap(base: a.baseAddress!, channels: c, height: h, width: w),
                                            mode: .copy, workspace: ws, threads: threads)
                    }
                }
                XCTAssertEqual(pooled, naivePool(x, c, h, w), "\(h)x\(w), threads \(threads)")
                XCTAssertEqual(acc, x, "copy mode, \(h)x\(w)")
            }
        }
    }

    func testCRPBlocksMatchTheirDefinition() {
        let (c, h, w) = (6, 11, 9)
        let x = random(c * h * w).map { max($0, 0) } // CRP inputs are post-ReLU6
        // Depthwise CRP: acc = x + Σ b_i, b_i = s_i ⊙ pool(b_{i-1}).
        let scales = (0..<4).map { _ in random(c) }
        var b = x, expected = x
        for s in scales {
            b = naivePool(b, c, h, w)
            for i in 0..<b.count { b[i] *= s[i / (h * w)] }
            for i in 0..<b.count { expected[i] += b[i] }
        }
        for threads in [1, 2] {
            let ws = Workspace()
            let flat = scales.flatMap { $0 }
            let got = run(c, h, w, x, outChannels: c, outH: h, outW: w) { i, o in
                flat.withUnsafeBufferPointer { depthwiseCRP(i, into: o, stageWeights: $0.baseAddress!, stages: 4, workspace: ws, threads: threads) }
            }
            assertClose(got, expected, 1e-4, "depthwise CRP, threads \(threads)")
            // Pooling with accumulation (dense CRP building block): signed inputs, −inf padding.
            let signed = random(c * h * w)
            var acc = random(c * h * w)
            let accBefore = acc
            let pooled = run(c, h, w, signed, outChannels: c, outH: h, outW: w) { i, o in
                acc.withUnsafeMutableBufferPointer { a in
                    maxPoolAccumulating(i, into: o, accumulator: FeatureMap(base: a.baseAddress!, channels: c, height: h, width: w),
                                        mode: .add, workspace: ws, threads: threads)
                }
            }
            assertClose(pooled, naivePool(signed, c, h, w), 0, "max-pool 5x5, threads \(threads)")
            assertClose(acc, zip(accBefore, signed).map { $0 + $1 }, 1e-6, "accumulate")
        }
    }

    func testBilinearHalfPixelAnySize() {
        let (c, h, w) = (3, 5, 7)
        let x = random(c * h * w)
        for (ho, wo) in [(10, 14), (9, 13), (5, 7), (3, 4)] {
            var expected = [Float](repeating: 0, count: c * ho * wo)
            func coord(_ d: Int, _ o: Int, _ i: Int) -> (Int, Int, Float) {
                let s = max((Double(d) + 0.5) * Double(i) / Double(o) - 0.5, 0)
                let i0 = min(Int(s), i - 1)
                return (i0, min(i0 + 1, i - 1), Float(s - Double(i0)))
            }
            for ch in 0..<c { for y in 0..<ho { for xx in 0..<wo {
                let (y0, y1, fy) = coord(y, ho, h), (x0, x1, fx) = coord(xx, wo, w)
                func v(_ yy: Int, _ xi: Int) -> Float { x[(ch * h + yy) * w + xi] }
                expected[(ch * ho + y) * wo + xx] = (1 - fy) * ((1 - fx) * v(y0, x0) + fx * v(y0, x1)) + fy * ((1 - fx) * v(y1, x0) + fx * v(y1, x1))
            } } }
            let ws = Workspace()
            let got = run(c, h, w, x, outChannels: c, outH: ho, outW: wo) { i, o in resizeBilinear(i, into: o, workspace: ws, threads: 2) }
            assertClose(got, expected, 1e-5, "bilinear \(h)x\(w) → \(ho)x\(wo)")
        }
    }

    func naiveConv(_ x: [Float], cin: Int, h: Int, w: Int, weights: [Float], cout: Int, stride: Int, bias: [Float]) -> [Float] {
        let ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride
        var out = [Float](repeating: 0, count: cout * ho * wo)
        for o in 0..<cout { for y in 0..<ho { for xx in 0..<wo {
            var s = bias[o]
            for i in 0..<cin { for dy in 0..<3 { for dx in 0..<3 {
                let iy = stride * y + dy - 1, ix = stride * xx + dx - 1
                if iy >= 0 && iy < h && ix >= 0 && ix < w { s += weights[((o * cin + i) * 3 + dy) * 3 + dx] * x[(i * h + iy) * w + ix] }
            } } }
            out[(o * ho + y) * wo + xx] = s
        } } }
        return out
    }

    func testDense3x3PerTapAndStem() {
        let (cin, cout, h, w) = (7, 5, 9, 11)
        let x = random(cin * h * w), wt = random(cout * cin * 9), b = random(cout)
        var taps = [Float](repeating: 0, count: wt.count)
        for o in 0..<cout { for i in 0..<cin { for k in 0..<9 { taps[(k * cout + o) * cin + i] = wt[(o * cin + i) * 9 + k] } } }
        for threads in [1, 2] {
            let ws = Workspace()
            let got = run(cin, h, w, x, outChannels: cout, outH: h, outW: w) { i, o in
                taps.withUnsafeBufferPointer { t in b.withUnsafeBufferPointer { bp in
                    convolution3x3(i, into: o, tapWeights: t.baseAddress!, bias: bp.baseAddress!, workspace: ws, threads: threads)
                } }
            }
            assertClose(got, naiveConv(x, cin: cin, h: h, w: w, weights: wt, cout: cout, stride: 1, bias: b), 1e-4, "3x3 per-tap, threads \(threads)")
        }
        // Stem: stride 2, 3 → 32, ReLU6, odd size.
        let (sh, sw) = (13, 15)
        let sx = random(3 * sh * sw), sWeights = random(32 * 27), sBias = random(32)
        let expected = naiveConv(sx, cin: 3, h: sh, w: sw, weights: sWeights, cout: 32, stride: 2, bias: sBias).map { min(max($0, 0), 6) }
        let ws = Workspace()
        let got = run(3, sh, sw, sx, outChannels: 32, outH: 7, outW: 8) { i, o in
            sWeights.withUnsafeBufferPointer { wp in sBias.withUnsafeBufferPointer { bp in
                stemConvolution(i, into: o, weights: wp.baseAddress!, bias: bp.baseAddress!, workspace: ws, threads: 2)
            } }
        }
        assertClose(got, expected, 1e-4, "stem")
    }

    /// Winograd F(4x4, 3x3) against the direct sum: sizes that are and are not multiples of the
    /// 4x4 tile and of the 8-tile lane groups, a width past one 36-column load (interior and
    /// border patches), several blocks of tile rows, one and two threads, and a 1x1 image.
    func testWinograd3x3MatchesTheDirectSum() {
        for (cin, cout, h, w) in [(7, 5, 9, 11), (16, 40, 30, 77), (3, 2, 1, 1), (9, 3, 4, 4), (33, 8, 61, 45)] {
            let x = random(cin * h * w), wt = random(cout * cin * 9), b = random(cout)
            var taps = [Float](repeating: 0, count: wt.count)
            for o in 0..<cout { for i in 0..<cin { for k in 0..<9 { taps[(k * cout + o) * cin + i] = wt[(o * cin + i) * 9 + k] } } }
            let u = taps.withUnsafeBufferPointer { Winograd.transformedWeights(tapWeights: $0.baseAddress!, outputChannels: cout, inputChannels: cin) }
            let expected = naiveConv(x, cin: cin, h: h, w: w, weights: wt, cout: cout, stride: 1, bias: b)
            let range = expected.map(abs).max() ?? 1
            for threads in [1, 2] {
                let ws = Workspace()
                let got = run(cin, h, w, x, outChannels: cout, outH: h, outW: w) { i, o in
                    u.withUnsafeBufferPointer { up in b.withUnsafeBufferPointer { bp in
                        Winograd.convolution3x3(i, into: o, transformed: up.baseAddress!, bias: bp.baseAddress!, workspace: ws, threads: threads)
                    } }
                }
                assertClose(got, expected, 2e-6 * range * Float(cin).squareRoot(), "Winograd \(cin)→\(cout) \(h)x\(w), threads \(threads)")
            }
            // With the heads' per-channel scale + ReLU6 applied as the input is read: the same as
            // convolving the activated input.
            let scale = random(cin).map { $0 * 2 }
            var activated = x
            for i in 0..<cin { for p in 0..<(h * w) { activated[i * h * w + p] = min(max(x[i * h * w + p] * scale[i], 0), 6) } }
            let expectedScaled = naiveConv(activated, cin: cin, h: h, w: w, weights: wt, cout: cout, stride: 1, bias: b)
            let rangeScaled = expectedScaled.map(abs).max() ?? 1
            let ws = Workspace()
            let got = run(cin, h, w, x, outChannels: cout, outH: h, outW: w) { i, o in
                u.withUnsafeBufferPointer { up in b.withUnsafeBufferPointer { bp in scale.withUnsafeBufferPointer { sp in
                    Winograd.convolution3x3(i, into: o, transformed: up.baseAddress!, bias: bp.baseAddress!, inputScale: sp.baseAddress!,
                                            workspace: ws, threads: 2)
                } } }
            }
            assertClose(got, expectedScaled, 2e-6 * rangeScaled * Float(cin).squareRoot(), "Winograd with scale + ReLU6 \(cin)→\(cout) \(h)x\(w)")
        }
    }

    /// The narrow heads' direct 3x3 against the direct sum, with and without the fused scale +
    /// ReLU6, split into row ranges by one to three threads.
    func testNarrow3x3MatchesTheDirectSum() {
        for (cin, cout, h, w) in [(7, 1, 9, 11), (16, 3, 30, 77), (5, 1, 1, 1), (9, 2, 2, 17)] {
            let x = random(cin * h * w), wt = random(cout * cin * 9), b = random(cout), scale = random(cin)
            var taps = [Float](repeating: 0, count: wt.count)
            for o in 0..<cout { for i in 0..<cin { for k in 0..<9 { taps[(k * cout + o) * cin + i] = wt[(o * cin + i) * 9 + k] } } }
            var activated = x
            for i in 0..<cin { for p in 0..<(h * w) { activated[i * h * w + p] = min(max(x[i * h * w + p] * scale[i], 0), 6) } }
            for scaled in [false, true] {
                let expected = naiveConv(scaled ? activated : x, cin: cin, h: h, w: w, weights: wt, cout: cout, stride: 1, bias: b)
                for threads in [1, 2, 3] {
                    let ws = Workspace()
                    let got = run(cin, h, w, x, outChannels: cout, outH: h, outW: w) { i, o in
                        taps.withUnsafeBufferPointer { t in b.withUnsafeBufferPointer { bp in scale.withUnsafeBufferPointer { sp in
                            narrowConvolution3x3(i, into: o, tapWeights: t.baseAddress!, bias: bp.baseAddress!,
                                                 inputScale: scaled ? sp.baseAddress! : nil, workspace: ws, threads: threads)
                        } } }
                    }
                    assertClose(got, expected, 1e-4, "narrow 3x3 \(cin)→\(cout) \(h)x\(w), scaled \(scaled), threads \(threads)")
                }
            }
        }
    }

    /// An inverted residual's shapes and random weights, for the fused-block tests.
    struct Block {
        var cin: Int, hidden: Int, cout: Int, h: Int, w: Int, stride: Int
        var ew: [Float] = [], eb: [Float] = [], dw: [Float] = [], db: [Float] = [], pw: [Float] = [], pb: [Float] = []
        var ho: Int { (h + stride - 1) / stride }
        var wo: Int { (w + stride - 1) / stride }
        var quantised: (QuantisedWeights, QuantisedWeights) {
            (ew.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: hidden, columns: cin) },
             pw.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: cout, columns: hidden) })
        }
    }

    func block(_ cin: Int, _ hidden: Int, _ cout: Int, _ h: Int, _ w: Int, stride: Int) -> Block {
        Block(cin: cin, hidden: hidden, cout: cout, h: h, w: w, stride: stride, ew: random(hidden * cin), eb: random(hidden),
              dw: random(hidden * 9), db: random(hidden), pw: random(cout * hidden), pb: random(cout))
    }

    /// The block as its three layers, one after the other (each checked against a plain loop in
    /// the tests above), with `k`'s clamps, padding and arithmetic.
    func threeLayers(_ b: Block, _ x: [Float], _ k: InvertedResidualWeights, residual: Bool, workspace ws: Workspace, threads: Int) -> [Float] {
        let oneByOne = ConvGeometry(kernelHeight: 1, kernelWidth: 1, strideY: 1, strideX: 1, dilationY: 1, dilationX: 1, padTop: 0, padLeft: 0)
        let depthwise = ConvGeometry(kernelHeight: 3, kernelWidth: 3, strideY: b.stride, strideX: b.stride, dilationY: 1, dilationX: 1,
                                     padTop: k.padTop, padLeft: k.padLeft)
        let expanded = run(b.cin, b.h, b.w, x, outChannels: b.hidden, outH: b.h, outW: b.w) { i, o in
            convolution(i, into: o, weights: k.expand, bias: k.expandBias, geometry: oneByOne, clamp: k.expandClamp, residual: nil,
                        workspace: ws, threads: threads, quantised: k.quantised?.expand)
        }
        let filtered = run(b.hidden, b.h, b.w, expanded, outChannels: b.hidden, outH: b.ho, outW: b.wo) { i, o in
            depthwiseConvolution(i, into: o, weights: k.depthwise, bias: k.depthwiseBias, geometry: depthwise, multiplier: 1,
                                 clamp: k.depthwiseClamp, workspace: ws, threads: threads)
        }
        return run(b.hidden, b.ho, b.wo, filtered, outChannels: b.cout, outH: b.ho, outW: b.wo) { i, o in
            withMap(x, b.cin, b.h, b.w) { r in
                convolution(i, into: o, weights: k.project, bias: k.projectBias, geometry: oneByOne, clamp: k.projectClamp,
                            residual: residual ? r : nil, workspace: ws, threads: threads, quantised: k.quantised?.project)
            }
        }
    }

    /// Runs `body` with the block's weights as `InvertedResidualWeights`, adjusted by `configure`.
    func withWeights<R>(_ b: Block, configure: (inout InvertedResidualWeights) -> Void, _ body: (InvertedResidualWeights) -> R) -> R {
        InvertedResidualWeights.with(expand: b.ew, expandBias: b.eb, depthwise: b.dw, depthwiseBias: b.db, project: b.pw, projectBias: b.pb,
                                     hidden: b.hidden, stride: b.stride, configure: configure, body)
    }

    /// The one-pass block against its three layers, in float32 (to float rounding) and int8 (the
    /// same values), with `configure` setting clamps, padding and arithmetic.
    func checkFused(_ b: Block, residual: Bool, int8: Bool, configure: (inout InvertedResidualWeights) -> Void,
                    file: StaticString = #filePath, line: UInt = #line) {
        let x = random(b.cin * b.h * b.w)
        let quantised = int8 ? b.quantised : nil
        for threads in [1, 2] {
            let ws = Workspace()
            withWeights(b, configure: { configure(&$0); $0.quantised = quantised }) { k in
                let expected = threeLayers(b, x, k, residual: residual, workspace: ws, threads: threads)
                let got = run(b.cin, b.h, b.w, x, outChannels: b.cout, outH: b.ho, outW: b.wo) { i, o in
                    fusedInvertedResidual(i, into: o, weights: k, residual: residual, workspace: ws, threads: threads)
                }
                let label = "\(b.cin)-\(b.hidden)-\(b.cout) \(b.h)x\(b.w) stride \(b.stride) pad \(k.padTop),\(k.padLeft) "
                    + "\(int8 ? "int8" : "float32"), threads \(threads)"
                if int8 {
                    XCTAssertEqual(got, expected, label, file: file, line: line)
                } else {
                    assertClose(got, expected, 1e-5 * max(1, expected.map(abs).max() ?? 1), label, file: file, line: line)
                }
                XCTAssertFalse(got.contains { $0 == -99 || $0.isNaN }, "every output written: \(label)", file: file, line: line)
                XCTAssertLessThanOrEqual(got.max() ?? 0, k.projectClamp.hi, label, file: file, line: line)
            }
        }
    }

    /// MobileNet-v2's blocks (ReLU6, ReLU6, none; padding 1): several bands per worker, both
    /// strides, odd sizes, one row, one column, with and without the residual.
    func testFusedInvertedResidualMatchesItsThreeLayers() {
        for b in [block(16, 96, 16, 13, 70, stride: 1), block(8, 48, 12, 11, 33, stride: 2), block(8, 48, 8, 9, 40, stride: 2),
                  block(4, 24, 6, 1, 9, stride: 1), block(4, 24, 4, 2, 1, stride: 2), block(6, 36, 6, 5, 1, stride: 1)] {
            for int8 in [false, true] {
                checkFused(b, residual: b.stride == 1 && b.cin == b.cout, int8: int8) { _ in }
            }
        }
    }

    /// A converted model's blocks: TensorFlow's SAME padding (nothing above or left at stride 2
    /// on even sizes, one row and column on odd ones) and its own clamps after each layer.
    func testFusedInvertedResidualWithTensorFlowPaddingAndClamps() {
        for b in [block(8, 48, 12, 12, 70, stride: 2), block(8, 48, 12, 11, 33, stride: 2), block(6, 36, 6, 9, 20, stride: 1)] {
            func pad(_ n: Int) -> Int { max((((n + b.stride - 1) / b.stride) - 1) * b.stride + 3 - n, 0) / 2 }
            for int8 in [false, true] {
                checkFused(b, residual: false, int8: int8) { k in
                    k.expandClamp = Clamp(lo: 0, hi: 3.5); k.depthwiseClamp = Clamp(lo: -1, hi: 4); k.projectClamp = Clamp(lo: -5, hi: 6)
                    k.padTop = pad(b.h); k.padLeft = pad(b.w)
                }
            }
        }
    }

    func testBlocked1x1WithEpilogueAndSplitGemm() {
        // Large enough to be split into several column blocks and across threads.
        let (cin, cout, h, w) = (24, 40, 37, 61)
        let x = random(cin * h * w), wt = random(cout * cin), b = random(cout), residual = random(cout * h * w)
        var expected = [Float](repeating: 0, count: cout * h * w)
        for o in 0..<cout { for p in 0..<(h * w) {
            var s: Float = b[o]
            for i in 0..<cin { s += wt[o * cin + i] * x[i * h * w + p] }
            expected[o * h * w + p] = s + residual[o * h * w + p]
        } }
        for threads in [1, 2] {
            let got = run(cin, h, w, x, outChannels: cout, outH: h, outW: w) { i, o in
                withMap(residual, cout, h, w) { r in
                    wt.withUnsafeBufferPointer { wp in b.withUnsafeBufferPointer { bp in
                        convolution1x1(i, into: o, weights: wp.baseAddress!, bias: bp.baseAddress!, residual: r, relu6: false, threads: threads)
                    } }
                }
            }
            assertClose(got, expected, 1e-4, "1x1 + bias + residual, threads \(threads)")
            let plain = run(cin, h, w, x, outChannels: cout, outH: h, outW: w) { i, o in
                wt.withUnsafeBufferPointer { gemm(m: cout, n: h * w, k: cin, a: $0.baseAddress!, b: i.base, c: o.base, threads: threads) }
            }
            assertClose(plain, zip(expected, residual).enumerated().map { $0.element.0 - $0.element.1 - b[$0.offset / (h * w)] }, 1e-4, "split GEMM")
        }
    }

    func testOddInputSizesGiveCeilOutputs() throws {
        let network = JointNetwork(weights: NetworkWeights.random(), threads: 2)
        for (h, w, oh, ow) in [(101, 133, 26, 34), (97, 61, 25, 16), (33, 33, 9, 9), (2, 2, 1, 1), (3, 17, 1, 5), (40, 2, 10, 1)] {
            let input = try NetworkInput(height: h, width: w, values: random(3 * h * w))
            let out = network.forward(input)
            XCTAssertEqual(out.height, oh); XCTAssertEqual(out.width, ow)
            XCTAssertEqual(out.logits.count, 40 * oh * ow)
            XCTAssertTrue(out.logits.allSatisfy { $0.isFinite } && out.depth.allSatisfy { $0.isFinite }, "\(h)x\(w)")
            XCTAssertEqual(NetworkArchitecture.outputSize(height: h, width: w).height, oh)
        }
    }

    func testBicubicMatchesOpenCVConventions() {
        // Constant stays constant (the weights sum to one).
        let constant = resizeBicubic([Float](repeating: 3, count: 12), channels: 1, height: 3, width: 4, toHeight: 12, width: 16)
        XCTAssertTrue(constant.allSatisfy { abs($0 - 3) < 1e-5 })
        let ramp = (0..<8).map { Float($0) }
        let up = resizeBicubic(ramp, channels: 1, height: 1, width: 8, toHeight: 1, width: 32)
        // Output 8 samples 1.625 (half-pixel: (8 + 0.5)/4 − 0.5): taps 0…3 with t = 0.625 and Keys
        // a = −0.75 weights (−0.06592, 0.42627, 0.74951, −0.10986), worked by hand from OpenCV's
        // interpolateCubic. a = −0.75 does not reproduce ramps exactly; a = −0.5 would give 1.625.
        XCTAssertEqual(up[8], 1.5957, accuracy: 1e-3)
        // Antisymmetric around the ramp's centre, and borders replicate (clamped indices).
        for x in 0..<32 { XCTAssertEqual(up[x] + up[31 - x], 7, accuracy: 1e-4) }
        XCTAssertEqual(up[0], -0.10986, accuracy: 1e-4, "taps −2…1 clamp to 0,0,0,1: only w3 sees the ramp")
    }
}
