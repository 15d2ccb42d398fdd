import Foundation
import Geometry
import Mapping
import Semantics
import Sequences

/// Measures fusion + label update speed on a real sequence with its ground-truth poses.
///
/// Frame reading is excluded from the timings (it is I/O and codec work, not fusion). Class
/// probabilities are a fixed pseudo-random 40-class map at output stride 4, the shape the joint
/// network produces, so the label update costs what it will cost with the network.
public struct FusionBenchmark {
    public struct Run: Sendable {
        public var threads: Int
        public var frames: Int
        public var perFrameMilliseconds: [Double]
        public var stageMilliseconds: [String: [Double]]
        public var surfelCount: Int
        public var stableCount: Int
        public var bytesPerSurfel: Int

        public var median: Double { Self.percentile(perFrameMilliseconds, 0.5) }
        public var p10: Double { Self.percentile(perFrameMilliseconds, 0.1) }
        public var p90: Double { Self.percentile(perFrameMilliseconds, 0.9) }
        public var framesPerSecond: Double { median > 0 ? 1000 / median : 0 }
        /// Mean time per frame: unlike the median, it counts the work done only every few frames
        /// (the map's spatial reordering).
        public var mean: Double { Self.mean(perFrameMilliseconds) }
        public static func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }
        /// A statistic (default: the median) of the first and of the last `window` frames (issue
        /// 12's "flat cost as the map grows": frames 400-499 against 0-99), nil when the run has
        /// fewer than 2 windows.
        public func growth(window: Int = 100, _ statistic: ([Double]) -> Double = { percentile($0, 0.5) }) -> (first: Double, last: Double)? {
            guard window > 0, perFrameMilliseconds.count >= 2 * window else { return nil }
            return (statistic(Array(perFrameMilliseconds.prefix(window))), statistic(Array(perFrameMilliseconds.suffix(window))))
        }

        public static func percentile(_ values: [Double], _ q: Double) -> Double {
            guard !values.isEmpty else { return 0 }
            let s = values.sorted()
            return s[min(s.count - 1, max(0, Int((Double(s.count - 1) * q).rounded())))]
        }
    }

    public let source: FrameSource
    public let positions: [Int]
    public let classCount: Int
    /// How the surfels store their class distributions.
    public var labelStorage = LabelStorage.standard

    public init(source: FrameSource, positions: [Int], classCount: Int = 40) {
        self.source = source
        self.positions = positions
        self.classCount = classCount
    }

    /// A softmax-like probability map with a dominant class per 8x8 block.
    static func syntheticProbabilities(width: Int, height: Int, classCount: Int, seed: UInt64) -> ClassProbabilityMap {
        var state = seed &+ 0x9E3779B97F4A7C15
        func next() -> UInt64 {
            state &+= 0x9E3779B97F4A7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            return z ^ (z >> 31)
        }
        var values = [Float](repeating: 0, count: width * height * classCount)
        for y in 0..<height {
            for x in 0..<width {
                let base = (y * width + x) * classCount
                var sum: Float = 0
                let dominant = Int(((x / 8) * 31 + (y / 8) * 17) % classCount)
                for c in 0..<classCount {
                    let v = Float(next() % 1000) / 1000 * 0.05 + (c == dominant ? 2 : 0.01)
                    values[base + c] = v
                    sum += v
                }
                for c in 0..<classCount { values[base + c] /= sum }
            }
        }
        return ClassProbabilityMap(width: width, height: height, classCount: classCount, values: values)
    }

    private func makeFusion(threads: Int) -> (SurfelFusion, FusionParameters) {
        var parameters = FusionParameters()
        parameters.threads = threads
        parameters.labelStorage = labelStorage
        return (SurfelFusion(intrinsics: source.intrinsics, classCount: classCount, parameters: parameters), parameters)
    }

    private var probabilities: ClassProbabilityMap {
        let intr = source.intrinsics
        return Self.syntheticProbabilities(width: (intr.width + 3) / 4, height: (intr.height + 3) / 4, classCount: classCount, seed: 42)
    }

    /// Reads the frame at `position` (not timed) and fuses it; returns the report and the
    /// milliseconds the fusion took.
    private func fuse(_ position: Int, into fusion: SurfelFusion, probabilities: ClassProbabilityMap) throws -> (SurfelFusion.FrameReport, Double) {
        let frame = try source.frame(at: position)
        if let error = frame.poseError { throw error }
        guard let depth = frame.depth, let pose = frame.worldFromCamera else {
            throw PipelineError.invalidOption("bench fusion needs depth and ground-truth poses (\(frame.source))")
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let report = try fusion.integrate(depth: depth, color: frame.color, worldFromCamera: pose,
                                          probabilities: probabilities, source: frame.source)
        return (report, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }

    /// Issue 12's flat cost with the machine's drift taken out of the ratio: the first and the
    /// last `window` frames fused in alternation by two maps, one new and one already fed every
    /// frame before the last window (untimed), so both windows meet the same machine.
    public struct InterleavedGrowth: Sendable {
        /// Milliseconds per frame of the first and of the last window, in frame order.
        public var first: [Double], last: [Double]
        public var firstMedian: Double { Run.percentile(first, 0.5) }
        public var lastMedian: Double { Run.percentile(last, 0.5) }
        /// Frame k of the last window over frame k of the first (fused next to each other).
        public var pairRatios: [Double] { zip(last, first).map { $0 / $1 } }
        /// Surfels of the two maps at the end: the first window's map and the whole selection's.
        public var firstSurfels = 0, lastSurfels = 0
    }

    /// See `InterleavedGrowth`. The two frames of a pair swap order from pair to pair. Nil when
    /// the selection has fewer than two windows.
    public func interleavedGrowth(threads: Int, window: Int = 100, progress: ((Int, Int) -> Void)? = nil) throws -> InterleavedGrowth? {
        guard window > 0, positions.count >= 2 * window else { return nil }
        let probabilities = self.probabilities
        let (early, _) = makeFusion(threads: threads), (late, _) = makeFusion(threads: threads)
        let lastStart = positions.count - window
        let total = lastStart + window
        for (k, position) in positions.prefix(lastStart).enumerated() {
            _ = try fuse(position, into: late, probabilities: probabilities)
            progress?(k + 1, total)
        }
        var result = InterleavedGrowth(first: [], last: [])
        for k in 0..<window {
            if k % 2 == 0 {
                result.first.append(try fuse(positions[k], into: early, probabilities: probabilities).1)
                result.last.append(try fuse(positions[lastStart + k], into: late, probabilities: probabilities).1)
            } else {
                result.last.append(try fuse(positions[lastStart + k], into: late, probabilities: probabilities).1)
                result.first.append(try fuse(positions[k], into: early, probabilities: probabilities).1)
            }
            progress?(lastStart + k + 1, total)
        }
        result.firstSurfels = early.map.count
        result.lastSurfels = late.map.count
        return result
    }

    /// Fuses the frames with `threads` workers; `progress` is called after each frame.
    public func run(threads: Int, progress: ((Int, Int) -> Void)? = nil) throws -> Run {
        let (fusion, parameters) = makeFusion(threads: threads)
        let probabilities = self.probabilities
        var times = [Double]()
        var stages: [String: [Double]] = [:]
        for (k, position) in positions.enumerated() {
            let (report, milliseconds) = try fuse(position, into: fusion, probabilities: probabilities)
            times.append(milliseconds)
            stages["preprocess", default: []].append(report.timings.preprocess * 1000)
            stages["index maps", default: []].append(report.timings.indexMap * 1000)
            stages["association+merge", default: []].append(report.timings.fusion * 1000)
            stages["label update", default: []].append(report.timings.labels * 1000)
            stages["cleanup", default: []].append(report.timings.cleanup * 1000)
            stages["spatial order", default: []].append(report.timings.ordering * 1000)
            progress?(k + 1, positions.count)
        }
        return Run(threads: threads, frames: positions.count, perFrameMilliseconds: times, stageMilliseconds: stages,
                   surfelCount: fusion.map.count, stableCount: fusion.map.stableCount(threshold: parameters.confidenceThreshold),
                   bytesPerSurfel: fusion.map.bytesPerSurfel)
    }
}
