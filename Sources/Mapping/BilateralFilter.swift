import Foundation
import Imaging

/// Edge-preserving depth smoothing (ElasticFusion's depth_bilateral: 13x13, σs = 4.5 px,
/// σr = 30 mm). Normals and surfel radii come from the filtered depth; positions from raw.
///
/// The kernel filters eight neighbouring outputs at once over the whole window, so its sums
/// stay in registers (an earlier version swept each tap over a whole row of accumulators in
/// memory); the range weight uses a branch-free exp approximation, which also gives missing
/// neighbours their zero weight.
public struct BilateralFilter: Sendable {
    public let radius: Int
    public let sigmaSpace: Float
    public let sigmaRange: Float
    private let spatialWeights: [Float]

    public init(window: Int = 13, sigmaSpace: Float = 4.5, sigmaRange: Float = 0.03) {
        precondition(window >= 1 && window % 2 == 1, "bilateral window must be odd")
        precondition(sigmaRange > 0 && sigmaRange.isFinite, "bilateral range sigma must be positive and finite")
        radius = window / 2
        self.sigmaSpace = sigmaSpace
        self.sigmaRange = sigmaRange
        var w = [Float]()
        for dy in -radius...radius {
            for dx in -radius...radius {
                w.append(Float(exp(-Double(dx * dx + dy * dy) / (2 * Double(sigmaSpace * sigmaSpace)))))
            }
        }
        spatialWeights = w
    }

    /// Filters `depth` (metres, 0 = missing) into `output`, which is resized as needed.
    /// Pixels with missing depth stay 0; missing neighbours do not contribute.
    ///
    /// With `checkerboardParity` p, only the pixels ElasticFusion's checkerboard association
    /// reads are filtered: the processed pixels (x%2 == y%2 == p) and their 4-neighbours, i.e.
    /// whole rows with y%2 == p and the columns x%2 == p of the other rows (3/4 of the image).
    /// Other outputs are left unspecified.
    public func apply(_ depth: DepthImage, into output: inout [Float], threads: Int, checkerboardParity: Int? = nil) {
        let w = depth.width, h = depth.height, r = radius
        let pw = w + 2 * r
        let ph = h + 2 * r
        // Zero-padded copy so the inner loop needs no bounds checks; 8 more at the end because a
        // row's last block of eight outputs may read past the row's end. Missing depth is 0 (and
        // so is depth below the smallest normal float, whose bits `tap` would misread).
        var padded = [Float](repeating: 0, count: pw * ph + 8)
        depth.pixels.withKernelInput { src in
            padded.withKernelOutput { dst in
                for y in 0..<h {
                    for x in 0..<w {
                        let v = src[y * w + x]
                        dst[(y + r) * pw + x + r] = v.isFinite && v >= .leastNormalMagnitude ? v : 0
                    }
                }
            }
        }
        if output.count != w * h { output = [Float](repeating: 0, count: w * h) }
        // For checkerboard filtering: the padded image split into even and odd columns, so the
        // strided outputs of half rows read contiguous memory.
        let planeWidth = (pw + 1) / 2
        let planeSize = planeWidth * ph
        var planeStorage = [Float]()
        if checkerboardParity != nil {
            planeStorage = [Float](repeating: 0, count: 2 * planeSize + 8)
            padded.withKernelInput { pad in
                planeStorage.withKernelOutput { planes in
                    for y in 0..<ph {
                        for x in 0..<pw {
                            planes[(x & 1) * planeSize + y * planeWidth + (x >> 1)] = pad[y * pw + x]
                        }
                    }
                }
            }
        }
        let side = 2 * r + 1
        let rangeScale = -1 / (2 * sigmaRange * sigmaRange) * 1.442695041 // log2(e)
        planeStorage.withKernelInput { planes in
        padded.withKernelInput { pad in
        spatialWeights.withKernelInput { sw in
        output.withKernelOutput { out in
            ParallelFor.run(h, chunks: threads * 2, threads: threads) { _, rows in
                for y in rows {
                    let o = out.address(y * w)
                    if let p = checkerboardParity, y % 2 != p {
                        // Outputs x = p, p + 2, ...: consecutive in the plane of parity p + r.
                        // Window column dx of output j is column j + (p + dx) / 2 of the plane
                        // of parity p + dx: even dx in one plane, odd dx in the other.
                        let m = (w - p + 1) / 2
                        let centre = planes.address(((p + r) & 1) * planeSize + (y + r) * planeWidth + ((p + r) >> 1))
                        let even = planes.address((p & 1) * planeSize + y * planeWidth)
                        let odd = planes.address(((p + 1) & 1) * planeSize + y * planeWidth + p)
                        var j = 0
                        while j < m {
                            let f = Self.block(even: even + j, odd: odd + j, step: 1, stride: planeWidth, side: side,
                                               centre: centre + j, weights: sw.base, rangeScale: rangeScale)
                            for i in 0..<min(8, m - j) { o[2 * (j + i) + p] = f[i] }
                            j += 8
                        }
                        continue
                    }
                    let centre = pad.address((y + r) * pw + r)
                    let top = pad.address(y * pw)
                    var x = 0
                    while x < w {
                        let f = Self.block(even: top + x, odd: top + x + 1, step: 2, stride: pw, side: side,
                                           centre: centre + x, weights: sw.base, rangeScale: rangeScale)
                        if x + 8 <= w {
                            UnsafeMutableRawPointer(o + x).storeBytes(of: f, as: SIMD8<Float>.self)
                        } else {
                            for i in 0..<(w - x) { o[x + i] = f[i] }
                        }
                        x += 8
                    }
                }
            }
        }}}}
    }

    /// Eight consecutive outputs over the whole window, their sums kept in registers. Tap
    /// (dx, dy) of the first output is at `even + (dx / 2) · step + dy · stride` for even dx and
    /// `odd + (dx / 2) · step + dy · stride` for odd dx. Taps are added in the order the window
    /// is stored (row by row), the same for every output.
    @inline(__always)
    private static func block(even: UnsafePointer<Float>, odd: UnsafePointer<Float>, step: Int, stride: Int, side: Int,
                              centre centrePointer: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                              rangeScale: Float) -> SIMD8<Float> {
        let centre = UnsafeRawPointer(centrePointer).loadUnaligned(as: SIMD8<Float>.self)
        let valid = centre .> SIMD8<Float>()
        // Eight missing pixels in a row (about a tenth of a 7-Scenes frame) give zeros anyway.
        if !any(valid) { return SIMD8<Float>() }
        var sumW = SIMD8<Float>(), sumD = SIMD8<Float>()
        var weight = weights
        var rowEven = even, rowOdd = odd
        for _ in 0..<side {
            // Columns dx = 0, 1, 2, ...: even, odd, even + step, odd + step, ...
            var current = rowEven, next = rowOdd
            for _ in 0..<side {
                tap(current, centre: centre, weight: weight.pointee, rangeScale: rangeScale, sumW: &sumW, sumD: &sumD)
                weight += 1
                let after = current + step
                current = next
                next = after
            }
            rowEven += stride
            rowOdd += stride
        }
        return (sumD / sumW).replacing(with: 0, where: .!valid .| (sumW .<= SIMD8<Float>()))
    }

    /// One tap of eight outputs: its neighbours at `at`, weighed by space and range. A missing
    /// neighbour (0) weighs exactly nothing: the smaller of its bits and 0x7F is 0 for it and
    /// 0x7F for any normal depth, so it masks the weight's exponent in `fastExp2` at the cost
    /// of an integer minimum and an AND (a compare and a select before).
    @inline(__always)
    private static func tap(_ at: UnsafePointer<Float>, centre: SIMD8<Float>, weight: Float, rangeScale: Float,
                            sumW: inout SIMD8<Float>, sumD: inout SIMD8<Float>) {
        let v = UnsafeRawPointer(at).loadUnaligned(as: SIMD8<Float>.self)
        let d = v - centre
        let present = pointwiseMin(unsafeBitCast(v, to: SIMD8<UInt32>.self), SIMD8(repeating: 0x7F))
        let wgt = weight * fastExp2(d * d * rangeScale, exponentMask: present)
        sumW += wgt
        sumD = sumD.addingProduct(wgt, v)
    }
}

/// 2^t for t <= 0 on eight lanes, ~1e-4 relative error (2^-126 below t = -126), branch-free;
/// exactly 0 in lanes whose `exponentMask` is 0 (the filter's missing neighbours). A mask must
/// otherwise have its low seven bits set, where the biased exponent lies.
///
/// 2^t = 2^floor(t) · 2^f with f in [0, 1): floor is one instruction here (the kernels are built
/// for x86-64-v3), 2^f a minimax-style cubic evaluated with fused multiply-adds, and 2^floor(t)
/// has the biased exponent e = floor(t) + 127, a whole number in [1, 127]. The float 2^23 + e
/// holds e in its low mantissa bits and nothing else below bit 23, so shifting its bits left by
/// 23 pushes its own exponent out and leaves exactly e in the exponent field. Not a conversion to
/// Int32: in a checked build its range check stops the loop around it from vectorising.
@inline(__always)
func fastExp2(_ t: SIMD8<Float>, exponentMask: SIMD8<UInt32> = SIMD8(repeating: 0x7F)) -> SIMD8<Float> {
    let tc = t.replacing(with: -126, where: t .< -126)
    let fl = tc.rounded(.down)
    let f = tc - fl
    let c3 = SIMD8<Float>(repeating: 0.0780236)
    let c2 = SIMD8<Float>(repeating: 0.2261697).addingProduct(f, c3)
    let c1 = SIMD8<Float>(repeating: 0.6951786).addingProduct(f, c2)
    let p = SIMD8<Float>(repeating: 1).addingProduct(f, c1)
    let powerBits = unsafeBitCast(fl + SIMD8<Float>(repeating: 8_388_735), to: SIMD8<UInt32>.self) & exponentMask
    return unsafeBitCast(powerBits &<< 23, to: SIMD8<Float>.self) * p
}
