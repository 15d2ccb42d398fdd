@testable import Mapping
import XCTest

/// The depth/intensity pyramid step (`gaussianDownsample`): its eight-wide interior path gives
/// the same bits as the per-pixel loop it replaced, written out again here.
final class PyramidStepTests: XCTestCase {
    /// ElasticFusion's rule, one output pixel at a time, with every bounds test.
    func reference(_ values: [Float], width w: Int, height h: Int, maxDifference: Float?) -> [Float] {
        let g: [Float] = [0.0625, 0.25, 0.375, 0.25, 0.0625]
        let limit = maxDifference ?? .infinity
        let w2 = w / 2, h2 = h / 2
        var out = [Float](repeating: 0, count: w2 * h2)
        for y in 0..<h2 {
            for x in 0..<w2 {
                let cx = 2 * x, cy = 2 * y
                let c = values[cy * w + cx]
                guard c > 0 else { continue }
                var sum: Float = 0, wsum: Float = 0
                for dy in -2...2 {
                    let yy = cy + dy
                    guard yy >= 0, yy < h else { continue }
                    for dx in -2...2 {
                        let xx = cx + dx
                        guard xx >= 0, xx < w else { continue }
                        let v = values[yy * w + xx]
                        guard v > 0, abs(v - c) < limit else { continue }
                        let wt = g[dx + 2] * g[dy + 2]
                        sum += wt * v; wsum += wt
                    }
                }
                out[y * w2 + x] = sum / wsum
            }
        }
        return out
    }

    func testMatchesThePerPixelLoopBitForBit() {
        var state: UInt64 = 12345
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)
        }
        // Sizes with no interior block, one partial block, odd widths and a camera-sized image.
        for (w, h) in [(5, 5), (19, 7), (20, 9), (37, 11), (64, 48), (101, 33), (640, 480)] {
            // Depth with holes (0), steps of more than the 9 cm limit, and smooth slopes.
            var depth = [Float](repeating: 0, count: w * h)
            for y in 0..<h {
                for x in 0..<w {
                    let r = next()
                    if r < 0.1 { continue }
                    let step: Float = (x / 7 + y / 5) % 3 == 0 ? 0.5 : 0
                    depth[y * w + x] = 1 + 0.002 * Float(x) + 0.003 * Float(y) + step + 0.01 * (r - 0.5)
                }
            }
            for limit in [Float(0.09), nil] {
                let got = gaussianDownsample(depth, width: w, height: h, maxDifference: limit, threads: 2)
                let expected = reference(depth, width: w, height: h, maxDifference: limit)
                XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "\(w)x\(h), limit \(String(describing: limit))")
            }
        }
    }
}
