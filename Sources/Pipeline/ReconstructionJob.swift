import Export
import Foundation
import Geometry
import Imaging
import Logging
import Mapping
import Network
import Semantics
import Sequences

/// Where per-frame class probabilities come from.
public enum LabelChoice: String, CaseIterable, Sendable {
    /// Recorded probabilities if the sequence has them, else its label images, else none.
    case auto
    case recorded
    case groundTruth = "ground-truth"
    /// An imperfect segmenter simulated from the ground-truth labels.
    case simulated
    case none
}

/// Everything `semfuse reconstruct` needs to know.
public struct ReconstructionRequest: Sendable {
    public var sequence: URL
    public var output: URL?
    public var trajectory: URL?
    public var selection = FrameSelection()
    public var labels = LabelChoice.auto
    public var labelConfidence = 0.7
    /// Class set for sequences that do not declare one.
    public var classSet: ClassSet?
    public var simulatorSeed: UInt64 = 1
    /// nil: semantic when labels are fused, RGB otherwise.
    public var colorMode: MapExport.ColorMode?
    public var ascii = false
    public var onlyStable = true
    public var includeProbabilities = false
    /// Also write `<output>.preview.png`, a rendering of the map.
    public var preview = true
    /// Also write a triangle mesh of the exported surfels.
    public var mesh: MeshRequest?
    /// Confidence of the surfels written when `onlyStable`: the surfels the map keeps.
    public var exportThreshold: Float { fusion.keepConfidence ?? fusion.confidenceThreshold }
    public var reader = ReaderOptions()
    public var fusion = FusionParameters()
    /// nil: the sequence's poses when it has them, else tracking.
    public var poses: ReconstructionOptions.PoseSource?
    /// A model (file or bundled short name, see `ModelLibrary`): the joint network or a
    /// converted segmenter; when set, it supplies the class probabilities and, with predicted
    /// depth, the depth (from itself or from `depthNetwork`).
    public var network: String?
    /// A depth model (file or bundled name) paired with the segmenter for predicted depth.
    public var depthNetwork: String?
    /// How the depth model is fed frames of this sequence's camera.
    public var depthInput = DepthInput.default
    /// Run the network every n-th fused frame. nil: 10 (SemanticFusion's rate) with sensor
    /// depth, 1 with predicted depth.
    public var networkEvery: Int?
    /// nil: sensor depth when the sequence has depth, else predicted depth (needs `network`).
    public var depth: ReconstructionOptions.DepthSource?
    /// Threads for the network (default: the fusion's).
    public var networkThreads: Int?
    /// Arithmetic of the networks' dense convolutions.
    public var networkPrecision = NetworkPrecision.float32
    /// Frame-to-model tracking parameters (with `poses` = track). Their `photometricWeight` is
    /// replaced by `photometricWeight` below, and their `depthNoise` by nil (uniform ICP
    /// weights) for rendered depth unless `automaticICPWeights` is off.
    public var tracking = TrackingParameters()
    /// Weight ICP's points uniformly where the sequence's depth is rendered
    /// (`SequenceCapabilities.depthIsRendered`) instead of by `tracking.depthNoise`: the weights
    /// discount a real sensor's far range, whose error grows beyond its noise; a renderer's far
    /// range is as good as its near (docs/results.md, "ICP weights for rendered depth").
    public var automaticICPWeights = true
    /// Weight of tracking's photometric term; nil picks it from the sequence:
    /// `TrackingParameters.registeredColorPhotometricWeight` when its colour is registered to its
    /// depth (`SequenceCapabilities.colorRegisteredToDepth`), else 0 (geometric ICP only).
    public var photometricWeight: Double?
    /// Relocalise a lost camera from keyframes (with `poses` = track).
    public var relocalise = true
    /// `ReconstructionOptions.newPieceAfter`.
    public var newPieceAfter: Int? = ReconstructionOptions().newPieceAfter
    /// Check unusual tracked frames' image corners (`ReconstructionOptions.cornerCheck`).
    public var cornerCheck = true
    /// Close loops by deforming the map (with `poses` = track).
    public var loopClosure = true
    /// Where to write the trajectory as tracked, before loop closures corrected it.
    public var rawTrajectory: URL?
    /// Decode the next frame on a background thread while the current one is fused.
    public var prefetch = true

    public init(sequence: URL) { self.sequence = sequence }

    /// The first out-of-range value (`InputLimits`), for callers that build a request without
    /// the command line's checks; nil when all are usable.
    public var validationProblem: String? {
        InputLimits.check(Double(fusion.confidenceThreshold), "confidence threshold", in: InputLimits.confidenceThreshold)
            ?? InputLimits.check(Double(fusion.maxDepth), "maximum depth", in: InputLimits.maxDepth, exclusiveLower: true, unit: " m")
            ?? InputLimits.check(labelConfidence, "label confidence", in: 0...1, exclusiveLower: true)
            ?? photometricWeight.flatMap { InputLimits.check($0, "photometric weight", in: InputLimits.photometricWeight) }
            ?? (tracking.depthNoise.map { $0.isUsable } == false
                ? "depth-noise model for ICP weights: needs finite coefficients, base > 0, quadratic ≥ 0 and offset in 0..<100 m" : nil)
            ?? InputLimits.check(fusion.threads, "threads", in: InputLimits.threads)
            ?? reader.depthScale.flatMap { InputLimits.depthScale($0, "depth scale") }
    }
}

/// The result of a reconstruction job: what was written and a human-readable summary.
public struct ReconstructionResult {
    public var outcome: ReconstructionOutcome
    public var reconstruction: Reconstruction
    public var output: URL
    public var trajectory: URL
    public var pointCount: Int
    public var summary: String
    /// 0 on success, 1 when a frame failed, 130 when interrupted.
    public var exitCode: Int32 {
        switch outcome {
        case .completed: return 0
        case .interrupted: return 130
        case .failed: return 1
        }
    }
}

/// Opens a sequence, builds the predictor, runs the reconstruction and writes PLY + trajectory.
/// The map is written whether the run completes, fails part-way or is interrupted.
public enum ReconstructionJob {
    public static func run(_ request: ReconstructionRequest, logger: Logger = Logger(label: "semfuse"),
                           progress: ((ReconstructionProgress) -> Void)? = nil,
                           shouldStop: () -> Bool = { false }) throws -> ReconstructionResult {
        if let problem = request.validationProblem { throw PipelineError.invalidOption(problem) }
        let source = try SequenceLoader.open(request.sequence, options: request.reader)
        logger.info("opened \(source.name) as \(source.layout): \(source.frameCount) frames, \(source.intrinsics)")
        for assumption in source.assumptions { logger.notice("\(assumption)") }
        for warning in source.warnings { logger.warning("\(warning)") }
        let depthSource = request.depth ?? (source.capabilities.hasDepth ? .sensor : .predicted)
        if depthSource == .predicted && request.network == nil {
            throw PipelineError.invalidOption(source.capabilities.hasDepth
                ? "--depth predicted needs --network <weights.safetensors>"
                : "\(source.name): the sequence has no depth; reconstructing from RGB alone needs the network (--network <weights.safetensors>)")
        }
        // Every output is checked before any work: a bad path fails now, not after the run.
        let output = request.output ?? URL(fileURLWithPath: "Output").appendingPathComponent("\(source.name).ply")
        let trajectoryURL = request.trajectory ?? output.deletingPathExtension().appendingPathExtension("trajectory.txt")
        let previewURL = output.deletingPathExtension().appendingPathExtension("preview.png")
        var outputs: [(role: String, url: URL)] = [("map (-o)", output),
                                                   (request.trajectory == nil ? "trajectory (<map>.trajectory.txt)" : "trajectory (--trajectory)", trajectoryURL)]
        if request.preview { outputs.append(("map preview (<map>.preview.png)", previewURL)) }
        if let raw = request.rawTrajectory { outputs.append(("raw trajectory (--trajectory-raw)", raw)) }
        if let mesh = request.mesh {
            outputs.append(("mesh (--mesh)", mesh.output))
            if request.preview {
                outputs.append(("mesh preview (<mesh>.preview.png)", mesh.output.deletingPathExtension().appendingPathExtension("preview.png")))
            }
        }
        try checkOutputs(outputs, sequence: request.sequence)

        let predictor = try makePredictor(request, source: source, depthSource: depthSource)
        if let predictor { logger.info("labels: \(predictor.name), \(predictor.classSet)") } else { logger.info("labels: none (geometry only)") }

        var options = ReconstructionOptions()
        options.selection = request.selection
        options.fusion = request.fusion
        options.poses = request.poses ?? (source.capabilities.hasPoses ? .groundTruth : .track)
        if request.poses == nil {
            logger.notice(options.poses == .groundTruth
                ? "poses: the sequence's ground truth (--poses track to track and score against it)"
                : "poses: tracking (frame-to-model ICP), the sequence has no ground-truth poses")
        }
        options.depth = depthSource
        options.tracking = request.tracking
        options.tracking.photometricWeight = request.photometricWeight
            ?? TrackingParameters.photometricWeight(colorRegisteredToDepth: source.capabilities.colorRegisteredToDepth)
        if request.automaticICPWeights {
            options.tracking.depthNoise = TrackingParameters.depthNoise(depthIsRendered: source.capabilities.depthIsRendered,
                                                                        sensor: request.tracking.depthNoise)
            if options.poses == .track && source.capabilities.depthIsRendered && request.tracking.depthNoise != nil {
                logger.notice("tracking: \(source.layout) depth is rendered, so ICP weights its points uniformly (--icp-weights depth-noise weights them by a Kinect's noise)")
            }
        }
        if options.poses == .track && request.photometricWeight == nil {
            logger.notice(source.capabilities.colorRegisteredToDepth
                ? "tracking: \(source.layout) colour is registered to its depth, so ICP is joined by the photometric term (weight \(String(format: "%g", options.tracking.photometricWeight)); --photometric-weight 0 turns it off)"
                : "tracking: geometric ICP only, as \(source.layout) colour is not registered to its depth (--photometric-weight sets the colour term's weight)")
        }
        options.relocalise = request.relocalise
        options.newPieceAfter = request.newPieceAfter
        if !request.cornerCheck { options.cornerCheck = nil }
        options.loopClosure = request.loopClosure
        if request.rawTrajectory != nil && options.poses != .track {
            logger.warning("--trajectory-raw: poses are not tracked (ground truth), so the raw trajectory equals the trajectory")
        }
        // Frame N+1 is decoded on a background thread while frame N is fused (issue 13).
        let reading = PrefetchingFrameSource(source, readAhead: request.prefetch)
        let reconstruction = try Reconstruction(source: reading, predictor: predictor, options: options)

        let outcome = reconstruction.run(progress: progress, shouldStop: shouldStop)
        if reading.requests > 0 {
            let ahead = request.prefetch ? "\(reading.prefetchHits) of \(reading.requests) frames were decoded ahead, during fusion" : "no read-ahead (--no-prefetch)"
            logger.info("reading: fusion waited \(String(format: "%.2f", reading.waitSeconds)) s for frames (\(String(format: "%.1f", reading.waitSeconds * 1000 / Double(reading.requests))) ms per frame); \(ahead)")
        }
        switch outcome {
        case .completed: break
        case .interrupted(let position):
            logger.warning("interrupted before frame \(position); writing the map fused so far")
        case .failed(let error):
            logger.error("\(error)")
            logger.warning("stopping after \(reconstruction.framesFused) fused frames; writing the map fused so far")
        }

        let colorMode = request.colorMode ?? (predictor != nil ? .semantic : .rgb)
        let cloud = MapExport.pointCloud(reconstruction.map, classSet: predictor?.classSet, colorMode: colorMode,
                                         confidenceThreshold: request.onlyStable ? request.exportThreshold : nil,
                                         includeProbabilities: request.includeProbabilities)
        var comments = ["sequence \(source.name) (\(source.layout))",
                        "frames fused \(reconstruction.framesFused)",
                        "colours \(colorMode.rawValue)",
                        request.onlyStable ? "surfels with confidence >= \(request.exportThreshold)" : "all surfels"]
        if !outcome.isSuccess { comments.append("PARTIAL map: the run stopped early") }
        try PLYWriter.write(cloud, to: output, format: request.ascii ? .ascii : .binaryLittleEndian, comments: comments)
        try TUMTrajectory.write(reconstruction.trajectory.map { StampedPose(timestamp: $0.timestamp, pose: $0.pose) }, to: trajectoryURL,
                                comment: "semfuse trajectory of \(source.name): timestamp tx ty tz qx qy qz qw (camera-to-world)"
                                    + (reconstruction.loopClosures.isEmpty || reconstruction.promotedPiece != nil ? "" : "; corrected by \(reconstruction.loopClosures.count) loop closures")
                                    + (reconstruction.promotedPiece.map { "; the frames of the piece \($0.frameRange), which became the map (larger than the map the run began with)" } ?? ""))
        if let raw = request.rawTrajectory {
            try TUMTrajectory.write(reconstruction.rawTrajectory.map { StampedPose(timestamp: $0.timestamp, pose: $0.pose) }, to: raw,
                                    comment: "semfuse trajectory of \(source.name) as tracked, before loop closures: timestamp tx ty tz qx qy qz qw (camera-to-world)")
        }

        // Pieces tracked while the camera was lost that never joined the map: their surface was
        // seen, so it is written, each in its own frame, rather than dropped.
        var pieceLines: [String] = []
        for left in reconstruction.leftPieces {
            let range = left.report.frameRange
            let name = output.deletingPathExtension().lastPathComponent + ".piece-\(range)"
            let folder = output.deletingLastPathComponent()
            let pieceCloud = MapExport.pointCloud(left.map, classSet: predictor?.classSet, colorMode: colorMode,
                                                  confidenceThreshold: request.onlyStable ? request.exportThreshold : nil,
                                                  includeProbabilities: request.includeProbabilities)
            let pieceURL = folder.appendingPathComponent(name + ".ply")
            let pieceTrajectory = folder.appendingPathComponent(name + ".trajectory.txt")
            do {
                try PLYWriter.write(pieceCloud, to: pieceURL, format: request.ascii ? .ascii : .binaryLittleEndian,
                                    comments: comments + [pieceComment(left.report)])
                try TUMTrajectory.write(left.trajectory.map { StampedPose(timestamp: $0.timestamp, pose: $0.pose) }, to: pieceTrajectory,
                                        comment: "semfuse trajectory of \(left.report.wasTheMap ? "the map the run of \(source.name) began with" : "a separate piece of \(source.name)") (frames \(range)), in its own frame: timestamp tx ty tz qx qy qz qw (camera-to-world)")
                pieceLines.append("Wrote \(pieceURL.path): \(pieceCloud.count) points of "
                                  + (left.report.wasTheMap ? "the map the run began with (frames \(range)), smaller than the piece that became the map"
                                                           : "the separate piece of frames \(range)")
                                  + " (its own frame: nothing placed it in the map), and its trajectory \(pieceTrajectory.lastPathComponent)")
            } catch {
                logger.error("separate piece not written: \(error)")
                pieceLines.append("Separate piece of frames \(range) not written: \(error)")
            }
        }

        var preview: URL?
        if request.preview {
            let url = previewURL
            let threshold = request.onlyStable ? request.exportThreshold : 0
            if let image = MapPreview.render(map: reconstruction.map, classSet: predictor?.classSet,
                                             trajectory: reconstruction.trajectory.map(\.pose), minimumConfidence: threshold) {
                do {
                    try PNGCodec.writeRGB(image, to: url)
                    preview = url
                } catch {
                    logger.warning("preview not written: \(error)")
                }
            }
        }
        var summary = Summary.make(reconstruction: reconstruction, outcome: outcome, output: output, trajectory: trajectoryURL,
                                   cloud: cloud, colorMode: colorMode, ascii: request.ascii)
        for line in pieceLines { summary += "\n" + line }
        if let preview {
            summary += "\nWrote \(preview.path): rendering of the map" + (predictor != nil ? " (class colours | RGB)" : "")
        }
        let network = (predictor as? NetworkPredictor) ?? ((predictor as? ClassMappingPredictor)?.inner as? NetworkPredictor)
        if let network {
            summary += "\n" + network.report
            if reconstruction.framesWithoutPredictedDepth > 0 {
                summary += "; \(reconstruction.framesWithoutPredictedDepth) frames without a network run were not fused (predicted depth)"
            }
        }
        if let score = syntheticScore(source: source, cloud: cloud) {
            summary += "\n" + score
        }
        if var meshRequest = request.mesh {
            // The mesh fuses full probabilities and RGB whatever the point cloud holds, from
            // the same surfels the cloud keeps.
            let surfels = MapExport.pointCloud(reconstruction.map, classSet: predictor?.classSet, colorMode: .rgb,
                                               confidenceThreshold: request.onlyStable ? request.exportThreshold : nil,
                                               includeProbabilities: predictor != nil)
            meshRequest.color = colorMode == .rgb || predictor == nil ? .rgb : .semantic
            meshRequest.parameters.threads = request.fusion.threads
            if request.preview {
                meshRequest.preview = meshRequest.output.deletingPathExtension().appendingPathExtension("preview.png")
                meshRequest.previewTrajectory = reconstruction.trajectory.map(\.pose)
            }
            do {
                let lines = try MeshWriter.write(surfels, source: "map of \(source.name)", request: meshRequest, comments: comments)
                summary += "\n" + lines.joined(separator: "\n")
            } catch {
                logger.error("mesh not written: \(error)")
                summary += "\nMesh not written: \(error)"
            }
            // Each separate piece written beside the map gets its mesh beside the map's (one
            // file each; no per-class split or preview).
            for left in reconstruction.leftPieces {
                let range = left.report.frameRange
                var pieceRequest = meshRequest
                pieceRequest.output = meshRequest.output.deletingPathExtension().appendingPathExtension("piece-\(range).ply")
                pieceRequest.perClassDirectory = nil
                pieceRequest.preview = nil
                let pieceSurfels = MapExport.pointCloud(left.map, classSet: predictor?.classSet, colorMode: .rgb,
                                                        confidenceThreshold: request.onlyStable ? request.exportThreshold : nil,
                                                        includeProbabilities: predictor != nil)
                do {
                    let lines = try MeshWriter.write(pieceSurfels, source: "separate piece of frames \(range)", request: pieceRequest,
                                                     comments: comments + [pieceComment(left.report)])
                    summary += "\n" + (lines.first ?? "Wrote \(pieceRequest.output.path)")
                } catch {
                    logger.error("mesh of the separate piece of frames \(range) not written: \(error)")
                    summary += "\nMesh of the separate piece of frames \(range) not written: \(error)"
                }
            }
        }
        let kept = reconstruction.map.stableCount(threshold: request.exportThreshold)
        if request.onlyStable && reconstruction.map.count > 0 && kept * 10 < reconstruction.map.count {
            summary += "\nNote: only \(kept) of \(reconstruction.map.count) surfels reach confidence \(request.exportThreshold) and were written; "
                + "a surface must be seen in several frames to get there. For short sequences use --all-surfels or a lower --keep-confidence."
        }
        return ReconstructionResult(outcome: outcome, reconstruction: reconstruction, output: output, trajectory: trajectoryURL,
                                    pointCount: cloud.count, summary: summary)
    }

    /// The PLY comment of a piece written beside the map (`frames fused` in the comments before it
    /// is the map's).
    static func pieceComment(_ report: MapPieceReport) -> String {
        report.wasTheMap
            ? "the map the run began with: frames \(report.frameRange) (\(report.frames) fused), smaller than the piece that became the map; its own frame, not the map's"
            : "a separate piece: frames \(report.frameRange) (\(report.frames) fused), tracked while the camera was lost from the map; its own frame, not the map's"
    }

    static func makePredictor(_ request: ReconstructionRequest, source: FrameSource,
                              depthSource: ReconstructionOptions.DepthSource = .sensor) throws -> Predictor? {
        if let weights = request.network {
            let threads = request.networkThreads ?? request.fusion.threads
            let segmenter = try ModelLibrary.load(weights, threads: threads, precision: request.networkPrecision)
            let depthModel = try request.depthNetwork.map {
                try ModelLibrary.load($0, threads: threads, depthInput: request.depthInput, precision: request.networkPrecision)
            }
            let network = try NetworkPredictor(segmenter: segmenter, depthModel: depthModel,
                                               every: request.networkEvery ?? (depthSource == .predicted ? 1 : 10),
                                               predictsDepth: depthSource == .predicted, intrinsics: source.intrinsics)
            // With the network, its class probabilities are always fused (--labels is for sequences).
            let predictor: Predictor = network
            if let wanted = request.classSet, wanted != network.classSet {
                guard let mapping = ClassMapping(from: network.classSet, to: wanted) else {
                    throw PipelineError.invalidOption("--class-set \(wanted.name): cannot map the network's \(network.classSet.name) classes onto it")
                }
                return ClassMappingPredictor(predictor, mapping: mapping)
            }
            return predictor
        }
        let native = source.classSet ?? request.classSet ?? .nyu40
        guard let predictor = try makeNativePredictor(request, source: source, classSet: native) else { return nil }
        // A different class set was asked for than the sequence's: map onto it (NYU-40 → NYU-13).
        if let wanted = request.classSet, wanted != native {
            guard let mapping = ClassMapping(from: native, to: wanted) else {
                throw PipelineError.invalidOption("--class-set \(wanted.name): cannot map the sequence's \(native.name) classes onto it")
            }
            return ClassMappingPredictor(predictor, mapping: mapping)
        }
        return predictor
    }

    static func makeNativePredictor(_ request: ReconstructionRequest, source: FrameSource, classSet: ClassSet) throws -> Predictor? {
        let caps = source.capabilities
        switch request.labels {
        case .none:
            return nil
        case .auto:
            if caps.hasProbabilities { return RecordedPredictor(classSet: classSet) }
            if caps.hasLabels { return try LabelImagePredictor(classSet: classSet, confidence: request.labelConfidence) }
            return nil
        case .recorded:
            guard caps.hasProbabilities else { throw PipelineError.missingLabels(sequence: source.name, source: "recorded") }
            return RecordedPredictor(classSet: classSet)
        case .groundTruth:
            guard caps.hasLabels else { throw PipelineError.missingLabels(sequence: source.name, source: "ground-truth") }
            return try LabelImagePredictor(classSet: classSet, confidence: request.labelConfidence)
        case .simulated:
            guard caps.hasLabels else { throw PipelineError.missingLabels(sequence: source.name, source: "simulated") }
            return SimulatedSegmenterPredictor(classSet: classSet, seed: request.simulatorSeed)
        }
    }

    /// Fails before any work when an output cannot be written, instead of after a long run:
    /// outputs that name the same file (one would silently replace the other), a folder that
    /// cannot be created or written, or a path holding something other than a regular file (a
    /// device, FIFO, socket or folder, which the atomic write refuses anyway), or a file of the
    /// input sequence (`--trajectory seq/poses.txt` would destroy the ground truth it scores against).
    static func checkOutputs(_ outputs: [(role: String, url: URL)], sequence: URL) throws {
        do {
            try FileData.checkDistinctOutputs(outputs)
            for output in outputs { try FileData.checkNotInput(output, input: sequence, inputRole: "input sequence") }
            for (_, url) in outputs {
                let target = try FileData.checkOutputFile(url)
                let directory = target.deletingLastPathComponent()
                try FileData.prepareFolder(directory, for: url.path)
                guard FileManager.default.isWritableFile(atPath: directory.path) else {
                    throw ImagingError.writeFailed(path: url.path, reason: "folder \(directory.path) is not writable")
                }
            }
        } catch let error as ImagingError {
            throw PipelineError.invalidOption(error.description)
        }
    }

    /// For sequences rendered by `semfuse synth` the true scene is known: score the exported
    /// points (distance to the true surfaces, label accuracy against the nearest surface's class).
    static func syntheticScore(source: FrameSource, cloud: PointCloud) -> String? {
        guard let reader = source as? SemfuseSequenceReader, reader.manifest.generator?["tool"] == "semfuse synth",
              let score = SyntheticScene.livingRoom().score(positions: cloud.positions, labels: cloud.labels,
                                                            classMap: cloud.classSet.flatMap { ClassMapping(from: .nyu40, to: $0)?.table })
        else { return nil }
        var line = String(format: "  ground truth (synthetic scene): median distance to the true surfaces %.2f mm", score.medianDistance * 1000)
        if let accuracy = score.labelAccuracy { line += String(format: ", map label accuracy %.1f %%", accuracy * 100) }
        return line
    }
}
