import Foundation
@testable import Network
import XCTest
import NetworkKernels

/// The graph executor's kernels (converted TFLite models) against plain loops written straight
/// from TensorFlow's definitions, on odd sizes, with 1 and 2 threads.
final class GraphKernelTests: XCTestCase {
    // MARK: Helpers

    var state: UInt64 = 7
    func random(_ n: Int) -> [Float] {
        (0..<n).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 4000) / 1000 - 2 // [-2, 2)
        }
    }

    /// A map over a copy of `values` followed by 256 bytes of NaN: the slack kernels may read
    /// but must never use.
    func withMap<R>(_ values: [Float], _ shape: Shape, _ body: (FeatureMap) -> R) -> R {
        precondition(values.count == shape.count)
        var copy = values + [Float](repeating: .nan, count: Workspace.slackBytes / 4)
        return copy.withUnsafeMutableBufferPointer { body(FeatureMap(base: $0.baseAddress!, channels: shape.c, height: shape.h, width: shape.w)) }
    }

    /// Runs `kernel` into a NaN-filled output of `shape` (so unwritten outputs fail the comparison).
    func output(_ shape: Shape, _ kernel: (FeatureMap) -> Void) -> [Float] {
        var out = [Float](repeating: .nan, count: shape.count + Workspace.slackBytes / 4)
        out.withUnsafeMutableBufferPointer { kernel(FeatureMap(base: $0.baseAddress!, channels: shape.c, height: shape.h, width: shape.w)) }
        return Array(out.prefix(shape.count))
    }

    /// |got − expected| ≤ tolerance · (1 + |expected|) everywhere (NaN fails).
    func assertClose(_ got: [Float], _ expected: [Float], _ tolerance: Float = 1e-5, _ message: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, message, file: file, line: line)
        var bad = 0, first = ""
        for i in 0..<min(got.count, expected.count) {
            let error = abs(got[i] - expected[i])
            if !(error <= tolerance * (1 + abs(expected[i]))) {
                if bad == 0 { first = "first at \(i): got \(got[i]), expected \(expected[i])" }
                bad += 1
            }
        }
        XCTAssertEqual(bad, 0, "\(message): \(bad) mismatches, \(first)", file: file, line: line)
    }

    func withOptional<R>(_ values: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let values else { return body(nil) }
        return values.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    struct Shape { var c: Int, h: Int, w: Int; var count: Int { c * h * w } }

    func clampRef(_ v: Double, _ clamp: Clamp) -> Float { min(max(Float(v), clamp.lo), clamp.hi) }

    /// TF SAME padding: out = ceil(in/s), padTotal = max((out−1)·s + (k−1)·d + 1 − in, 0), before = total/2.
    func same(_ size: Int, kernel: Int, stride: Int, dilation: Int = 1) -> (out: Int, before: Int) {
        let out = (size + stride - 1) / stride
        let total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        return (out, total / 2)
    }

    func sameGeometry(_ h: Int, _ w: Int, kernel: (Int, Int), stride: Int, dilation: Int = 1) -> (ConvGeometry, Int, Int) {
        let (ho, top) = same(h, kernel: kernel.0, stride: stride, dilation: dilation)
        let (wo, left) = same(w, kernel: kernel.1, stride: stride, dilation: dilation)
        return (ConvGeometry(kernelHeight: kernel.0, kernelWidth: kernel.1, strideY: stride, strideX: stride,
                             dilationY: dilation, dilationX: dilation, padTop: top, padLeft: left), ho, wo)
    }

    // MARK: Reference loops

    func referenceConvolution(_ x: [Float], _ s: Shape, weights: [Float], bias: [Float]?, cout: Int, g: ConvGeometry,
                              out o: Shape, residual: [Float]?, clamp: Clamp) -> [Float] {
        var result = [Float](repeating: 0, count: o.count)
        for oc in 0..<cout { for y in 0..<o.h { for xo in 0..<o.w {
            var sum = Double(bias?[oc] ?? 0)
            for i in 0..<s.c { for ky in 0..<g.kernelHeight { for kx in 0..<g.kernelWidth {
                let iy = y * g.strideY + ky * g.dilationY - g.padTop, ix = xo * g.strideX + kx * g.dilationX - g.padLeft
                guard iy >= 0 && iy < s.h && ix >= 0 && ix < s.w else { continue }
                sum += Double(weights[((oc * s.c + i) * g.kernelHeight + ky) * g.kernelWidth + kx]) * Double(x[(i * s.h + iy) * s.w + ix])
            } } }
            let index = (oc * o.h + y) * o.w + xo
            if let residual { sum += Double(residual[index]) }
            result[index] = clampRef(sum, clamp)
        } } }
        return result
    }

    func referenceDepthwise(_ x: [Float], _ s: Shape, weights: [Float], bias: [Float]?, multiplier m: Int, g: ConvGeometry,
                            out o: Shape, clamp: Clamp) -> [Float] {
        var result = [Float](repeating: 0, count: o.count)
        for oc in 0..<o.c { for y in 0..<o.h { for xo in 0..<o.w {
            var sum = Double(bias?[oc] ?? 0)
            for ky in 0..<g.kernelHeight { for kx in 0..<g.kernelWidth {
                let iy = y * g.strideY + ky * g.dilationY - g.padTop, ix = xo * g.strideX + kx * g.dilationX - g.padLeft
                guard iy >= 0 && iy < s.h && ix >= 0 && ix < s.w else { continue }
                sum += Double(weights[(oc * g.kernelHeight + ky) * g.kernelWidth + kx]) * Double(x[((oc / m) * s.h + iy) * s.w + ix])
            } }
            result[(oc * o.h + y) * o.w + xo] = clampRef(sum, clamp)
        } } }
        return result
    }

    /// TF's resize_bilinear, literally: lower = max(floor(src), 0), upper = min(ceil(src), in−1),
    /// lerp = src − floor(src), top + (bottom − top)·lerp.
    func referenceBilinear(_ x: [Float], _ s: Shape, _ o: Shape, _ mode: ResizeMode) -> [Float] {
        func taps(_ d: Int, _ input: Int, _ output: Int) -> (Int, Int, Double) {
            let scale: Float = mode == .alignCorners ? (output > 1 ? Float(input - 1) / Float(output - 1) : 0) : Float(input) / Float(output)
            let src: Float = mode == .halfPixel ? (Float(d) + 0.5) * scale - 0.5 : Float(d) * scale
            let lower = max(Int(src.rounded(.down)), 0), upper = min(Int(src.rounded(.up)), input - 1)
            return (lower, upper, Double(src - src.rounded(.down)))
        }
        var result = [Float](repeating: 0, count: o.count)
        for c in 0..<o.c { for y in 0..<o.h { for xo in 0..<o.w {
            let (y0, y1, ly) = taps(y, s.h, o.h), (x0, x1, lx) = taps(xo, s.w, o.w)
            func v(_ yy: Int, _ xx: Int) -> Double { Double(x[(c * s.h + yy) * s.w + xx]) }
            let top = v(y0, x0) + (v(y0, x1) - v(y0, x0)) * lx
            let bottom = v(y1, x0) + (v(y1, x1) - v(y1, x0)) * lx
            result[(c * o.h + y) * o.w + xo] = Float(top + (bottom - top) * ly)
        } } }
        return result
    }

    /// TF's resize_nearest_neighbor, in float as TF computes it.
    func referenceNearest(_ x: [Float], _ s: Shape, _ o: Shape, _ mode: ResizeMode) -> [Float] {
        func source(_ d: Int, _ input: Int, _ output: Int) -> Int {
            let index: Int
            switch mode {
            case .legacy: index = Int((Float(d) * (Float(input) / Float(output))).rounded(.down))
            case .halfPixel: index = Int(((Float(d) + 0.5) * (Float(input) / Float(output))).rounded(.down))
            case .alignCorners:
                let scale: Float = output > 1 ? Float(input - 1) / Float(output - 1) : 0
                index = Int(roundf(Float(d) * scale)) // C roundf: half away from zero, as TF
            }
            return min(index, input - 1)
        }
        var result = [Float](repeating: 0, count: o.count)
        for c in 0..<o.c { for y in 0..<o.h { for xo in 0..<o.w {
            result[(c * o.h + y) * o.w + xo] = x[(c * s.h + source(y, s.h, o.h)) * s.w + source(xo, s.w, o.w)]
        } } }
        return result
    }

    // MARK: Convolution

    func testConvolution3x3Stride2SameOnOddInput() {
        let s = Shape(c: 3, h: 13, w: 11), cout = 5
        let (g, ho, wo) = sameGeometry(13, 11, kernel: (3, 3), stride: 2)
        XCTAssertEqual([ho, wo, g.padTop, g.padLeft], [7, 6, 1, 1])
        let o = Shape(c: cout, h: ho, w: wo)
        let x = random(s.count), k = random(cout * s.c * 9), b = random(cout)
        for (bias, clamp) in [(b as [Float]?, Clamp(lo: 0, hi: 6)), (nil, Clamp.none)] {
            let expected = referenceConvolution(x, s, weights: k, bias: bias, cout: cout, g: g, out: o, residual: nil, clamp: clamp)
            for threads in [1, 2] {
                let ws = Workspace()
                let got = withMap(x, s) { input in output(o) { out in withOptional(bias) { bias in
                    convolution(input, into: out, weights: k, bias: bias, geometry: g, clamp: clamp, residual: nil, workspace: ws, threads: threads)
                } } }
                assertClose(got, expected, 1e-5, "conv 3x3/2 SAME bias \(bias != nil) threads \(threads)")
            }
        }
    }

    func testConvolution1x1WithResidualAndClamp() {
        // The second size is large enough for the blocked GEMM to split over threads.
        for (s, cout) in [(Shape(c: 7, h: 9, w: 11), 6), (Shape(c: 32, h: 33, w: 35), 40)] {
            let o = Shape(c: cout, h: s.h, w: s.w)
            let g = ConvGeometry(kernelHeight: 1, kernelWidth: 1, strideY: 1, strideX: 1, dilationY: 1, dilationX: 1, padTop: 0, padLeft: 0)
            let x = random(s.count), k = random(cout * s.c), b = random(cout), r = random(o.count)
            let clamp = Clamp(lo: -1, hi: 1.5)
            let expected = referenceConvolution(x, s, weights: k, bias: b, cout: cout, g: g, out: o, residual: r, clamp: clamp)
            let plain = referenceConvolution(x, s, weights: k, bias: nil, cout: cout, g: g, out: o, residual: nil, clamp: .none)
            for threads in [1, 2] {
                let ws = Workspace()
                let got = withMap(x, s) { input in withMap(r, o) { residual in output(o) { out in
                    convolution(input, into: out, weights: k, bias: b, geometry: g, clamp: clamp, residual: residual, workspace: ws, threads: threads)
                } } }
                assertClose(got, expected, 1e-5, "1x1 \(s.c)→\(cout) residual + clamp threads \(threads)")
                let bare = withMap(x, s) { input in output(o) { out in
                    convolution(input, into: out, weights: k, bias: nil, geometry: g, clamp: .none, residual: nil, workspace: ws, threads: threads)
                } }
                assertClose(bare, plain, 1e-5, "1x1 \(s.c)→\(cout) no epilogue threads \(threads)")
            }
        }
    }

    func testConvolutionGeneralGeometries() {
        let s = Shape(c: 4, h: 17, w: 15)
        var cases: [(String, ConvGeometry, Int, Int)] = []
        let (g5, h5, w5) = sameGeometry(s.h, s.w, kernel: (5, 5), stride: 1, dilation: 2)
        cases.append(("5x5 dilation 2 SAME", g5, h5, w5))
        let (g31, h31, w31) = sameGeometry(s.h, s.w, kernel: (3, 1), stride: 2)
        cases.append(("3x1 stride 2 SAME", g31, h31, w31))
        cases.append(("1x1 stride 2", ConvGeometry(kernelHeight: 1, kernelWidth: 1, strideY: 2, strideX: 2, dilationY: 1, dilationX: 1,
                                                    padTop: 0, padLeft: 0), 9, 8))
        cases.append(("3x3 stride 3 VALID", ConvGeometry(kernelHeight: 3, kernelWidth: 3, strideY: 3, strideX: 3, dilationY: 1, dilationX: 1,
                                                          padTop: 0, padLeft: 0), 5, 5))
        let cout = 3
        let x = random(s.count), b = random(cout), clamp = Clamp(lo: -.infinity, hi: 2)
        for (name, g, ho, wo) in cases {
            let o = Shape(c: cout, h: ho, w: wo)
            let k = random(cout * s.c * g.kernelHeight * g.kernelWidth), r = random(o.count)
            let expected = referenceConvolution(x, s, weights: k, bias: b, cout: cout, g: g, out: o, residual: r, clamp: clamp)
            for threads in [1, 2] {
                let got = withMap(x, s) { input in withMap(r, o) { residual in output(o) { out in
                    convolution(input, into: out, weights: k, bias: b, geometry: g, clamp: clamp, residual: residual, workspace: Workspace(), threads: threads)
                } } }
                assertClose(got, expected, 1e-5, "\(name) threads \(threads)")
            }
        }
    }

    func testConvolutionInRowBandsWhenIm2colIsLarge() {
        // K·N = 576 · 181·203 ≈ 21 M floats > 16 M: the output is produced in two row bands.
        let s = Shape(c: 64, h: 181, w: 203), cout = 3
        let (g, ho, wo) = sameGeometry(s.h, s.w, kernel: (3, 3), stride: 1)
        let o = Shape(c: cout, h: ho, w: wo)
        let x = random(s.count), k = random(cout * s.c * 9), b = random(cout)
        let expected = referenceConvolution(x, s, weights: k, bias: b, cout: cout, g: g, out: o, residual: nil, clamp: Clamp(lo: -5, hi: 5))
        let ws = Workspace()
        let got = withMap(x, s) { input in output(o) { out in
            convolution(input, into: out, weights: k, bias: b, geometry: g, clamp: Clamp(lo: -5, hi: 5), residual: nil, workspace: ws, threads: 2)
        } }
        // Float32 sums of K = 576 products (vs. 27-108 elsewhere): rounding grows about as √K.
        assertClose(got, expected, 1e-4, "banded 3x3 conv")
        XCTAssertLessThan(ws.totalBytes, 576 * ho * wo * 4, "the im2col buffer is bounded")
    }

    // MARK: Depthwise

    func testDepthwiseKernelSizesDilationsStridesAndMultiplier() {
        struct Case { var name: String; var s: Shape; var g: ConvGeometry; var ho: Int; var wo: Int; var m: Int }
        var cases: [Case] = []
        for (h, w) in [(13, 11), (9, 20), (1, 7), (23, 3)] {
            for (k, stride, d) in [(3, 1, 1), (3, 2, 1), (5, 1, 1), (5, 2, 1), (3, 1, 2), (3, 1, 4), (3, 2, 2), (3, 3, 1), (3, 1, 3)] {
                let (g, ho, wo) = sameGeometry(h, w, kernel: (k, k), stride: stride, dilation: d)
                cases.append(Case(name: "\(h)x\(w) \(k)x\(k)/\(stride) d\(d) SAME", s: Shape(c: 5, h: h, w: w), g: g, ho: ho, wo: wo, m: 1))
            }
        }
        // Stride 2 on an odd input with all padding on the bottom/right (padTop = padLeft = 0).
        let g0 = ConvGeometry(kernelHeight: 3, kernelWidth: 3, strideY: 2, strideX: 2, dilationY: 1, dilationX: 1, padTop: 0, padLeft: 0)
        cases.append(Case(name: "13x11 3x3/2 pad 0 → 7x6", s: Shape(c: 4, h: 13, w: 11), g: g0, ho: 7, wo: 6, m: 1))
        cases.append(Case(name: "13x11 3x3/2 VALID → 6x5", s: Shape(c: 4, h: 13, w: 11), g: g0, ho: 6, wo: 5, m: 1))
        // Channel multiplier 2, and a non-square kernel with different strides per axis.
        let (gm, hm, wm) = sameGeometry(12, 19, kernel: (3, 3), stride: 1)
        cases.append(Case(name: "multiplier 2", s: Shape(c: 3, h: 12, w: 19), g: gm, ho: hm, wo: wm, m: 2))
        let ga = ConvGeometry(kernelHeight: 3, kernelWidth: 5, strideY: 3, strideX: 1, dilationY: 2, dilationX: 1, padTop: 2, padLeft: 2)
        cases.append(Case(name: "3x5 strides 3/1", s: Shape(c: 2, h: 14, w: 17), g: ga, ho: 5, wo: 17, m: 3))
        // 3x3 rows kept in the ring (2·dilationY + 1 of them) with a vertical stride of its own
        // and padding larger than one tap: rows above and below the image come from the zero row.
        let gr = ConvGeometry(kernelHeight: 3, kernelWidth: 3, strideY: 3, strideX: 1, dilationY: 2, dilationX: 3, padTop: 5, padLeft: 4)
        cases.append(Case(name: "3x3 strides 3/1 dilations 2/3 pad 5/4", s: Shape(c: 3, h: 16, w: 21), g: gr, ho: 8, wo: 23, m: 2))
        for t in cases {
            let o = Shape(c: t.s.c * t.m, h: t.ho, w: t.wo)
            let x = random(t.s.count), k = random(o.c * t.g.kernelHeight * t.g.kernelWidth), b = random(o.c)
            let clamp = Clamp(lo: 0, hi: 6)
            let expected = referenceDepthwise(x, t.s, weights: k, bias: b, multiplier: t.m, g: t.g, out: o, clamp: clamp)
            for threads in [1, 2] {
                let ws = Workspace()
                let got = withMap(x, t.s) { input in output(o) { out in
                    depthwiseConvolution(input, into: out, weights: k, bias: b, geometry: t.g, multiplier: t.m, clamp: clamp,
                                         workspace: ws, threads: threads)
                } }
                assertClose(got, expected, 1e-5, "depthwise \(t.name) threads \(threads)")
            }
        }
        // No bias, no clamp.
        let (g, ho, wo) = sameGeometry(10, 10, kernel: (3, 3), stride: 2)
        let s = Shape(c: 3, h: 10, w: 10), o = Shape(c: 3, h: ho, w: wo)
        let x = random(s.count), k = random(27)
        let expected = referenceDepthwise(x, s, weights: k, bias: nil, multiplier: 1, g: g, out: o, clamp: .none)
        let got = withMap(x, s) { input in output(o) { out in
            depthwiseConvolution(input, into: out, weights: k, bias: nil, geometry: g, multiplier: 1, clamp: .none, workspace: Workspace(), threads: 1)
        } }
        assertClose(got, expected, 1e-5, "depthwise without bias")
    }

    // MARK: Elementwise

    func testElementwiseBroadcastPatterns() {
        let c = 5, h = 7, w = 11
        let patterns: [(String, Shape, Shape)] = [
            ("same shape", Shape(c: c, h: h, w: w), Shape(c: c, h: h, w: w)),
            ("b per channel", Shape(c: c, h: h, w: w), Shape(c: c, h: 1, w: 1)),
            ("b scalar", Shape(c: c, h: h, w: w), Shape(c: 1, h: 1, w: 1)),
            ("a scalar", Shape(c: 1, h: 1, w: 1), Shape(c: c, h: h, w: w)),
            ("a per channel", Shape(c: c, h: 1, w: 1), Shape(c: c, h: h, w: w)),
            ("b 1xHxW", Shape(c: c, h: h, w: w), Shape(c: 1, h: h, w: w)),
            ("a 1xHxW", Shape(c: 1, h: h, w: w), Shape(c: c, h: h, w: w)),
            ("a Cx1x1 with b 1xHxW", Shape(c: c, h: 1, w: 1), Shape(c: 1, h: h, w: w)),
            ("b 1x1xW", Shape(c: c, h: h, w: w), Shape(c: 1, h: 1, w: w)),
            ("a CxHx1 with b 1x1xW", Shape(c: c, h: h, w: 1), Shape(c: 1, h: 1, w: w)),
        ]
        for (name, sa, sb) in patterns {
            let o = Shape(c: c, h: h, w: w)
            let a = random(sa.count), b = random(sb.count)
            for (op, clamp) in [(ElementwiseOperation.add, Clamp.none), (.multiply, Clamp(lo: -1, hi: 0.5)), (.add, Clamp(lo: 0, hi: 6))] {
                var expected = [Float](repeating: 0, count: o.count)
                for ch in 0..<c { for y in 0..<h { for x in 0..<w {
                    let va = a[((sa.c == 1 ? 0 : ch) * sa.h + (sa.h == 1 ? 0 : y)) * sa.w + (sa.w == 1 ? 0 : x)]
                    let vb = b[((sb.c == 1 ? 0 : ch) * sb.h + (sb.h == 1 ? 0 : y)) * sb.w + (sb.w == 1 ? 0 : x)]
                    expected[(ch * h + y) * w + x] = clampRef(op == .add ? Double(va) + Double(vb) : Double(va) * Double(vb), clamp)
                } } }
                for threads in [1, 2] {
                    let got = withMap(a, sa) { ma in withMap(b, sb) { mb in output(o) { out in
                        elementwise(op, ma, mb, into: out, clamp: clamp, threads: threads)
                    } } }
                    assertClose(got, expected, 1e-6, "elementwise \(op) \(name) threads \(threads)")
                }
            }
        }
        // A single-column map (w = 1): whole planes of one column.
        let sa = Shape(c: 3, h: 9, w: 1), a = random(9 * 3), b = random(3)
        let got = withMap(a, sa) { ma in withMap(b, Shape(c: 3, h: 1, w: 1)) { mb in output(sa) { out in
            elementwise(.multiply, ma, mb, into: out, clamp: .none, threads: 2)
        } } }
        assertClose(got, (0..<27).map { a[$0] * b[$0 / 9] }, 1e-6, "elementwise w = 1")
    }

    // MARK: Pooling

    func testAveragePoolCountsOnlyValidTaps() {
        let s = Shape(c: 4, h: 13, w: 10)
        let x = random(s.count)
        var cases: [(String, ConvGeometry, Int, Int)] = []
        for (k, stride) in [(3, 1), (3, 2), (5, 3), (2, 2)] {
            let (g, ho, wo) = sameGeometry(s.h, s.w, kernel: (k, k), stride: stride)
            cases.append(("\(k)x\(k)/\(stride) SAME", g, ho, wo))
        }
        // VALID window the size of the whole map (DeepLab's image pooling at native size).
        cases.append(("global-sized VALID", ConvGeometry(kernelHeight: s.h, kernelWidth: s.w, strideY: s.h, strideX: s.w,
                                                         dilationY: 1, dilationX: 1, padTop: 0, padLeft: 0), 1, 1))
        for (name, g, ho, wo) in cases {
            let o = Shape(c: s.c, h: ho, w: wo), clamp = Clamp(lo: -0.5, hi: .infinity)
            var expected = [Float](repeating: 0, count: o.count)
            for c in 0..<s.c { for y in 0..<ho { for xo in 0..<wo {
                var sum = 0.0, count = 0
                for ky in 0..<g.kernelHeight { for kx in 0..<g.kernelWidth {
                    let iy = y * g.strideY + ky - g.padTop, ix = xo * g.strideX + kx - g.padLeft
                    if iy >= 0 && iy < s.h && ix >= 0 && ix < s.w { sum += Double(x[(c * s.h + iy) * s.w + ix]); count += 1 }
                } }
                expected[(c * ho + y) * wo + xo] = clampRef(sum / Double(count), clamp)
            } } }
            for threads in [1, 2] {
                let got = withMap(x, s) { input in output(o) { out in averagePool(input, into: out, geometry: g, clamp: clamp, threads: threads) } }
                assertClose(got, expected, 1e-5, "average pool \(name) threads \(threads)")
            }
        }
    }

    func testGlobalAveragePool() {
        for s in [Shape(c: 5, h: 37, w: 41), Shape(c: 3, h: 1, w: 1), Shape(c: 2, h: 257, w: 255)] {
            let x = random(s.count), clamp = Clamp(lo: -0.01, hi: 0.01)
            for clamp in [Clamp.none, clamp] {
                let expected = (0..<s.c).map { c in clampRef((0..<(s.h * s.w)).reduce(0.0) { $0 + Double(x[c * s.h * s.w + $1]) } / Double(s.h * s.w), clamp) }
                for threads in [1, 2] {
                    let got = withMap(x, s) { input in output(Shape(c: s.c, h: 1, w: 1)) { out in globalAveragePool(input, into: out, clamp: clamp, threads: threads) } }
                    assertClose(got, expected, 1e-5, "global average pool \(s) threads \(threads)")
                }
            }
        }
    }

    // MARK: Resize

    let resizeSizes: [((Int, Int), (Int, Int))] = [
        ((7, 9), (15, 20)), ((15, 20), (7, 9)), ((8, 6), (16, 12)), ((5, 6), (1, 1)), ((1, 1), (4, 3)),
        ((13, 11), (39, 33)), ((13, 11), (26, 22)), ((9, 17), (65, 129)), ((1, 7), (3, 1)), ((33, 33), (257, 257)),
        ((65, 65), (513, 513)), ((6, 5), (6, 5)), ((12, 10), (4, 5)),
    ]

    func testResizeBilinearAllModes() {
        for mode in [ResizeMode.halfPixel, .alignCorners, .legacy] {
            for ((h, w), (ho, wo)) in resizeSizes {
                for channels in [3, 1] where h * w * channels < 5000 || channels == 1 {
                    let s = Shape(c: channels, h: h, w: w), o = Shape(c: channels, h: ho, w: wo)
                    let x = random(s.count)
                    let expected = referenceBilinear(x, s, o, mode)
                    for threads in [1, 2] {
                        let ws = Workspace()
                        let got = withMap(x, s) { input in output(o) { out in resizeBilinear(input, into: out, mode: mode, workspace: ws, threads: threads) } }
                        assertClose(got, expected, 1e-5, "bilinear \(mode) \(channels)x\(h)x\(w) → \(ho)x\(wo) threads \(threads)")
                    }
                }
            }
        }
    }

    func testResizeNearestAllModes() {
        for mode in [ResizeMode.halfPixel, .alignCorners, .legacy] {
            for ((h, w), (ho, wo)) in resizeSizes {
                for channels in [3, 1] {
                    let s = Shape(c: channels, h: h, w: w), o = Shape(c: channels, h: ho, w: wo)
                    let x = random(s.count)
                    let expected = referenceNearest(x, s, o, mode)
                    for threads in [1, 2] {
                        let got = withMap(x, s) { input in output(o) { out in resizeNearest(input, into: out, mode: mode, threads: threads) } }
                        assertClose(got, expected, 0, "nearest \(mode) \(channels)x\(h)x\(w) → \(ho)x\(wo) threads \(threads)")
                    }
                }
            }
        }
    }

    func testNearestAlignCornersRoundsHalfAwayFromZero() {
        // 3 → 5 with align_corners: src = d·0.5, so d = 1 and 3 land on .5 and round up (to 1 and 2).
        let s = Shape(c: 1, h: 1, w: 3), o = Shape(c: 1, h: 1, w: 5)
        let got = withMap([10, 20, 30], s) { input in output(o) { out in resizeNearest(input, into: out, mode: .alignCorners, threads: 1) } }
        XCTAssertEqual(got, [10, 20, 20, 30, 30])
    }

    // MARK: Pad and activations

    func testPad() {
        let s = Shape(c: 3, h: 5, w: 7), x = random(s.count)
        for (o, top, left, c0) in [(Shape(c: 3, h: 8, w: 10), 1, 2, 0), (Shape(c: 6, h: 5, w: 7), 0, 0, 2), (Shape(c: 4, h: 6, w: 9), 1, 0, 1)] {
            var expected = [Float](repeating: 0, count: o.count)
            for c in 0..<s.c { for y in 0..<s.h { for xx in 0..<s.w {
                expected[((c + c0) * o.h + y + top) * o.w + xx + left] = x[(c * s.h + y) * s.w + xx]
            } } }
            for threads in [1, 2] {
                let got = withMap(x, s) { input in output(o) { out in pad(input, into: out, top: top, left: left, channelOffset: c0, threads: threads) } }
                assertClose(got, expected, 0, "pad into \(o) at \(top), \(left), channel \(c0) threads \(threads)")
            }
        }
    }

    func testActivationsAndClamp() {
        for s in [Shape(c: 3, h: 7, w: 9), Shape(c: 2, h: 130, w: 129)] {
            let x = random(s.count).map { $0 * 4 } // [-8, 8): both tails of hard-swish and logistic
            for clamp in [Clamp.none, Clamp(lo: -0.2, hi: 0.9)] {
                for threads in [1, 2] {
                    let swish = withMap(x, s) { input in output(s) { out in hardSwish(input, into: out, clamp: clamp, threads: threads) } }
                    assertClose(swish, x.map { clampRef(Double($0) * min(max(Double($0) + 3, 0), 6) / 6, clamp) }, 1e-6, "hard-swish \(clamp)")
                    let sigmoid = withMap(x, s) { input in output(s) { out in logistic(input, into: out, clamp: clamp, threads: threads) } }
                    assertClose(sigmoid, x.map { clampRef(1 / (1 + exp(-Double($0))), clamp) }, 1e-6, "logistic \(clamp)")
                    var inPlace = x
                    inPlace.withUnsafeMutableBufferPointer {
                        applyClamp(FeatureMap(base: $0.baseAddress!, channels: s.c, height: s.h, width: s.w), clamp, threads: threads)
                    }
                    assertClose(inPlace, x.map { clampRef(Double($0), clamp) }, 0, "applyClamp \(clamp)")
                }
            }
        }
        // The vector exp behind logistic, across its whole range, and logistic's saturated tails.
        var worst: Double = 0
        for i in 0..<20000 {
            let v = -87 + 175 * Float(i) / 20000
            let got = vexp(F8(repeating: v))[3], exact = Foundation.exp(Double(v))
            worst = max(worst, abs(Double(got) - exact) / exact)
        }
        XCTAssertLessThan(worst, 1e-6, "vexp relative error")
        let extremes: [Float] = [-200, -90, -88, -20, -1e-3, 0, 1e-3, 20, 90, 200, .infinity, -.infinity]
        let s = Shape(c: 1, h: 1, w: extremes.count)
        let sigmoid = withMap(extremes, s) { input in output(s) { out in logistic(input, into: out, clamp: .none, threads: 1) } }
        assertClose(sigmoid, extremes.map { Float(1 / (1 + exp(-Double($0)))) }, 1e-6, "logistic tails")
        XCTAssertTrue(Clamp.none.isNone)
        XCTAssertFalse(Clamp(lo: 0, hi: .infinity).isNone)
    }

    // MARK: Steady state

    func testSecondCallAtTheSameSizeAllocatesNothing() {
        let ws = Workspace()
        let s = Shape(c: 6, h: 21, w: 19), x = random(s.count)
        let (g3, h3, w3) = sameGeometry(s.h, s.w, kernel: (3, 3), stride: 2)
        let g1 = ConvGeometry(kernelHeight: 1, kernelWidth: 1, strideY: 1, strideX: 1, dilationY: 1, dilationX: 1, padTop: 0, padLeft: 0)
        let (gd, hd, wd) = sameGeometry(s.h, s.w, kernel: (3, 3), stride: 1, dilation: 2)
        let (g5, h5, w5) = sameGeometry(s.h, s.w, kernel: (5, 5), stride: 2)
        let k = random(8 * s.c * 9), b = random(12)
        func frame() {
            withMap(x, s) { input in
                _ = output(Shape(c: 8, h: h3, w: w3)) { convolution(input, into: $0, weights: k, bias: b, geometry: g3, clamp: .none, residual: nil, workspace: ws, threads: 2) }
                _ = output(Shape(c: 8, h: s.h, w: s.w)) { convolution(input, into: $0, weights: k, bias: b, geometry: g1, clamp: Clamp(lo: 0, hi: 6), residual: nil, workspace: ws, threads: 2) }
                _ = output(Shape(c: 12, h: hd, w: wd)) { depthwiseConvolution(input, into: $0, weights: k, bias: b, geometry: gd, multiplier: 2, clamp: .none, workspace: ws, threads: 2) }
                _ = output(Shape(c: 6, h: h5, w: w5)) { depthwiseConvolution(input, into: $0, weights: k, bias: b, geometry: g5, multiplier: 1, clamp: .none, workspace: ws, threads: 2) }
                for mode in [ResizeMode.halfPixel, .alignCorners, .legacy] {
                    _ = output(Shape(c: 6, h: 42, w: 38)) { resizeBilinear(input, into: $0, mode: mode, workspace: ws, threads: 2) }
                    _ = output(Shape(c: 6, h: 50, w: 31)) { resizeBilinear(input, into: $0, mode: mode, workspace: ws, threads: 2) }
                }
            }
        }
        frame()
        let allocations = ws.allocationCount
        XCTAssertGreaterThan(allocations, 0)
        frame()
        XCTAssertEqual(ws.allocationCount, allocations, "a second frame at the same size allocates nothing")
    }
}
