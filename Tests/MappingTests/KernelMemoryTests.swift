@testable import Mapping
import XCTest

/// The mapping kernels' one parallel loop and their owned workspace storage.
final class KernelMemoryTests: XCTestCase {
    /// Every index is visited exactly once, by the chunk the documented split gives it, whatever
    /// the thread count (results must not depend on it); chunks may be empty.
    func testParallelForCoversEveryIndexOnceInItsChunk() {
        for count in [0, 1, 5, 97, 640] {
            for chunks in [0, 1, 3, 8, 1000] {
                for threads in [1, 2, 4] {
                    var owner = [Int](repeating: -1, count: count)
                    var visits = [Int](repeating: 0, count: count)
                    owner.withKernelOutput { owner in
                        visits.withKernelOutput { visits in
                            ParallelFor.run(count, chunks: chunks, threads: threads) { c, range in
                                for i in range { owner[i] = c; visits[i] += 1 }
                            }
                        }
                    }
                    XCTAssertEqual(visits, [Int](repeating: 1, count: count), "count \(count) chunks \(chunks) threads \(threads)")
                    let n = max(1, chunks)
                    XCTAssertEqual(owner, (0..<count).map { i in (0..<n).first { c in (count * c / n..<count * (c + 1) / n).contains(i) }! })
                }
            }
        }
    }

    /// The strided loop visits every index once, in batches of the given size, batch b by
    /// worker b mod workers and a worker's batches in order, whatever the threads.
    func testStridedLoopGivesEachWorkerEveryWorkersthBatch() {
        for count in [0, 1, 5, 97, 640] {
            for (workers, batch) in [(1, 7), (2, 16), (3, 1), (4, 1000), (0, 0)] {
                for threads in [1, 2, 4] {
                    var owner = [Int](repeating: -1, count: count)
                    var visits = [Int](repeating: 0, count: count)
                    var order = [[Int]](repeating: [], count: max(1, workers))
                    owner.withKernelOutput { owner in
                    visits.withKernelOutput { visits in
                    order.withKernelOutput { order in
                        ParallelFor.strided(count, workers: workers, batch: batch, threads: threads) { k, b, range in
                            XCTAssertEqual(range.lowerBound, b * max(1, batch))
                            order[k] = order[k] + [b]
                            for i in range { owner[i] = k; visits[i] += 1 }
                        }
                    }}}
                    let label = "count \(count) workers \(workers) batch \(batch) threads \(threads)"
                    XCTAssertEqual(visits, [Int](repeating: 1, count: count), label)
                    let w = max(1, workers), size = max(1, batch)
                    XCTAssertEqual(owner, (0..<count).map { ($0 / size) % w }, label)
                    for k in 0..<w { XCTAssertEqual(order[k], order[k].sorted(), label) }
                }
            }
        }
    }

    func testKernelBufferKeepsContentsUntilItsSizeChanges() {
        let buffer = KernelBuffer<Int32>()
        XCTAssertEqual(buffer.count, 0)
        XCTAssertTrue(buffer.resize(4, repeating: -2))
        buffer.output[1] = 7
        XCTAssertFalse(buffer.resize(4, repeating: 0))       // same size: kept
        XCTAssertEqual(buffer.array, [-2, 7, -2, -2])
        XCTAssertTrue(buffer.resize(2, repeating: 5))        // new size: refilled
        XCTAssertEqual(buffer.array, [5, 5])
        buffer.fill(3)
        XCTAssertEqual(buffer[0], 3)
        XCTAssertEqual(buffer.input[1], 3)
    }

    /// Views of an empty array or buffer exist (count 0) and are never dereferenced.
    func testEmptyViews() {
        let empty: [Float] = []
        empty.withKernelInput { XCTAssertEqual($0.count, 0) }
        XCTAssertEqual(KernelBuffer<Float>().output.count, 0)
    }
}
