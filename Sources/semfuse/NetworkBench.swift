import ArgumentParser
import Foundation
import Network

struct NetworkBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Forward-pass speed of the joint network (build with -c release).",
        discussion: """
        Times the full forward pass (input tensor to raw stride-4 outputs) after warm-up runs, at \
        640x480 and 320x240 with 1 and 2 threads unless --size/--threads pick one, and prints the \
        median, min, max and p10-p90 in ms, GFLOP/s achieved (2 x 5.94 GMAC at 640x480), the time \
        of the pass's GEMMs alone measured in the same run (the floor; the ratio to it is robust \
        to machine noise) and where the time goes. Weights do not change the speed; without --weights deterministic random \
        weights are used. Anchors measured on the development machine (2 vCPU Zen3): onnxruntime \
        ~255 ms (1 thread) / ~150 ms (2 threads) at 640x480, ~60 / ~31 ms at 320x240.
        """)

    @Option(help: "Input size WIDTHxHEIGHT (default: 640x480 and 320x240).")
    var size: [String] = []

    @Option(help: "Thread count (default: 1 and 2).")
    var threads: [Int] = []

    @Option(help: "Timed runs per configuration.")
    var runs: Int = 15

    @Option(help: "Untimed warm-up runs per configuration.")
    var warmup: Int = 3

    @Option(help: "Weights (.safetensors); default: random weights of the 40-class network.")
    var weights: String?

    @Flag(help: "Print JSON: one object per configuration, one per line.")
    var json = false

    func run() throws {
        guard runs >= 1, warmup >= 0 else { throw ValidationError("--runs must be at least 1 and --warmup at least 0") }
        let sizes = try (size.isEmpty ? ["640x480", "320x240"] : size).map { text -> (Int, Int) in
            let parts = text.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts[0] >= 2, parts[1] >= 2 else { throw ValidationError("--size \(text): expected WIDTHxHEIGHT, e.g. 640x480") }
            return (parts[0], parts[1])
        }
        let threadCounts = threads.isEmpty ? [1, 2] : threads
        guard threadCounts.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--threads must be at least 1") }
        let loaded = try weights.map { try NetworkWeights.load(URL(fileURLWithPath: $0)) } ?? NetworkWeights.random()
        let bench = NetworkBenchmark(weights: loaded)
        if !json {
            print("bench network: \(weights ?? "random weights"), \(runs) timed runs after \(warmup) warm-up runs per configuration")
        }
        var results: [NetworkBenchmark.Result] = []
        for (w, h) in sizes {
            for t in threadCounts {
                if !json { FileHandle.standardError.write(Data("  running \(w)x\(h), \(t) thread(s)…\n".utf8)) }
                let r = try bench.run(width: w, height: h, threads: t, runs: runs, warmup: warmup)
                results.append(r)
                if json {
                    let object: [String: Any] = [
                        "width": w, "height": h, "threads": t, "runs": runs,
                        "median_ms": r.median, "min_ms": r.minimum, "max_ms": r.maximum, "p10_ms": r.p10, "p90_ms": r.p90,
                        "gflops": r.gflops, "gmac": r.multiplyAdds / 1e9,
                        "gemm_floor_ms": r.gemmFloorMilliseconds, "workspace_mb": Double(r.workspaceBytes) / 1e6, "ratio_to_gemm_floor": r.median / max(r.gemmFloorMilliseconds, 1e-9),
                    ]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(String(format: "%dx%d, %d thread%@: median %.1f ms (min %.1f, p10 %.1f, p90 %.1f, max %.1f), %.1f GFLOP/s",
                                 w, h, t, t == 1 ? "" : "s", r.median, r.minimum, r.p10, r.p90, r.maximum, r.gflops))
                    print(String(format: "    its GEMMs alone, same run: %.1f ms; whole pass = %.2fx the GEMM floor; buffers %.0f MB",
                                 r.gemmFloorMilliseconds, r.median / max(r.gemmFloorMilliseconds, 1e-9), Double(r.workspaceBytes) / 1e6))
                    let total = r.profile.values.reduce(0, +)
                    for (kind, ms) in r.profile.sorted(by: { $0.value > $1.value }) {
                        print("    " + kind.padding(toLength: 24, withPad: " ", startingAt: 0)
                              + String(format: "%7.1f ms  %4.1f%%", ms, 100 * ms / max(total, 1e-9)))
                    }
                }
            }
        }
        if !json {
            for (w, h) in sizes {
                for t in threadCounts {
                    let r = NetworkBenchmark.headComparison(width: w, height: h, threads: t, runs: max(3, runs / 3))
                    print(String(format: "%dx%d, %d thread%@: 40-class 3x3 head as per-tap GEMM %.1f ms vs im2col + GEMM %.1f ms (%.2fx; outputs agree to %.1e)",
                                 w, h, t, t == 1 ? "" : "s", r.perTap, r.im2col, r.im2col / max(r.perTap, 1e-9), r.difference))
                }
            }
            for (w, h) in sizes {
                let one = results.first { $0.width == w && $0.height == h && $0.threads == 1 }
                let two = results.first { $0.width == w && $0.height == h && $0.threads == 2 }
                if let one, let two {
                    print(String(format: "%dx%d: 2 threads are %.2fx faster than 1 (same run)", w, h, one.median / two.median))
                }
            }
        }
    }
}
