import Foundation
import Imaging

/// Edge-preserving depth smoothing (ElasticFusion's depth_bilateral: 13x13, σs = 4.5 px,
/// σr = 30 mm). Normals and surfel radii come from the filtered depth; positions from raw.
///
/// The kernel runs tap by tap over whole rows so the innermost loop is contiguous and the
/// compiler vectorises it; the range weight uses a branch-free exp approximation.
public struct BilateralFilter: Sendable {
    public let radius: Int
    public let sigmaSpace: Float
    public let sigmaRange: Float
    private let spatialWeights: [Float]

    public init(window: Int = 13, sigmaSpace: Float = 4.5, sigmaRange: Float = 0.03) {
        precondition(window >= 1 && window % 2 == 1, "bilateral window must be odd")
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
        // Zero-padded copy so the inner loop needs no bounds checks.
        var padded = [Float](repeating: 0, count: pw * (h + 2 * r))
        depth.pixels.withKernelInput { src in
            padded.withKernelOutput { dst in
                for y in 0..<h {
                    for x in 0..<w {
                        let v = src[y * w + x]
                        dst[(y + r) * pw + x + r] = v.isFinite && v > 0 ? v : 0
                    }
                }
            }
        }
        if output.count != w * h { output = [Float](repeating: 0, count: w * h) }
        // For checkerboard filtering: the padded image split into even and odd columns, so the
        // strided outputs of half rows read contiguous memory.
        let planeWidth = (pw + 1) / 2
        let ph = h + 2 * r
        var planeStorage = [Float]()
        if checkerboardParity != nil {
            planeStorage = [Float](repeating: 0, count: 2 * planeWidth * ph)
            padded.withKernelInput { pad in
                planeStorage.withKernelOutput { planes in
                    for y in 0..<ph {
                        for x in 0..<pw {
                            planes[(x & 1) * planeWidth * ph + y * planeWidth + (x >> 1)] = pad[y * pw + x]
                        }
                    }
                }
            }
        }
        let rangeScale = -1 / (2 * sigmaRange * sigmaRange) * 1.442695041 // log2(e)
        let side = 2 * r + 1
        planeStorage.withKernelInput { planes in
        padded.withKernelInput { pad in
        spatialWeights.withKernelInput { sw in
        output.withKernelOutput { out in
            ParallelFor.run(h, chunks: threads * 2, threads: threads) { _, rows in
                // Per-chunk accumulators for one row.
                var sumW = [Float](repeating: 0, count: w)
                var sumD = [Float](repeating: 0, count: w)
                sumW.withKernelOutput { accW in
                sumD.withKernelOutput { accD in
                    for y in rows {
                        if let p = checkerboardParity, y % 2 != p {
                            halfRow(y: y, parity: p, planes: planes.base, planeWidth: planeWidth, planeRows: ph, width: w, side: side,
                                    weights: sw.base, rangeScale: rangeScale,
                                    accW: accW.base, accD: accD.base, out: out.address(y * w))
                            continue
                        }
                        let centre = pad.address((y + r) * pw + r)
                        for x in 0..<w { accW[x] = 0; accD[x] = 0 }
                        for dy in 0..<side {
                            for dx in 0..<side {
                                let ws = sw[dy * side + dx]
                                let row = pad.address((y + dy) * pw + dx)
                                Self.accumulate(row: row, centre: centre, count: w, spatial: ws,
                                                rangeScale: rangeScale, accW: accW.base, accD: accD.base)
                            }
                        }
                        let o = out.address(y * w)
                        for x in 0..<w {
                            o[x] = centre[x] > 0 && accW[x] > 0 ? accD[x] / accW[x] : 0
                        }
                    }
                }}
            }
        }}}}
    }

    /// Filters the outputs x = parity, parity + 2, ... of row y from the column planes.
    @inline(__always)
    private func halfRow(y: Int, parity p: Int, planes: UnsafePointer<Float>, planeWidth: Int, planeRows: Int, width w: Int,
                         side: Int, weights: UnsafePointer<Float>, rangeScale: Float,
                         accW: UnsafeMutablePointer<Float>, accD: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let r = radius
        let m = (w - p + 1) / 2
        let planeSize = planeWidth * planeRows
        let centre = planes + ((p + r) & 1) * planeSize + (y + r) * planeWidth + ((p + r) >> 1)
        for j in 0..<m { accW[j] = 0; accD[j] = 0 }
        for dy in 0..<side {
            for dx in 0..<side {
                let row = planes + ((p + dx) & 1) * planeSize + (y + dy) * planeWidth + ((p + dx) >> 1)
                Self.accumulate(row: row, centre: centre, count: m, spatial: weights[dy * side + dx],
                                rangeScale: rangeScale, accW: accW, accD: accD)
            }
        }
        for j in 0..<m {
            out[2 * j + p] = centre[j] > 0 && accW[j] > 0 ? accD[j] / accW[j] : 0
        }
    }

    @inline(__always)
    private static func accumulate(row: UnsafePointer<Float>, centre: UnsafePointer<Float>, count: Int,
                                   spatial: Float, rangeScale: Float,
                                   accW: UnsafeMutablePointer<Float>, accD: UnsafeMutablePointer<Float>) {
        for x in 0..<count {
            let v = row[x]
            let d = v - centre[x]
            let valid: Float = v > 0 ? 1 : 0
            let wgt = spatial * valid * fastExp2(d * d * rangeScale)
            accW[x] += wgt
            accD[x] += wgt * v
        }
    }
}

/// 2^t for t <= 0 with ~1e-4 relative error; branch-free so loops over it vectorise.
@inline(__always)
@usableFromInline
func fastExp2(_ t: Float) -> Float {
    let tc = max(t, -126)
    // floor(tc) without `rounded(.down)`: that is one SSE4.1 instruction, but a build for the
    // baseline x86-64 has none and made it a libm call per lane. Round to nearest by the
    // 1.5·2^23 trick (exact for |tc| < 2^22), then step down where that rounded up.
    let nearest = (tc + 12_582_912) - 12_582_912
    let fl = nearest > tc ? nearest - 1 : nearest
    let f = tc - fl
    // Minimax-style cubic for 2^f on [0, 1).
    let p = 1 + f * (0.6951786 + f * (0.2261697 + f * 0.0780236))
    // 2^fl from its biased exponent fl + 127, read from the low mantissa bits of 2^23 + fl + 127
    // (exact: fl is a whole number in [-126, 0]). Not `Int32(fl) + 127`: in a checked build that
    // conversion's range check stops the filter loop from vectorising (10x slower preprocessing).
    let biased = (fl + 8_388_735).bitPattern & 0x7F_FFFF
    return Float(bitPattern: biased << 23) * p
}
