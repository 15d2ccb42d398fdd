import Foundation

/// Number of worker threads for the mapping kernels, the one default every `threads` parameter
/// of the module starts from: `SEMFUSE_THREADS` if set, else the machine's active cores.
public var defaultThreadCount: Int {
    if let s = ProcessInfo.processInfo.environment["SEMFUSE_THREADS"], let n = Int(s), n > 0 { return n }
    return max(1, ProcessInfo.processInfo.activeProcessorCount)
}

/// The one parallel loop of the mapping kernels.
///
/// `0..<count` is split into `chunks` contiguous ranges, chunk c covering
/// `count·c/chunks ..< count·(c+1)/chunks` (possibly empty), and `body(c, range)` runs once per
/// chunk: concurrently, or in chunk order when `threads` is 1 (the single-thread baseline of the
/// benchmark). A kernel writes only the outputs of its own range or its own chunk's slot, and
/// partial results are combined in chunk order afterwards, so results do not depend on the
/// thread count: the map stays bit-for-bit reproducible.
enum ParallelFor {
    static func run(_ count: Int, chunks requested: Int, threads: Int, _ body: (_ chunk: Int, _ range: Range<Int>) -> Void) {
        let chunks = max(1, requested)
        if chunks == 1 || threads <= 1 {
            for c in 0..<chunks { body(c, (count * c / chunks)..<(count * (c + 1) / chunks)) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            body(c, (count * c / chunks)..<(count * (c + 1) / chunks))
        }
    }

    /// Surfels per run in the renderers' `strided` loops: enough to amortise a run's setup, few
    /// enough that a frame's surfels in view span many runs.
    static let surfelRun = 4_096

    /// `0..<count` in batches of `batch`, batch b going to worker b mod `workers`: worker k runs
    /// `body(k, b, range)` for its batches in order. For loops whose work bunches up in parts of
    /// the range (the surfels in view of a spatially ordered map), so each worker gets a share
    /// of every part. A kernel writes only its worker's slot or its batch's outputs.
    static func strided(_ count: Int, workers requested: Int, batch: Int, threads: Int,
                        _ body: (_ worker: Int, _ batch: Int, _ range: Range<Int>) -> Void) {
        let workers = max(1, requested), size = max(1, batch)
        let batches = (count + size - 1) / size
        withoutActuallyEscaping(body) { body in
            let work = { (k: Int) in
                var b = k
                while b < batches {
                    body(k, b, (b * size)..<min(count, (b + 1) * size))
                    b += workers
                }
            }
            if workers == 1 || threads <= 1 {
                for k in 0..<workers { work(k) }
            } else {
                DispatchQueue.concurrentPerform(iterations: workers) { work($0) }
            }
        }
    }
}
