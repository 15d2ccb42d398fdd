import Foundation
import XCTest
@testable import Mapping

/// The grey images of photometric tracking: Sobel gradients in intensity units per pixel, zero
/// next to missing data, the same values however many threads compute them.
final class IntensityMapTests: XCTestCase {
    func testGradientsOfARampAndNextToMissingData() {
        let w = 37, h = 23
        // A ramp of 3 per column and −2 per row, with one pixel of no data (0).
        var grey = (0..<(w * h)).map { Float(100 + 3 * ($0 % w) - 2 * ($0 / w)) }
        let hole = 11 * w + 20
        grey[hole] = 0
        let map = IntensityMap(width: w, height: h, intensity: grey)
        for y in 0..<h {
            for x in 0..<w {
                let p = y * w + x
                let border = x == 0 || y == 0 || x == w - 1 || y == h - 1
                // The eight neighbours of the hole; the Sobel's taps leave out the centre.
                let nearHole = abs(x - 20) <= 1 && abs(y - 11) <= 1 && p != hole
                if border || nearHole {
                    XCTAssertEqual(map.gradientX[p], 0, "(\(x), \(y))")
                    XCTAssertEqual(map.gradientY[p], 0, "(\(x), \(y))")
                } else {
                    XCTAssertEqual(map.gradientX[p], 3, "(\(x), \(y))")
                    XCTAssertEqual(map.gradientY[p], -2, "(\(x), \(y))")
                }
            }
        }
    }

    func testThreadsGiveTheSameGradients() {
        let w = 161, h = 97
        var state: UInt64 = 12345
        let grey = (0..<(w * h)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let r = Float(state >> 40) / Float(1 << 24)
            return r < 0.05 ? 0 : 1 + 254 * r
        }
        let one = IntensityMap.pyramid(intensity: grey, width: w, height: h, levels: 3, threads: 1)
        for threads in [2, 3, 8] {
            let many = IntensityMap.pyramid(intensity: grey, width: w, height: h, levels: 3, threads: threads)
            for (a, b) in zip(one, many) {
                XCTAssertEqual(a.intensity, b.intensity, "\(threads) threads")
                XCTAssertEqual(a.gradientX, b.gradientX, "\(threads) threads")
                XCTAssertEqual(a.gradientY, b.gradientY, "\(threads) threads")
            }
        }
        XCTAssertGreaterThan(one[0].gradientX.filter { $0 != 0 }.count, w * h / 3)
    }
}
