import CPUCheck
import Foundation
import NetworkKernels

/// Forward-pass timing of the network at one input size and thread count: warm-up runs first,
/// then `runs` timed passes, reported as median and spread, GFLOP/s (2 × conv multiply-adds per
/// second) and a per-kind breakdown from a separate profiled pass set.
public struct NetworkBenchmark {
    public struct Result: Sendable {
        public var width: Int, height: Int, threads: Int
        public var milliseconds: [Double]
        public var multiplyAdds: Double
        /// Median milliseconds per kind of work over the profiled runs.
        public var profile: [String: Double]
        /// Median time of the pass's GEMMs alone (same shapes, same threading, measured in the
        /// same run): the floor the rest of the network is compared with.
        public var gemmFloorMilliseconds: Double
        public var precision: NetworkPrecision
        /// With int8: the same GEMMs through the int8 kernel (`int8Gemm`), same run (0 otherwise).
        public var int8GemmFloorMilliseconds: Double
        /// Memory of the network's planned buffers at this size.
        public var workspaceBytes: Int

        public var median: Double { Self.percentile(milliseconds, 0.5) }
        public var minimum: Double { milliseconds.min() ?? 0 }
        public var maximum: Double { milliseconds.max() ?? 0 }
        public var p10: Double { Self.percentile(milliseconds, 0.1) }
        public var p90: Double { Self.percentile(milliseconds, 0.9) }
        public var gflops: Double { median > 0 ? 2 * multiplyAdds / (median / 1000) / 1e9 : 0 }

        public static func percentile(_ values: [Double], _ q: Double) -> Double {
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            let position = q * Double(sorted.count - 1)
            let lower = Int(position.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
            return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
        }
    }

    /// Whether the int8 GEMM runs its AVX-512 VNNI kernel on this CPU (else the portable one).
    public static var int8KernelUsesVNNI: Bool { NetworkKernels.int8KernelUsesVNNI }

    public let weights: NetworkWeights
    public init(weights: NetworkWeights) { self.weights = weights }

    public func run(width: Int, height: Int, threads: Int, runs: Int, warmup: Int = 2, profiledRuns: Int = 3,
                    precision: NetworkPrecision = .float32) throws -> Result {
        try run(width: width, height: height, threads: threads, runs: runs, warmup: warmup, profiledRuns: profiledRuns,
                precisions: [precision])[0]
    }

    /// One result per precision, the timed runs alternating between them run by run (a network
    /// per precision), so a slow spell of the machine falls on all of them alike and run k of
    /// each result forms a same-time pair.
    public func run(width: Int, height: Int, threads: Int, runs: Int, warmup: Int = 2, profiledRuns: Int = 3,
                    precisions: [NetworkPrecision]) throws -> [Result] {
        let networks = precisions.map { precision -> JointNetwork in
            let network = JointNetwork(weights: weights, threads: threads)
            network.precision = precision
            return network
        }
        // A smooth synthetic image: realistic value ranges without needing a file.
        var values = [Float](repeating: 0, count: 3 * width * height)
        for c in 0..<3 {
            for y in 0..<height {
                for x in 0..<width {
                    values[(c * height + y) * width + x] = sinf(Float(x) * 0.05 + Float(c)) * cosf(Float(y) * 0.07) * 2
                }
            }
        }
        let input = try NetworkInput(height: height, width: width, values: values)
        for network in networks { for _ in 0..<warmup { _ = network.forward(input) } }
        var times = [[Double]](repeating: [], count: networks.count)
        for _ in 0..<runs {
            for (k, network) in networks.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = network.forward(input)
                times[k].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
        }
        return networks.enumerated().map { k, network in
            var profiles: [String: [Double]] = [:]
            network.profiling = true
            for _ in 0..<profiledRuns {
                _ = network.forward(input)
                for (kind, ms) in network.lastProfile { profiles[kind, default: []].append(ms) }
            }
            network.profiling = false
            let gemms = network.layerPlan(height: height, width: width).gemms
            return Result(width: width, height: height, threads: threads, milliseconds: times[k],
                          multiplyAdds: network.multiplyAdds(height: height, width: width),
                          profile: profiles.mapValues { Result.percentile($0, 0.5) },
                          gemmFloorMilliseconds: Self.gemmFloor(gemms, threads: threads, runs: max(3, runs / 2)),
                          precision: precisions[k],
                          int8GemmFloorMilliseconds: precisions[k] == .int8
                              ? Self.gemmFloor(gemms, threads: threads, runs: max(3, runs / 2), precision: .int8)
                              : 0,
                          workspaceBytes: network.workspaceBytes)
        }
    }

    /// The 40-class 3x3 head at output stride 4 computed three ways, same run: Winograd F(4x4, 3x3)
    /// (what the network uses), per-tap GEMM (M = 9·40) + shifted adds, and im2col (K = 9·256) +
    /// one GEMM (M = 40). Median milliseconds, and the largest difference of im2col's and
    /// Winograd's outputs from the per-tap one's.
    public static func headComparison(width: Int, height: Int, threads: Int, runs: Int)
        -> (winograd: Double, perTap: Double, im2col: Double, difference: Float, winogradDifference: Float) {
        KernelCPU.requireSupported()
        configureBLAS()
        let (h, w) = NetworkArchitecture.outputSize(height: height, width: width)
        let cin = NetworkArchitecture.width, cout = 40, n = h * w
        let workspace = Workspace()
        let input = workspace.map("x", channels: cin, height: h, width: w)
        for i in 0..<input.count { input.base[i] = Float((i * 7919) % 97) / 97 }
        let weights = (0..<(cout * cin * 9)).map { Float(($0 * 104_729) % 89) / 89 - 0.5 }   // [cout][cin][tap]
        var taps = [Float](repeating: 0, count: weights.count)                                  // [tap][cout][cin]
        for o in 0..<cout { for i in 0..<cin { for k in 0..<9 { taps[(k * cout + o) * cin + i] = weights[(o * cin + i) * 9 + k] } } }
        let bias = [Float](repeating: 0.1, count: cout)
        let outTap = workspace.map("tap", channels: cout, height: h, width: w)
        let outCol = workspace.map("col", channels: cout, height: h, width: w)
        let outWinograd = workspace.map("winograd", channels: cout, height: h, width: w)
        let columns = workspace.floats("im2col", count: 9 * cin * n)
        let transformed = taps.withUnsafeBufferPointer {
            Winograd.transformedWeights(tapWeights: $0.baseAddress!, outputChannels: cout, inputChannels: cin)
        }
        var tapTimes: [Double] = [], colTimes: [Double] = [], winogradTimes: [Double] = []
        for run in 0...runs {
            var t0 = DispatchTime.now().uptimeNanoseconds
            transformed.withUnsafeBufferPointer { t in bias.withUnsafeBufferPointer { b in
                Winograd.convolution3x3(input, into: outWinograd, transformed: t.baseAddress!, bias: b.baseAddress!,
                                        workspace: workspace, threads: threads)
            } }
            if run > 0 { winogradTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6) }
            t0 = DispatchTime.now().uptimeNanoseconds
            taps.withUnsafeBufferPointer { t in bias.withUnsafeBufferPointer { b in
                convolution3x3(input, into: outTap, tapWeights: t.baseAddress!, bias: b.baseAddress!, workspace: workspace, threads: threads)
            } }
            if run > 0 { tapTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6) }
            t0 = DispatchTime.now().uptimeNanoseconds
            parallelRanges(9 * cin, threads: threads) { _, rows in
                for row in rows {
                    let c = row / 9, dy = (row % 9) / 3, dx = row % 3
                    let src = input.channel(c), dst = columns + row * n
                    for y in 0..<h {
                        let iy = y + dy - 1
                        for x in 0..<w {
                            let ix = x + dx - 1
                            dst[y * w + x] = iy >= 0 && iy < h && ix >= 0 && ix < w ? src[iy * w + ix] : 0
                        }
                    }
                }
            }
            weights.withUnsafeBufferPointer { gemm(m: cout, n: n, k: 9 * cin, a: $0.baseAddress!, b: columns, c: outCol.base, threads: threads) }
            bias.withUnsafeBufferPointer { addBias(outCol, bias: $0.baseAddress!, relu6: false, threads: threads) }
            if run > 0 { colTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6) }
        }
        var difference: Float = 0, winogradDifference: Float = 0
        for i in 0..<outTap.count {
            difference = max(difference, abs(outTap.base[i] - outCol.base[i]))
            winogradDifference = max(winogradDifference, abs(outTap.base[i] - outWinograd.base[i]))
        }
        return (Result.percentile(winogradTimes, 0.5), Result.percentile(tapTimes, 0.5), Result.percentile(colTimes, 0.5),
                difference, winogradDifference)
    }

    /// Median time of running just these GEMMs (random data) through the network's GEMM path:
    /// float32 (OpenBLAS), or int8 (`int8Gemm`) with the weights quantised beforehand, as a
    /// network does at load, and the activations quantised and packed inside the timing, as every
    /// pass must.
    static func gemmFloor(_ shapes: [(m: Int, n: Int, k: Int)], threads: Int, runs: Int,
                          precision: NetworkPrecision = .float32) -> Double {
        configureBLAS()
        let maxA = shapes.map { $0.m * $0.k }.max() ?? 0
        let maxB = shapes.map { $0.k * $0.n }.max() ?? 0
        let maxC = shapes.map { $0.m * $0.n }.max() ?? 0
        let a = UnsafeMutablePointer<Float>.allocate(capacity: maxA), b = UnsafeMutablePointer<Float>.allocate(capacity: maxB)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: maxC)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<maxA { a[i] = Float(i % 7) * 0.01 }
        for i in 0..<maxB { b[i] = Float(i % 5) * 0.1 }
        let quantised = precision == .int8 ? shapes.map { QuantisedWeights(a, rows: $0.m, columns: $0.k) } : []
        let workspace = Workspace()
        var times: [Double] = []
        for run in 0...runs {
            let start = DispatchTime.now().uptimeNanoseconds
            for (i, s) in shapes.enumerated() {
                if precision == .int8 {
                    int8Gemm(weights: quantised[i], n: s.n, b: b, ldb: s.n, c: c, ldc: s.n, threads: threads, workspace: workspace)
                } else {
                    gemm(m: s.m, n: s.n, k: s.k, a: a, b: b, c: c, threads: threads)
                }
            }
            if run > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }  // first run warms up
        }
        return Result.percentile(times, 0.5)
    }
}

#if canImport(Glibc)
import Glibc
#endif
