import ArgumentParser
import Foundation
import Mapping
import Pipeline
import Sequences

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed (build with -c release).",
        subcommands: [NetworkBench.self, FusionBench.self, TrackingBench.self, MeshBench.self, ReadBench.self])
}

struct FusionBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusion",
        abstract: "Fusion + label update speed on a real sequence with ground-truth poses.",
        discussion: """
        Fuses the frames with their ground-truth poses and a 40-class probability map at output \
        stride 4 (the joint network's shape) on every frame, and prints the median time per frame, \
        frames per second, the spread, the mean (which, unlike the median, counts the map's \
        spatial reordering every 25 frames), a per-stage breakdown, the surfel count and bytes per \
        surfel, and with 200 frames or more the medians and means of the first and last 100 (how \
        the cost grows with the map; --interleaved-growth measures that ratio again with the two \
        windows fused in alternation, which this machine's drift hardly moves). Frame reading is not timed. The same frames are also fused with one thread as the \
        in-run baseline, so the speed-up of the parallel kernels is a ratio measured on the same \
        machine at the same time.
        """)

    @Argument(help: "Sequence folder (default: ../shared/data/7scenes-redkitchen).")
    var sequence: String = "../shared/data/7scenes-redkitchen"

    @Option(help: "Frames start:end (end exclusive).")
    var frames: String = "0:500"

    @Option(help: "Worker threads for the main run (default: all cores).")
    var threads: Int?

    @Flag(help: "Skip the single-thread baseline run.")
    var noBaseline = false

    @Option(help: ArgumentHelp("How each surfel stores its class distribution: auto (log8 up to 47 classes, top4 beyond), log8 (one byte per class: its log-probability below the best class's), top<k> (the k most likely classes and a shared remainder) or dense (every class as Float32, SemanticFusion's table).", valueName: "auto|log8|top4|dense"))
    var labelStorage: String = LabelStorage.standard.description

    @Flag(help: ArgumentHelp("Also measure how the cost grows with the two windows interleaved: a second map, fed every frame before the last 100 untimed, fuses those while a new map fuses the first 100, frame for frame in alternation, so the ratio does not follow the machine's drift between the start and the end of a run (needs 200 frames)."))
    var interleavedGrowth = false

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        try limit(threads.flatMap { InputLimits.check($0, "--threads", in: InputLimits.threads) })
        _ = try parseLabelStorage(labelStorage)
    }

    func run() throws {
        let source = try SequenceLoader.open(URL(fileURLWithPath: sequence), options: ReaderOptions())
        let positions = try FrameSelection(parsing: frames).positions(count: source.frameCount)
        guard !positions.isEmpty else { throw CLIError("no frames selected") }
        var bench = FusionBenchmark(source: source, positions: positions)
        bench.labelStorage = try parseLabelStorage(labelStorage)
        let mainThreads = threads ?? defaultThreads()
        let show: (Int, Int) -> Void = { done, total in
            if !json && (done % 50 == 0 || done == total) {
                FileHandle.standardError.write(Data("  \(done)/\(total) frames\n".utf8))
            }
        }
        if !json { print("bench fusion: \(source.name), \(positions.count) frames at \(source.intrinsics.width)x\(source.intrinsics.height)") }
        let main = try bench.run(threads: mainThreads, progress: show)
        let baseline = noBaseline ? nil : try bench.run(threads: 1, progress: show)
        var interleaved: FusionBenchmark.InterleavedGrowth?
        if interleavedGrowth {
            if !json { FileHandle.standardError.write(Data("  the first and last 100 frames, interleaved:\n".utf8)) }
            interleaved = try bench.interleavedGrowth(threads: mainThreads, progress: show)
            if interleaved == nil { throw CLIError("--interleaved-growth needs at least 200 frames") }
        }
        if json {
            var object: [String: Any] = [
                "sequence": source.name, "frames": main.frames, "width": source.intrinsics.width, "height": source.intrinsics.height,
                "threads": main.threads, "median_ms": main.median, "mean_ms": main.mean, "p10_ms": main.p10, "p90_ms": main.p90,
                "frames_per_second": main.framesPerSecond, "surfels": main.surfelCount, "stable_surfels": main.stableCount,
                "bytes_per_surfel": main.bytesPerSurfel, "label_storage": bench.labelStorage.resolved(classCount: bench.classCount).description,
            ]
            if let baseline { object["single_thread_median_ms"] = baseline.median; object["speedup_vs_single_thread"] = baseline.median / main.median }
            if let growth = main.growth() {
                object["first_100_median_ms"] = growth.first; object["last_100_median_ms"] = growth.last
                object["last_over_first"] = growth.last / growth.first
            }
            if let growth = main.growth(FusionBenchmark.Run.mean) {
                object["first_100_mean_ms"] = growth.first; object["last_100_mean_ms"] = growth.last
            }
            if let interleaved {
                let ratios = interleaved.pairRatios
                object["interleaved_first_100_median_ms"] = interleaved.firstMedian
                object["interleaved_last_100_median_ms"] = interleaved.lastMedian
                object["interleaved_last_over_first"] = interleaved.lastMedian / interleaved.firstMedian
                object["interleaved_pair_ratio_median"] = FusionBenchmark.Run.percentile(ratios, 0.5)
                object["interleaved_pair_ratio_p10"] = FusionBenchmark.Run.percentile(ratios, 0.1)
                object["interleaved_pair_ratio_p90"] = FusionBenchmark.Run.percentile(ratios, 0.9)
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        func line(_ r: FusionBenchmark.Run) -> String {
            String(format: "%d thread%@: median %.1f ms/frame (%.1f frames/s), p10 %.1f, p90 %.1f ms, mean %.1f ms",
                   r.threads, r.threads == 1 ? "" : "s", r.median, r.framesPerSecond, r.p10, r.p90, r.mean)
        }
        func stages(_ r: FusionBenchmark.Run) {
            for (name, values) in r.stageMilliseconds.sorted(by: { $0.key < $1.key }) {
                var text = "  " + name + String(repeating: " ", count: max(1, 20 - name.count))
                    + String(format: "median %.2f ms, mean %.2f", FusionBenchmark.Run.percentile(values, 0.5), FusionBenchmark.Run.mean(values))
                if values.count >= 200 {
                    text += String(format: " (first 100 frames %.2f, last 100 %.2f)", FusionBenchmark.Run.percentile(Array(values.prefix(100)), 0.5),
                                   FusionBenchmark.Run.percentile(Array(values.suffix(100)), 0.5))
                }
                print(text)
            }
        }
        print(line(main))
        stages(main)
        if let baseline {
            print(line(baseline))
            stages(baseline)
            print(String(format: "speed-up of %d threads over 1: %.2fx", main.threads, baseline.median / main.median))
        }
        if let growth = main.growth() {
            print(String(format: "as the map grows: median %.1f ms over the first 100 frames, %.1f ms over the last 100 (%.2fx)",
                         growth.first, growth.last, growth.last / growth.first))
            if let means = main.growth(FusionBenchmark.Run.mean) {
                print(String(format: "                  mean %.1f ms over the first 100 frames, %.1f ms over the last 100 (%.2fx)",
                             means.first, means.last, means.last / means.first))
            }
        }
        if let interleaved {
            let ratios = interleaved.pairRatios
            print(String(format: "interleaved: median %.1f ms over the first 100 frames, %.1f ms over the last 100 (%.2fx); frame pairs %.2fx (p10 %.2f, p90 %.2f)",
                         interleaved.firstMedian, interleaved.lastMedian, interleaved.lastMedian / interleaved.firstMedian,
                         FusionBenchmark.Run.percentile(ratios, 0.5), FusionBenchmark.Run.percentile(ratios, 0.1),
                         FusionBenchmark.Run.percentile(ratios, 0.9)))
        }
        print(String(format: "real-time ratio at 30 frames/s: %.2f (>= 1 is real time)", main.framesPerSecond / 30))
        print("surfels: \(main.surfelCount) (\(main.stableCount) stable), \(main.bytesPerSurfel) bytes per surfel (labels \(bench.labelStorage.resolved(classCount: bench.classCount))), \(String(format: "%.0f", Double(main.surfelCount * main.bytesPerSurfel) / 1e6)) MB")
    }

    private func defaultThreads() -> Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}

struct TrackingBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracking",
        abstract: "Tracking accuracy (ATE) and speed on a real sequence with ground-truth poses.",
        discussion: """
        Tracks the frames from the first ground-truth pose with frame-to-model ICP and fuses them, \
        at full resolution and at half resolution, and prints the absolute trajectory error \
        (RMSE, median, max after rigid alignment) and the median time per frame for tracking alone \
        and for tracking + loop closure + fusion, with the loop closure's own cost per frame and \
        the time of each deformation.
        """)

    @Argument(help: "Sequence folder with ground-truth poses (default: ../shared/data/7scenes-redkitchen).")
    var sequence: String = "../shared/data/7scenes-redkitchen"

    @Option(help: "Frames start:end (end exclusive).")
    var frames: String = "0:500"

    @Option(help: "Resolutions to run: full, half or both.")
    var resolution: String = "both"

    @Option(help: ArgumentHelp("Weight of the photometric term (0: geometric ICP only). Default: as reconstruct, 1 where the sequence's colour is registered to its depth, else 0.", valueName: "weight"))
    var photometricWeight: Double?

    @Option(help: ICPWeights.help)
    var icpWeights: ICPWeights?

    @Flag(help: "With --photometric-weight > 0: also run geometric-only ICP as an in-run baseline.")
    var compareGeometric = false

    @Option(help: "Confidence surfels need to be part of the model the tracker aligns to once the map is --model-warmup frames old (default: the stable threshold, 10).")
    var modelConfidence: Float?

    @Option(help: "Tracking: frames over which the confidence a surfel needs to be in the model the tracker aligns to rises from 0 to the stable threshold, so a young map is tracked against everything it has fused rather than against its last frame; 0 requires stable surfels from the first frame (ElasticFusion).")
    var modelWarmup: Int = FusionParameters().trackingModelWarmup

    @Option(help: "ICP convergence: stop a level once an update is smaller than this.")
    var convergence: Double = TrackingParameters().convergence

    @Option(help: "Cleanup: spare surfels of at least this confidence from ElasticFusion's 20-frame timeout, as `reconstruct --keep-confidence` (reconstruct's default is 1). Default here: none, ElasticFusion's rule, as this bench's earlier figures. Loop closure behaves differently under the two rules (docs/results.md, \"Global loop closure\").")
    var keepConfidence: Float?

    @Flag(name: .customLong("no-loop-closure"), help: "Do not close loops (ElasticFusion's local and global loop closure by map deformation, with the keyframes global closure needs), as `reconstruct --no-loop-closure`.")
    var noLoopClosure = false

    @Flag(help: "Print one JSON line with the results instead of text.")
    var json = false

    func validate() throws {
        guard ["full", "half", "both"].contains(resolution) else { throw ValidationError("--resolution must be full, half or both") }
        try limit(photometricWeight.flatMap { InputLimits.check($0, "--photometric-weight", in: InputLimits.photometricWeight) })
        try limit(modelConfidence.flatMap { InputLimits.check(Double($0), "--model-confidence", in: InputLimits.confidenceThreshold) })
        try limit(InputLimits.check(modelWarmup, "--model-warmup", in: InputLimits.modelWarmup))
        try limit(keepConfidence.flatMap { InputLimits.check(Double($0), "--keep-confidence", in: InputLimits.confidenceThreshold) })
        try limit(InputLimits.check(convergence, "--convergence", in: 0...1, exclusiveLower: true))
    }

    func run() throws {
        let url = URL(fileURLWithPath: sequence)
        let probe = try SequenceLoader.open(url, options: ReaderOptions())
        let positions = try FrameSelection(parsing: frames).positions(count: probe.frameCount)
        guard !positions.isEmpty else { throw CLIError("no frames selected") }
        if !json { print("bench tracking: \(probe.name), \(positions.count) frames") }
        var rows: [[String: Any]] = []
        let scales = resolution == "full" ? [1] : resolution == "half" ? [2] : [1, 2]
        let photometricWeight = self.photometricWeight
            ?? TrackingParameters.photometricWeight(colorRegisteredToDepth: probe.capabilities.colorRegisteredToDepth)
        let icpWeights = self.icpWeights
            ?? (TrackingParameters.depthNoise(depthIsRendered: probe.capabilities.depthIsRendered) == nil ? .uniform : .depthNoise)
        var variants = [("ICP + photometric (weight \(photometricWeight))", photometricWeight)]
        if photometricWeight == 0 { variants = [("ICP only", 0)] }
        if compareGeometric && photometricWeight > 0 { variants.append(("ICP only", 0)) }
        for scale in scales {
          for (label, weight) in variants {
            let source = scale == 1 ? probe : try DownsampledSource(probe, factor: scale)
            var parameters = TrackingParameters()
            parameters.photometricWeight = weight
            parameters.convergence = convergence
            parameters.depthNoise = icpWeights.noise
            var bench = TrackingBenchmark(source: source, positions: positions, parameters: parameters)
            bench.modelConfidence = modelConfidence
            bench.modelWarmup = modelWarmup
            bench.keepConfidence = keepConfidence
            bench.loopClosure = !noLoopClosure
            let result = try bench.run { done, total in
                if done % 100 == 0 || done == total { FileHandle.standardError.write(Data("  \(done)/\(total) frames\n".utf8)) }
            }
            let loopMedian = FusionBenchmark.Run.percentile(result.loopClosureMilliseconds, 0.5)
            if json {
                var row: [String: Any] = [
                    "width": source.intrinsics.width, "height": source.intrinsics.height, "photometric_weight": weight,
                    "icp_weights": icpWeights.rawValue,
                    "tracking_median_ms": result.trackingMedian, "tracking_p10_ms": result.trackingP10, "tracking_p90_ms": result.trackingP90,
                    "tracking_fusion_median_ms": result.totalMedian, "frames_per_second": 1000 / max(result.totalMedian, 1e-9),
                    "failures": result.failures, "loop_closure": !noLoopClosure,
                    "loop_closure_median_ms": loopMedian,
                    "loop_closure_p90_ms": FusionBenchmark.Run.percentile(result.loopClosureMilliseconds, 0.9),
                    "loop_closures": result.loopClosures.count,
                    "deformation_ms": result.loopClosures.map { $0.seconds * 1000 },
                    "global_loop_closures": result.loopClosures.filter { $0.kind == .global }.count,
                    "closures": result.loopClosures.map { c -> [String: Any] in
                        ["tick": c.tick, "kind": c.kind.rawValue, "correction_mm": c.correctionMetres * 1000,
                         "correction_deg": c.correctionDegrees, "residual_before_mm": c.residualBefore * 1000,
                         "residual_after_mm": c.residualAfter * 1000, "constraints": c.constraints, "ms": c.seconds * 1000]
                    },
                    "rejections": Dictionary(uniqueKeysWithValues: result.loopClosureRejections.map { ($0.key.rawValue, $0.value) }),
                ]
                if let keepConfidence { row["keep_confidence"] = Double(keepConfidence) }
                row["model_warmup"] = modelWarmup
                if let ate = result.ate { row["ate_rmse_mm"] = ate.rmse * 1000; row["ate_median_mm"] = ate.median * 1000; row["ate_max_mm"] = ate.max * 1000 }
                rows.append(row)
                continue
            }
            let size = "\(source.intrinsics.width)x\(source.intrinsics.height) \(label), \(icpWeights.rawValue) weights"
            print(String(format: "%@: tracking median %.1f ms (p10 %.1f, p90 %.1f), tracking + fusion median %.1f ms (%.1f frames/s), %d failures",
                         size, result.trackingMedian, result.trackingP10, result.trackingP90, result.totalMedian,
                         1000 / max(result.totalMedian, 1e-9), result.failures))
            if let ate = result.ate { print("  \(ate)") }
            if !noLoopClosure {
                let refused = LoopCloser.Rejection.tally(result.loopClosureRejections)
                print(String(format: "  loop closure: median %.2f ms per frame (p90 %.2f), %d closures%@%@", loopMedian,
                             FusionBenchmark.Run.percentile(result.loopClosureMilliseconds, 0.9), result.loopClosures.count,
                             refused.isEmpty ? "" : " (registrations refused: \(refused))",
                             result.loopClosures.isEmpty ? "" : ":"))
                // How far each closure moved the camera and bent the map: a closure far larger than
                // the others is the first thing to look at when a run's ATE jumps.
                for c in result.loopClosures {
                    print(String(format: "    tick %d, %@: camera corrected %.1f mm %.2f deg, constraints %d at %.1f → %.1f mm, %.0f ms",
                                 c.tick, c.kind.rawValue, c.correctionMetres * 1000, c.correctionDegrees, c.constraints,
                                 c.residualBefore * 1000, c.residualAfter * 1000, c.seconds * 1000))
                }
            }
            for (stage, values) in result.stageMilliseconds.sorted(by: { $0.key < $1.key }) {
                print(String(format: "  %@ median %.1f ms", stage, FusionBenchmark.Run.percentile(values, 0.5)))
            }
            let iterations = result.iterations.sorted()
            if !iterations.isEmpty {
                print(String(format: "  Gauss-Newton iterations per frame: median %d, mean %.1f (of %d at most)", iterations[iterations.count / 2],
                             Double(iterations.reduce(0, +)) / Double(iterations.count), TrackingParameters().iterations.reduce(0, +)))
            }
          }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["results": rows], options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
