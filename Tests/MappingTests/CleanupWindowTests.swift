@testable import Mapping
import XCTest
import Geometry

/// A window over these per-pixel planes, for the duration of `body`.
private func withWindow(_ depth: [Float], _ initTimes: [Int32], _ positions: [SIMD2<Float>], width: Int, height: Int,
                        _ body: (CleanupWindow) -> Void) {
    depth.withKernelInput { depth in initTimes.withKernelInput { initTimes in positions.withKernelInput { positions in
        body(CleanupWindow(stableDepth: depth, pixelInit: initTimes, stableXY: positions, width: width, height: height))
    } } }
}

/// A small deterministic generator (64-bit LCG) for the test planes.
private struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    /// A value in 0..<bound.
    mutating func next(_ bound: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int(state >> 33) % bound
    }
}

/// The cleanup's 4x4 neighbourhood tests, four pixels at a time against the per-pixel loop.
final class CleanupWindowTests: XCTestCase {
    /// Every window position of an odd-sized image (borders, where the scalar loop runs, and the
    /// interior, where the rows go four at a time), both facings and several depths: the counts
    /// are identical. The per-pixel values include what the predicates split on: no stable
    /// surfel (NaN), seen this frame or not (sign), ±0, depths exactly 0 and 1 cm behind,
    /// creation times equal to the surfel's, and lateral offsets on both sides of the radius.
    func testFourPixelsAtATimeCountExactlyAsThePerPixelLoop() {
        let width = 37, height = 23, n = width * height
        var random = TestRandom(seed: 7)
        func next(_ bound: Int) -> Int { random.next(bound) }
        let base: Float = 1.5, near: Float = 0.005
        let offsets: [Float] = [0, 0.01, 0.005, 0.0099, 0.0101, 0.02, -0.004, 0.001]
        var depth = [Float](repeating: .nan, count: n)
        var initTimes = [Int32](repeating: 0, count: n)
        var positions = [SIMD2<Float>](repeating: .zero, count: n)
        for p in 0..<n {
            switch next(10) {
            case 0: depth[p] = .nan
            case 1: depth[p] = next(2) == 0 ? 0 : -0.0
            case 2:
                // Exactly 0 and 1 cm behind a surfel at z = 5 mm (in Float, 0.015 − 0.005 is
                // exactly Float(0.01); at 1.5 m no difference is).
                let z = near + [0, 0.01, 0.02][next(3)]
                depth[p] = next(3) == 0 ? -z : z
            default:
                let z = base + offsets[next(offsets.count)]
                depth[p] = next(3) == 0 ? -z : z
            }
            initTimes[p] = Int32(next(7))
            positions[p] = SIMD2(Float(next(21) - 10) * 0.001, Float(next(21) - 10) * 0.001)
        }
        var vectorWindows = 0, withDuplicates = 0, withViolations = 0
        withWindow(depth, initTimes, positions, width: width, height: height) { window in
            for y0 in -1..<height {
                for x0 in -1..<width {
                    for facing in [false, true] {
                        for z in [base, base + 0.003, near] {
                            let pc = SIMD3<Float>(0.002, -0.001, z)
                            let args = (x0: x0, y0: y0, initTime: Int32(3 + (x0 + y0) % 3), lateral2: Float(0.008 * 0.008))
                            let fast = window.counts(x0: args.x0, y0: args.y0, position: pc, facing: facing,
                                                     lateral2: args.lateral2, initTime: args.initTime)
                            let slow = window.counts(x0: args.x0, y0: args.y0, position: pc, facing: facing,
                                                     lateral2: args.lateral2, initTime: args.initTime, vectorised: false)
                            XCTAssertEqual(fast.duplicates, slow.duplicates, "window at (\(x0), \(y0)), facing \(facing), z \(z)")
                            XCTAssertEqual(fast.violations, slow.violations, "window at (\(x0), \(y0)), facing \(facing), z \(z)")
                            if x0 >= 0 && x0 + 3 < width { vectorWindows += 1 }
                            if slow.duplicates > 0 { withDuplicates += 1 }
                            if slow.violations > 0 { withViolations += 1 }
                        }
                    }
                }
            }
        }
        // The comparison covered the four-at-a-time path and windows where both rules count.
        XCTAssertGreaterThan(vectorWindows, 3000)
        XCTAssertGreaterThan(withDuplicates, 500)
        XCTAssertGreaterThan(withViolations, 500)
        print("\(vectorWindows) windows four at a time; \(withDuplicates) with duplicates, \(withViolations) with violations")
    }

    /// `removes` (rows four at a time, stopping once the answer is fixed) decides exactly as the
    /// full counts do, over images where removals are common and where they are rare.
    func testEarlyStoppingDecidesAsTheFullCounts() {
        let width = 29, height = 19, n = width * height
        var random = TestRandom(seed: 11)
        func next(_ bound: Int) -> Int { random.next(bound) }
        var removed = 0, kept = 0
        for density in [2, 5, 9, 10] {   // out of 10 pixels: a stable surfel just behind
            var depth = [Float](repeating: .nan, count: n)
            var initTimes = [Int32](repeating: 0, count: n)
            var positions = [SIMD2<Float>](repeating: .zero, count: n)
            for p in 0..<n {
                if next(10) < density {
                    let behind: Float = [0.004, 0.008, 0.02, 0.05][next(4)]
                    depth[p] = (next(4) == 0 ? -1 : 1) * (1.5 + behind)
                } else if next(2) == 0 {
                    depth[p] = 1.5 - 0.01
                }
                initTimes[p] = Int32(next(4))
                positions[p] = SIMD2(Float(next(11) - 5) * 0.001, Float(next(11) - 5) * 0.001)
            }
            withWindow(depth, initTimes, positions, width: width, height: height) { window in
                for y0 in -1..<height {
                    for x0 in -1..<width {
                        for facing in [false, true] {
                            let pc = SIMD3<Float>(0.001, 0, 1.5), initTime = Int32(2 + (x0 & 1)), lateral2: Float = 0.006 * 0.006
                            let full = window.counts(x0: x0, y0: y0, position: pc, facing: facing, lateral2: lateral2,
                                                     initTime: initTime, vectorised: false)
                            let expected = full.duplicates > 8 || full.violations > 4
                            XCTAssertEqual(window.removes(x0: x0, y0: y0, position: pc, facing: facing, lateral2: lateral2, initTime: initTime),
                                           expected, "window at (\(x0), \(y0)), facing \(facing), density \(density)")
                            if expected { removed += 1 } else { kept += 1 }
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(removed, 300)
        XCTAssertGreaterThan(kept, 300)
        print("\(removed) windows remove, \(kept) keep")
    }

    /// Every split of duplicates and violations over the window's four rows (15 per row, 15⁴
    /// windows), so the thresholds' edges (nine duplicates, five violations, reached only in
    /// the last row) are all met: `removes` against the full counts.
    func testEarlyStoppingAtEveryRowSplit() {
        let width = 6, height = 6, pc = SIMD3<Float>(0, 0, 1.5)
        var splits: [(Int, Int)] = []
        for d in 0...4 { for v in 0...(4 - d) { splits.append((d, v)) } }
        var depth = [Float](repeating: .nan, count: width * height)
        let initTimes = [Int32](repeating: 0, count: width * height)
        let positions = [SIMD2<Float>](repeating: .zero, count: width * height)
        var removed = 0, checked = 0
        for a in splits { for b in splits { for c in splits { for d in splits {
            for (row, split) in [a, b, c, d].enumerated() {
                for x in 0..<4 {
                    // Window at (1, 1): duplicates just behind, violations seen 2 cm behind, others empty.
                    depth[(row + 1) * width + x + 1] = x < split.0 ? 1.504 : x < split.0 + split.1 ? 1.52 : .nan
                }
            }
            withWindow(depth, initTimes, positions, width: width, height: height) { window in
                let full = window.counts(x0: 1, y0: 1, position: pc, facing: true, lateral2: 1e-4, initTime: 1, vectorised: false)
                let expected = full.duplicates > 8 || full.violations > 4
                if window.removes(x0: 1, y0: 1, position: pc, facing: true, lateral2: 1e-4, initTime: 1) != expected {
                    XCTFail("rows \([a, b, c, d]) (duplicates, violations): expected \(expected)")
                }
                if expected { removed += 1 }
                checked += 1
            }
        } } } }
        XCTAssertEqual(checked, 15 * 15 * 15 * 15)
        XCTAssertGreaterThan(removed, 1000)
    }
}
