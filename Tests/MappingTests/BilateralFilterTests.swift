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
    }
}

/// Uniform doubles in [0, 1) from the project's generator, for test data.
extension SplitMix64 {
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
