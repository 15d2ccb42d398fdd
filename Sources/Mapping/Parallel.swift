import Foundation

/// Splits `0..<count` into `chunks` contiguous ranges and runs them concurrently, or one after
/// the other when `threads` is 1 (the single-thread baseline of the benchmark).
///
/// Each chunk writes only its own outputs, so results do not depend on the thread count;
/// the map stays bit-for-bit reproducible.
func parallelChunks(_ count: Int, chunks requested: Int, threads: Int, _ body: (Range<Int>) -> Void) {
    let chunks = max(1, min(requested, count))
    if chunks == 1 || threads <= 1 {
        for c in 0..<chunks { body((count * c / chunks)..<(count * (c + 1) / chunks)) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = count * c / chunks
        let hi = count * (c + 1) / chunks
        body(lo..<hi)
    }
}

/// Number of worker threads: `SEMFUSE_THREADS` if set, else the machine's active cores.
public var defaultThreadCount: Int {
    if let s = ProcessInfo.processInfo.environment["SEMFUSE_THREADS"], let n = Int(s), n > 0 { return n }
    return max(1, ProcessInfo.processInfo.activeProcessorCount)
}
