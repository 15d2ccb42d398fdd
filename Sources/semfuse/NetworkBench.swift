import ArgumentParser
import Foundation
import Imaging
import Network
import Pipeline

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
        weights are used. Compare with onnxruntime only in the same run, on the same machine: \
        tools/dev/bench_against_onnxruntime.py exports the network to ONNX and times both in turn \
        (fixed anchors from another session were off by 2x on this machine).
        """)

    @Option(help: "Input size WIDTHxHEIGHT (default: 640x480 and 320x240).")
    var size: [String] = []

    @Option(help: "Thread count (default: 1 and 2).")
    var threads: [Int] = []

    @Option(help: "Timed runs per configuration.")
    var runs: Int = 15

    @Option(help: "Untimed warm-up runs per configuration.")
    var warmup: Int = 3

    @Option(help: "Weights (.safetensors): the joint network's, or a converted mobile model (timed at its native size and 640x480 unless --size). Default: random weights of the 40-class joint network.")
    var weights: String?

    @Option(help: "A bundled model by short name ('deeplab', 'fastdepth'); same as --weights with its file.")
    var model: String?

    @Option(help: "Arithmetic of the dense convolutions: float32, int8 (8-bit weights and activations, int32 sums), or both (same run, alternating run by run, with the ratio of the medians and the median ratio of the pairs). Int8 needs a CPU with AVX-512 VNNI (SEMFUSE_INT8_PORTABLE=1 times the much slower portable kernels instead).")
    var precision: String = "float32"

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
        if let name = model ?? weights {
            let url = try ModelLibrary.resolve(name)
            if GraphNetwork.isGraphModel(url) {
                try benchGraph(url, sizes: size.isEmpty ? nil : sizes, threadCounts: threadCounts)
                return
            }
        }
        let loaded = try (model ?? weights).map { try NetworkWeights.load(ModelLibrary.resolve($0)) } ?? NetworkWeights.random()
        let precisions = try parsedPrecisions()
        let bench = NetworkBenchmark(weights: loaded)
        if !json {
            print("bench network: \(weights ?? "random weights"), \(runs) timed runs after \(warmup) warm-up runs per configuration")
        }
        var results: [NetworkBenchmark.Result] = []
        for (w, h) in sizes {
            for t in threadCounts {
              if !json {
                  FileHandle.standardError.write(Data("  running \(w)x\(h), \(t) thread(s), \(precisions.map(\.rawValue).joined(separator: " and "))…\n".utf8))
              }
              let measured = try bench.run(width: w, height: h, threads: t, runs: runs, warmup: warmup, precisions: precisions)
              results += measured
              var pairRatios: [Double] = []
              if let f = measured.first(where: { $0.precision == .float32 }), let q = measured.first(where: { $0.precision == .int8 }) {
                  pairRatios = zip(q.milliseconds, f.milliseconds).map { $0 / max($1, 1e-9) }
              }
              for r in measured {
                let precision = r.precision
                if json {
                    var object: [String: Any] = [
                        "width": w, "height": h, "threads": t, "runs": runs, "precision": precision.rawValue,
                        "median_ms": r.median, "min_ms": r.minimum, "max_ms": r.maximum, "p10_ms": r.p10, "p90_ms": r.p90,
                        "gflops": r.gflops, "gmac": r.multiplyAdds / 1e9,
                        "gemm_floor_ms": r.gemmFloorMilliseconds, "workspace_mb": Double(r.workspaceBytes) / 1e6, "ratio_to_gemm_floor": r.median / max(r.gemmFloorMilliseconds, 1e-9),
                    ]
                    if precision == .int8 { object.merge(Self.pairFields(pairRatios)) { $1 } }
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(String(format: "%dx%d, %d thread%@, %@: median %.1f ms (min %.1f, p10 %.1f, p90 %.1f, max %.1f), %.1f GFLOP/s",
                                 w, h, t, t == 1 ? "" : "s", precision.rawValue, r.median, r.minimum, r.p10, r.p90, r.maximum, r.gflops))
                    print(String(format: "    its GEMMs alone in float32, same run: %.1f ms; whole pass = %.2fx that floor; buffers %.0f MB",
                                 r.gemmFloorMilliseconds, r.median / max(r.gemmFloorMilliseconds, 1e-9), Double(r.workspaceBytes) / 1e6))
                    if precision == .int8 {
                        print(String(format: "    the same GEMMs in int8 (%@ kernels, activations quantised inside the timing): %.1f ms, %.2fx the float32 GEMMs; whole pass = %.2fx the int8 floor",
                                     NetworkBenchmark.int8KernelUsesVNNI ? "AVX-512 VNNI" : "portable", r.int8GemmFloorMilliseconds,
                                     r.int8GemmFloorMilliseconds / max(r.gemmFloorMilliseconds, 1e-9), r.median / max(r.int8GemmFloorMilliseconds, 1e-9)))
                    }
                    let total = r.profile.values.reduce(0, +)
                    for (kind, ms) in r.profile.sorted(by: { $0.value > $1.value }) {
                        print("    " + kind.padding(toLength: 24, withPad: " ", startingAt: 0)
                              + String(format: "%7.1f ms  %4.1f%%", ms, 100 * ms / max(total, 1e-9)))
                    }
                }
              }
              if !json, let f = measured.first(where: { $0.precision == .float32 }), let q = measured.first(where: { $0.precision == .int8 }) {
                  print(Self.ratioLine(width: w, height: h, threads: t, float32: f.median, int8: q.median, pairs: pairRatios))
              }
            }
        }
        if !json {
            for (w, h) in sizes {
                for t in threadCounts {
                    let r = NetworkBenchmark.headComparison(width: w, height: h, threads: t, runs: max(3, runs / 3))
                    print(String(format: "%dx%d, %d thread%@: 40-class 3x3 head as Winograd F(4x4,3x3) %.1f ms vs per-tap GEMM %.1f ms (%.2fx) vs im2col + GEMM %.1f ms (%.2fx); outputs agree to %.1e (Winograd), %.1e (im2col)",
                                 w, h, t, t == 1 ? "" : "s", r.winograd, r.perTap, r.perTap / max(r.winograd, 1e-9),
                                 r.im2col, r.im2col / max(r.winograd, 1e-9), r.winogradDifference, r.difference))
                }
            }
            for (w, h) in sizes {
                for precision in precisions {
                    let one = results.first { $0.width == w && $0.height == h && $0.threads == 1 && $0.precision == precision }
                    let two = results.first { $0.width == w && $0.height == h && $0.threads == 2 && $0.precision == precision }
                    if let one, let two {
                        print(String(format: "%dx%d, %@: 2 threads are %.2fx faster than 1 (same run)", w, h, precision.rawValue, one.median / two.median))
                    }
                }
            }
        }
    }

    private func parsedPrecisions() throws -> [NetworkPrecision] {
        let list: [NetworkPrecision]
        if precision == "both" { list = [.float32, .int8] } else {
            guard let one = NetworkPrecision(rawValue: precision) else { throw ValidationError("--precision \(precision): expected float32, int8 or both") }
            list = [one]
        }
        if let reason = list.compactMap(\.unavailableReason).first { throw ValidationError(reason) }
        return list
    }

    /// JSON fields of the int8 / float32 ratios over the interleaved pairs (none without pairs).
    private static func pairFields(_ ratios: [Double]) -> [String: Any] {
        guard !ratios.isEmpty else { return [:] }
        let p = { (q: Double) in NetworkBenchmark.Result.percentile(ratios, q) }
        return ["int8_over_float32_median": p(0.5), "int8_over_float32_p10": p(0.1), "int8_over_float32_p90": p(0.9)]
    }

    /// The int8 against float32 summary of one size and thread count.
    private static func ratioLine(width w: Int, height h: Int, threads t: Int, float32 f: Double, int8 q: Double, pairs: [Double]) -> String {
        let r = { (x: Double) in NetworkBenchmark.Result.percentile(pairs, x) }
        return String(format: "%dx%d, %d thread%@: int8 takes %.2fx the float32 time by the medians; %.2fx by the median of %d interleaved pairs (p10 %.2f, p90 %.2f; %@ kernels)",
                      w, h, t, t == 1 ? "" : "s", q / max(f, 1e-9), r(0.5), pairs.count, r(0.1), r(0.9),
                      NetworkBenchmark.int8KernelUsesVNNI ? "AVX-512 VNNI" : "portable")
    }

    /// Converted mobile models: forward pass from the 8-bit image (input scaling included)
    /// to the raw output, at the native size and 640x480 unless sizes are given.
    private func benchGraph(_ url: URL, sizes given: [(Int, Int)]?, threadCounts: [Int]) throws {
        let precisions = try parsedPrecisions()
        let network = try GraphNetwork.load(url)
        let sizes = given ?? [network.nativeSize, (640, 480)]
        if !json { print("bench network: \(url.lastPathComponent) (\(network.operationCount) ops), \(runs) timed runs after \(warmup) warm-up runs per configuration") }
        for (w, h) in sizes {
            // A smooth synthetic image: realistic value ranges without needing a file.
            var image = ColorImage(width: w, height: h, repeating: RGB8(0, 0, 0))
            for y in 0..<h { for x in 0..<w {
                let v = { (c: Float) in UInt8(127.5 + 120 * sinf(Float(x) * 0.05 + c) * cosf(Float(y) * 0.07)) }
                image.pixels[y * w + x] = RGB8(v(0), v(1), v(2))
            } }
            for t in threadCounts {
              var medianByPrecision: [NetworkPrecision: Double] = [:]
              network.threads = t
              if !json {
                  FileHandle.standardError.write(Data("  running \(w)x\(h), \(t) thread(s), \(precisions.map(\.rawValue).joined(separator: " and "))…\n".utf8))
              }
              for precision in precisions {
                  network.precision = precision
                  for _ in 0..<warmup { _ = try network.forward(image) }
              }
              // With both precisions the runs alternate, so a slow spell of the machine (timings
              // here drift by ±30 %) falls on both alike; each pair also gives a ratio.
              var timesByPrecision: [NetworkPrecision: [Double]] = [:]
              for _ in 0..<runs {
                  for precision in precisions {
                      network.precision = precision
                      let start = DispatchTime.now().uptimeNanoseconds
                      _ = try network.forward(image)
                      timesByPrecision[precision, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                  }
              }
              var pairRatios: [Double] = []
              if let f = timesByPrecision[.float32], let q = timesByPrecision[.int8] {
                  pairRatios = zip(q, f).map { $0 / max($1, 1e-9) }
              }
              for precision in precisions {
                network.precision = precision
                let times = timesByPrecision[precision] ?? []
                network.profiling = true
                var profiles: [String: [Double]] = [:]
                for _ in 0..<3 {
                    _ = try network.forward(image)
                    for (kind, ms) in network.lastProfile { profiles[kind, default: []].append(ms) }
                }
                network.profiling = false
                let p = { (q: Double) in NetworkBenchmark.Result.percentile(times, q) }
                let macs = try network.multiplyAdds(height: h, width: w)
                let median = p(0.5)
                medianByPrecision[precision] = median
                let gflops = 2 * macs / (median / 1000) / 1e9
                if json {
                    var object: [String: Any] = [
                        "model": url.lastPathComponent, "width": w, "height": h, "threads": t, "runs": runs, "precision": precision.rawValue,
                        "median_ms": median, "min_ms": times.min() ?? 0, "max_ms": times.max() ?? 0, "p10_ms": p(0.1), "p90_ms": p(0.9),
                        "gmac": macs / 1e9, "gflops": gflops, "workspace_mb": Double(network.workspaceBytes) / 1e6,
                    ]
                    if precision == .int8 { object.merge(Self.pairFields(pairRatios)) { $1 } }
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(String(format: "%dx%d, %d thread%@, %@: median %.1f ms (min %.1f, p10 %.1f, p90 %.1f, max %.1f), %.2f GMAC, %.1f GFLOP/s, buffers %.0f MB",
                                 w, h, t, t == 1 ? "" : "s", precision.rawValue, median, times.min() ?? 0, p(0.1), p(0.9), times.max() ?? 0, macs / 1e9, gflops,
                                 Double(network.workspaceBytes) / 1e6))
                    let medians = profiles.mapValues { NetworkBenchmark.Result.percentile($0, 0.5) }
                    let total = medians.values.reduce(0, +)
                    for (kind, ms) in medians.sorted(by: { $0.value > $1.value }) {
                        print("    " + kind.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%7.1f ms  %4.1f%%", ms, 100 * ms / max(total, 1e-9)))
                    }
                }
              }
              if !json, let f = medianByPrecision[.float32], let q = medianByPrecision[.int8] {
                  print(Self.ratioLine(width: w, height: h, threads: t, float32: f, int8: q, pairs: pairRatios))
              }
            }
        }
    }
}
