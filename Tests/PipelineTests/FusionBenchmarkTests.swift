import Foundation
import Pipeline
import Sequences
import XCTest

/// `bench fusion --interleaved-growth`'s measure (`FusionBenchmark.interleavedGrowth`).
final class FusionBenchmarkTests: XCTestCase {
    /// It fuses the first window on one map and the whole selection on the other, a frame of
    /// each in turn: its two maps end as large as sequential runs over the first window and over
    /// the whole selection, it times every frame of both windows, and a selection shorter than
    /// two windows gives nil.
    func testInterleavedWindowsFuseTheSameFramesAsSequentialRuns() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try SequenceLoader.open(root.appendingPathComponent("Sequences/synthetic-room"))
        let window = 12
        let positions = Array(0..<40)
        let bench = FusionBenchmark(source: source, positions: positions)
        let first = try FusionBenchmark(source: source, positions: Array(positions.prefix(window))).run(threads: 1)
        let whole = try bench.run(threads: 1)
        let growth = try XCTUnwrap(try bench.interleavedGrowth(threads: 2, window: window))
        XCTAssertEqual(growth.first.count, window)
        XCTAssertEqual(growth.last.count, window)
        XCTAssertEqual(growth.pairRatios.count, window)
        XCTAssertTrue((growth.first + growth.last).allSatisfy { $0 > 0 })
        XCTAssertEqual(growth.firstSurfels, first.surfelCount)
        XCTAssertEqual(growth.lastSurfels, whole.surfelCount)
        XCTAssertNotEqual(first.surfelCount, whole.surfelCount)
        XCTAssertNil(try FusionBenchmark(source: source, positions: Array(0..<(2 * window - 1))).interleavedGrowth(threads: 1, window: window))
    }
}
