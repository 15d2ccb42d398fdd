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
    public func apply(_ depth: DepthImage, into output: inout [Float], threads: Int) {
        let w = depth.width, h = depth.height, r = radius
        let pw = w + 2 * r
        // Zero-padded copy so the inner loop needs no bounds checks.
        var padded = [Float](repeating: 0, count: pw * (h + 2 * r))
        depth.pixels.withUnsafeBufferPointer { src in
            padded.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    for x in 0..<w {
                        let v = src[y * w + x]
                        dst[(y + r) * pw + x + r] = v.isFinite && v > 0 ? v : 0
                    }
                }
            }
        }
        if output.count != w * h { output = [Float](repeating: 0, count: w * h) }
        let rangeScale = -1 / (2 * sigmaRange * sigmaRange) * 1.442695041 // log2(e)
        let side = 2 * r + 1
        padded.withUnsafeBufferPointer { pad in
            output.withUnsafeMutableBufferPointer { out in
                spatialWeights.withUnsafeBufferPointer { sw in
                    nonisolated(unsafe) let pad = pad, out = out, sw = sw
                    parallelChunks(h, chunks: threads * 2) { rows in
                        var sumW = [Float](repeating: 0, count: w)
                        var sumD = [Float](repeating: 0, count: w)
                        sumW.withUnsafeMutableBufferPointer { accW in
                            sumD.withUnsafeMutableBufferPointer { accD in
                                for y in rows {
                                    let centre = pad.baseAddress! + (y + r) * pw + r
                                    for x in 0..<w { accW[x] = 0; accD[x] = 0 }
                                    for dy in 0..<side {
                                        for dx in 0..<side {
                                            let ws = sw[dy * side + dx]
                                            let row = pad.baseAddress! + (y + dy) * pw + dx
                                            Self.accumulate(row: row, centre: centre, count: w, spatial: ws,
                                                            rangeScale: rangeScale, accW: accW.baseAddress!, accD: accD.baseAddress!)
                                        }
                                    }
                                    let o = out.baseAddress! + y * w
                                    for x in 0..<w {
                                        o[x] = centre[x] > 0 && accW[x] > 0 ? accD[x] / accW[x] : 0
                                    }
                                }
                            }
                        }
                    }
                }
            }
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
    let fl = tc.rounded(.down)
    let f = tc - fl
    // Minimax-style cubic for 2^f on [0, 1).
    let p = 1 + f * (0.6951786 + f * (0.2261697 + f * 0.0780236))
    let bits = UInt32(truncatingIfNeeded: Int32(fl) + 127) << 23
    return Float(bitPattern: bits) * p
}
