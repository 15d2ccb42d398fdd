import Foundation
import NetworkKernels
import XCTest

/// The kernels' worker threads: every iteration runs exactly once and its writes are visible
/// when `run` returns, whether the helpers are spinning or asleep, and nested or concurrent
/// callers neither deadlock nor lose iterations.
final class KernelThreadsTests: XCTestCase {
    let pool = KernelThreads.shared

    /// Runs a job of `count` iterations that each add their index to their own slot.
    func check(_ count: Int, round: Int, file: StaticString = #filePath, line: UInt = #line) {
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: count)
        defer { slots.deallocate() }
        slots.initialize(repeating: 0, count: count)
        pool.run(count) { i in slots[i] += i + 1 }
        for i in 0..<count where slots[i] != i + 1 {
            XCTFail("round \(round): iteration \(i) of \(count) ran \(slots[i] / (i + 1)) times", file: file, line: line)
            return
        }
    }

    func testEveryIterationRunsOnceWhetherHelpersSpinOrSleep() {
        for round in 0..<2000 { check(2 + round % 17, round: round) }
        // Longer than the spin window: the helpers are asleep and must be woken.
        for round in 0..<5 {
            Thread.sleep(forTimeInterval: 2e-3 + Double(KernelThreads.spinNanoseconds) / 1e9)
            check(2 + round, round: round)
        }
        check(0, round: 0)
        check(1, round: 0)
    }

    func testNestedJobsRunOnTheirCallersThread() {
        let outer = 4, inner = 6
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: outer * inner)
        defer { slots.deallocate() }
        slots.initialize(repeating: 0, count: outer * inner)
        pool.run(outer) { o in
            self.pool.run(inner) { i in slots[o * inner + i] += 1 }
        }
        XCTAssertEqual((0..<(outer * inner)).map { slots[$0] }, [Int](repeating: 1, count: outer * inner))
    }

    func testConcurrentCallersBothFinish() {
        let callers = 3, jobs = 300, count = 8
        let totals = UnsafeMutablePointer<Int>.allocate(capacity: callers)
        defer { totals.deallocate() }
        totals.initialize(repeating: 0, count: callers)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            let slots = UnsafeMutablePointer<Int>.allocate(capacity: count)
            defer { slots.deallocate() }
            for _ in 0..<jobs {
                slots.initialize(repeating: 0, count: count)
                pool.run(count) { i in slots[i] = i + 1 }
                totals[caller] += (0..<count).reduce(0) { $0 + slots[$1] }
            }
        }
        let expected = jobs * count * (count + 1) / 2
        XCTAssertEqual((0..<callers).map { totals[$0] }, [Int](repeating: expected, count: callers))
    }
}
