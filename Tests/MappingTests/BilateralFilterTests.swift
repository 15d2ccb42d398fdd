import XCTest
import Imaging
@testable import Mapping

final class BilateralFilterTests: XCTestCase {
    /// Straightforward double-precision filter used as the reference.
    private func naive(_ d: DepthImage, window: Int, sigmaS: Double, sigmaR: Double) -> [Float] {
        let r = window / 2
        var out = [Float](repeating: 0, count: d.count)
        for y in 0..<d.height {
            for x in 0..<d.width {
                let c = Double(d[x, y])
                guard c > 0 else { continue }
                var sw = 0.0, sd = 0.0
                for dy in -r...r {
                    for dx in -r...r {
                        let xx = x + dx, yy = y + dy
                        guard d.contains(x: xx, y: yy) else { continue }
                        let v = Double(d[xx, yy])
                        guard v > 0 else { continue }
                        let wgt = exp(-Double(dx * dx + dy * dy) / (2 * sigmaS * sigmaS) - (v - c) * (v - c) / (2 * sigmaR * sigmaR))
                        sw += wgt; sd += wgt * v
                    }
                }
                out[y * d.width + x] = Float(sd / sw)
            }
        }
        return out
    }

    private func testImage() -> DepthImage {
        var rng = SplitMix64(seed: 7)
        var img = DepthImage(width: 53, height: 41, repeating: 0)
        for y in 0..<41 {
            for x in 0..<53 {
                let base: Float = x < 25 ? 1.0 : 1.6            // a depth edge
                let noise = Float(rng.nextDouble() - 0.5) * 0.02
                img[x, y] = (x + y) % 17 == 0 ? 0 : base + 0.01 * Float(y) / 41 + noise // holes
                // A block of missing depth wider than eight pixels: whole runs of eight missing
                // outputs (skipped by the kernel) next to partial ones.
                if (3..<23).contains(x) && (10..<15).contains(y) { img[x, y] = 0 }
            }
        }
        return img
    }

    func testMatchesNaiveReference() {
        let img = testImage()
        let reference = naive(img, window: 13, sigmaS: 4.5, sigmaR: 0.03)
        for threads in [1, 2] {
            var out = [Float]()
            BilateralFilter().apply(img, into: &out, threads: threads)
            var maxErr: Float = 0
            for i in 0..<out.count { maxErr = max(maxErr, abs(out[i] - reference[i])) }
            XCTAssertLessThan(maxErr, 2e-4, "threads \(threads)")
        }
    }

    func testCheckerboardModeMatchesTheFullFilterWhereAssociationReads() {
        let img = testImage()
        var full = [Float]()
        BilateralFilter().apply(img, into: &full, threads: 1)
        for parity in [0, 1] {
            for threads in [1, 2] {
                var part = [Float]()
                BilateralFilter().apply(img, into: &part, threads: threads, checkerboardParity: parity)
                var checked = 0
                for y in 0..<img.height {
                    for x in 0..<img.width where y % 2 == parity || x % 2 == parity {
                        XCTAssertEqual(part[y * img.width + x], full[y * img.width + x], "(\(x), \(y)) parity \(parity)")
                        checked += 1
                    }
                }
                XCTAssertGreaterThan(checked, img.count * 7 / 10)
            }
        }
    }

    func testKeepsEdgesAndHoles() {
        let img = testImage()
        var out = [Float]()
        BilateralFilter().apply(img, into: &out, threads: 1)
        for y in 0..<41 {
            XCTAssertLessThan(abs(out[y * 53 + 24] - img[24, y]), 0.03, "near side of edge must not blend with far side")
            for x in 0..<53 where img[x, y] == 0 { XCTAssertEqual(out[y * 53 + x], 0) }
        }
    }

    func testFastExp2Accuracy() {
        var t: Float = -30
        while t <= 0 {
            // Each lane on its own value: t and seven others across [-126, 0].
            var lanes = SIMD8<Float>(repeating: t)
            for i in 1..<8 { lanes[i] = -Float(i) * 15.7 + t / 30 }
            let result = fastExp2(lanes)
            for i in 0..<8 {
                let exact = Foundation.exp2(Double(lanes[i]))
                XCTAssertLessThan(abs(Double(result[i]) - exact) / exact, 4e-4, "t = \(lanes[i])")
            }
            t += 0.013
        }
        XCTAssertEqual(fastExp2(SIMD8(repeating: -1000))[3], Float(bitPattern: 1 << 23), accuracy: 1e-37)
        XCTAssertEqual(fastExp2(SIMD8(repeating: 0))[0], 1)
        // A lane whose exponent mask is 0 is exactly 0, the others as without a mask.
        let exponents = SIMD8<Float>(0, -1, -2.5, -40, -126, -1000, -0.3, -7)
        var mask = SIMD8<UInt32>(repeating: 0x7F)
        mask[2] = 0
        mask[5] = 0
        let masked = fastExp2(exponents, exponentMask: mask), plain = fastExp2(exponents)
        for i in 0..<8 { XCTAssertEqual(masked[i], i == 2 || i == 5 ? 0 : plain[i]) }
    }

    /// The kernel's arithmetic one output at a time: taps row by row, missing neighbours
    /// skipped. The kernel gives missing neighbours their zero weight through the exponent of
    /// their range weight and walks the window's columns by pointers; both must give these bits.
    private func scalarReference(_ d: DepthImage, filter: BilateralFilter) -> [Float] {
        let r = filter.radius
        let rangeScale = -1 / (2 * filter.sigmaRange * filter.sigmaRange) * 1.442695041
        var out = [Float](repeating: 0, count: d.count)
        for y in 0..<d.height {
            for x in 0..<d.width {
                let c = d[x, y]
                guard c.isFinite, c >= .leastNormalMagnitude else { continue }
                var sumW: Float = 0, sumD: Float = 0
                for dy in -r...r {
                    for dx in -r...r {
                        let xx = x + dx, yy = y + dy
                        guard d.contains(x: xx, y: yy) else { continue }
                        let v = d[xx, yy]
                        guard v.isFinite, v >= .leastNormalMagnitude else { continue }
                        let spatial = Float(exp(-Double(dx * dx + dy * dy) / (2 * Double(filter.sigmaSpace * filter.sigmaSpace))))
                        let wgt = spatial * fastExp2(SIMD8(repeating: (v - c) * (v - c) * rangeScale))[0]
                        sumW += wgt
                        sumD = sumD.addingProduct(wgt, v)
                    }
                }
                out[y * d.width + x] = sumW > 0 ? sumD / sumW : 0
            }
        }
        return out
    }

    func testKernelGivesTheScalarArithmeticsBits() {
        var img = testImage()
        // Missing depth in every form the filter accepts, a neighbour 0.5 m away, whose range
        // weight is held at 2^-126, and a subnormal depth, which counts as missing.
        img[30, 5] = .nan
        img[31, 5] = -1
        img[32, 5] = .infinity
        img[33, 6] = 2.1
        img[34, 7] = .leastNonzeroMagnitude
        // A near patch (5 cm) with holes: there a missing neighbour's range weight without its
        // mask would be about 2^-2, so the mask must work, not just hide in the rounding.
        for y in 20..<30 {
            for x in 40..<50 { img[x, y] = (x * 3 + y) % 7 == 0 ? 0 : 0.05 + 0.001 * Float(x - 40) }
        }
        let filters = [BilateralFilter(), BilateralFilter(window: 7, sigmaSpace: 2.25, sigmaRange: 0.03)]
        for filter in filters {
            let reference = scalarReference(img, filter: filter)
            for threads in [1, 2] {
                var full = [Float]()
                filter.apply(img, into: &full, threads: threads)
                let differing = (0..<img.count).filter { full[$0].bitPattern != reference[$0].bitPattern }
                XCTAssertEqual(differing.count, 0, "window \(filter.radius * 2 + 1), threads \(threads), first at \(differing.first ?? -1)")
                for parity in [0, 1] {
                    var part = [Float]()
                    filter.apply(img, into: &part, threads: threads, checkerboardParity: parity)
                    let read = (0..<img.count).filter { i in (i / img.width) % 2 == parity || (i % img.width) % 2 == parity }
                    let wrong = read.filter { part[$0].bitPattern != reference[$0].bitPattern }
                    XCTAssertEqual(wrong.count, 0, "parity \(parity), window \(filter.radius * 2 + 1), first at \(wrong.first ?? -1)")
                }
            }
        }
    }
}

/// Uniform doubles in [0, 1) from the project's generator, for test data.
extension SplitMix64 {
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
