import CPrefetch
import Foundation
import Synchronization

/// The network kernels' worker threads: one helper per extra core, kept awake (spinning) for a
/// short while after each job so the next layer's job starts without waking a thread.
///
/// Why: a forward pass of the joint network is about 90 parallel jobs of 0.1-5 ms each. With
/// `DispatchQueue.concurrentPerform` each job paid 30-50 µs on this virtual machine to wake a
/// sleeping worker (a futex wake-up), measured per call against the same work done serially:
/// several ms per 640x480 pass. onnxruntime and ncnn spin their workers between operators for
/// the same reason (docs/results.md, "Workers that stay awake between layers").
///
/// One job at a time: a `run` that finds another job running (a kernel nested in a job, or a
/// second network on another thread) runs its iterations on the calling thread, so callers never
/// wait on each other and never deadlock.
package final class KernelThreads: @unchecked Sendable {
    /// The helpers shared by every kernel: `activeProcessorCount - 1` of them.
    package static let shared = KernelThreads(helpers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    /// How long a helper spins after a job before it sleeps. Between the layers of a pass the
    /// caller's serial work is well under this; after the pass the helper sleeps again, so a
    /// core is not held by a network that is not running.
    package static let spinNanoseconds: UInt64 = 200_000

    private let helperCount: Int
    /// Bumped (releasing) once per job after `job` and `iterations` are written.
    private let generation = Atomic<Int>(0)
    private let nextIndex = Atomic<Int>(0)
    /// Helpers done with the current job; the caller returns only when all are, so no helper
    /// still holds the job's closure when `run` returns.
    private let acknowledged = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private var job: ((Int) -> Void)?
    private var iterations = 0
    private let parking = NSCondition()
    private var sleepers = 0   // guarded by `parking`

    init(helpers: Int) {
        helperCount = helpers
        for _ in 0..<helpers {
            let thread = Thread { [unowned self] in self.helperLoop() }
            thread.name = "semfuse.kernels"
            thread.start()
        }
    }

    /// Runs `body(i)` for every `i` in `0..<iterations`, on the calling thread and the helpers,
    /// and returns when all have finished.
    package func run(_ iterations: Int, _ body: (Int) -> Void) {
        if iterations <= 1 || helperCount == 0
            || !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            for i in 0..<iterations { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            self.iterations = iterations
            nextIndex.store(0, ordering: .relaxed)
            acknowledged.store(0, ordering: .relaxed)
            generation.wrappingAdd(1, ordering: .releasing)
            parking.lock()
            if sleepers > 0 { parking.broadcast() }
            parking.unlock()
            share(body, iterations)
            while acknowledged.load(ordering: .acquiring) < helperCount { semfuse_cpu_relax() }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// Takes iterations until none are left.
    @inline(__always)
    private func share(_ body: (Int) -> Void, _ count: Int) {
        while true {
            let i = nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue
            guard i < count else { return }
            body(i)
        }
    }

    private func helperLoop() {
        var seen = 0
        while true {
            var current = generation.load(ordering: .acquiring)
            if current == seen {
                let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
                var spins = 0
                while current == seen {
                    semfuse_cpu_relax()
                    current = generation.load(ordering: .acquiring)
                    spins += 1
                    guard current == seen, spins & 127 == 0, DispatchTime.now().uptimeNanoseconds > deadline else { continue }
                    parking.lock()
                    sleepers += 1
                    while generation.load(ordering: .acquiring) == seen { parking.wait() }
                    sleepers -= 1
                    parking.unlock()
                    current = generation.load(ordering: .acquiring)
                }
            }
            // The caller waits for every helper's acknowledgement before the next job, so
            // `current` is exactly one ahead of `seen` and `job` is this generation's.
            seen = current
            participate()
            acknowledged.wrappingAdd(1, ordering: .releasing)
        }
    }

    /// The helper's share of the current job. A function of its own so its copy of the closure
    /// is released when it returns, before the acknowledgement: `run`'s caller may then end the
    /// closure's life (`withoutActuallyEscaping` checks that nothing still holds it).
    @inline(never)
    private func participate() {
        if let body = job { share(body, iterations) }
    }
}
