import Foundation

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

    public let weights: NetworkWeights
    public init(weights: NetworkWeights) { self.weights = weights }

    public func run(width: Int, height: Int, threads: Int, runs: Int, warmup: Int = 2, profiledRuns: Int = 3) throws -> Result {
        let network = JointNetwork(weights: weights, threads: threads)
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
        for _ in 0..<warmup { _ = network.forward(input) }
        var times: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = network.forward(input)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        var profiles: [String: [Double]] = [:]
        network.profiling = true
        for _ in 0..<profiledRuns {
            _ = network.forward(input)
            for (kind, ms) in network.lastProfile { profiles[kind, default: []].append(ms) }
        }
        return Result(width: width, height: height, threads: threads, milliseconds: times,
                      multiplyAdds: network.multiplyAdds(height: height, width: width),
                      profile: profiles.mapValues { Result.percentile($0, 0.5) },
                      gemmFloorMilliseconds: Self.gemmFloor(network.layerPlan(height: height, width: width).gemms,
                                                             threads: threads, runs: max(3, runs / 2)))
    }

    /// Median time of running just these GEMMs (random data) through the network's GEMM path.
    static func gemmFloor(_ shapes: [(m: Int, n: Int, k: Int)], threads: Int, runs: Int) -> Double {
        configureBLAS()
        let maxA = shapes.map { $0.m * $0.k }.max() ?? 0
        let maxB = shapes.map { $0.k * $0.n }.max() ?? 0
        let maxC = shapes.map { $0.m * $0.n }.max() ?? 0
        let a = UnsafeMutablePointer<Float>.allocate(capacity: maxA), b = UnsafeMutablePointer<Float>.allocate(capacity: maxB)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: maxC)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<maxA { a[i] = Float(i % 7) * 0.01 }
        for i in 0..<maxB { b[i] = Float(i % 5) * 0.1 }
        var times: [Double] = []
        for run in 0...runs {
            let start = DispatchTime.now().uptimeNanoseconds
            for s in shapes { gemm(m: s.m, n: s.n, k: s.k, a: a, b: b, c: c, threads: threads) }
            if run > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }  // first run warms up
        }
        return Result.percentile(times, 0.5)
    }
}

#if canImport(Glibc)
import Glibc
#endif
