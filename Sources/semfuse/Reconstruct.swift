import ArgumentParser
import Foundation
import Geometry
import Logging
import Mapping
import Network
import Pipeline
import Semantics
import Sequences

struct Reconstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fuse a sequence into a semantic surfel map and write it as PLY.",
        discussion: """
        Reads the sequence, fuses every selected frame into an ElasticFusion-style surfel map with \
        the sequence's ground-truth poses, fuses per-pixel class probabilities into each surfel \
        (SemanticFusion's Bayesian update), and writes the stable surfels as a PLY point cloud \
        plus the camera trajectory (TUM format) beside it.

        If reading a frame fails or the run is interrupted (Ctrl-C), the map fused so far is still \
        written, and the command exits with a non-zero status.
        """)

    @Argument(help: "Sequence folder (semfuse, TUM RGB-D, 7-Scenes/3DMatch or ICL-NUIM layout) or recording (ElasticFusion .klg log, ScanNet .sens scan).")
    var sequence: String

    @Option(name: .shortAndLong, help: "Output PLY file. Default: Output/<sequence name>.ply")
    var output: String?

    @Option(help: "Camera trajectory file (TUM format). Default: beside the PLY, <name>.trajectory.txt. With --poses track it holds the poses as corrected by loop closures.")
    var trajectory: String?

    @Option(name: .customLong("trajectory-raw"), help: "Also write the tracked trajectory as it was before any loop closure corrected it (TUM format; with --poses track).")
    var trajectoryRaw: String?

    @Option(help: "Frames to use as start:end (end exclusive), e.g. 0:300, 100:, :50.")
    var frames: String?

    @Option(help: "Use every n-th selected frame.")
    var every: Int = 1

    @Option(help: "Camera poses: 'groundtruth' (the sequence's own) or 'track' (frame-to-model ICP; ground truth is then only used to report the trajectory error). Default: groundtruth when the sequence has poses, else track.")
    var poses: String?

    @Option(help: """
        Per-frame class probabilities: 'auto' (recorded if the sequence has them, else ground-truth \
        labels, else none), 'recorded', 'ground-truth', 'simulated' (an imperfect segmenter \
        simulated from the ground-truth labels), or 'none'.
        """)
    var labels: String = "auto"

    @Option(help: """
        Segmentation model: a file or a bundled model's short name ('deeplab': DeepLab-v3 \
        MobileNet-v2, ADE20K, fused in ade32 unless --class-set says nyu40 or nyu13), or the joint \
        network's weights (.safetensors, see tools/convert_checkpoint.py; NYU-40 labels and depth). \
        Its class probabilities are fused instead of --labels.
        """)
    var network: String?

    @Option(help: "Depth model for --depth predicted, paired with the --network segmenter: a file or 'fastdepth' (bundled, NYU Depth v2).")
    var depthNetwork: String?

    @Option(help: "Depth model input: 'native' (the model's own size, e.g. 224x224; the default), 'image' (the frame's size) or WIDTHxHEIGHT.")
    var depthInput: String?

    @Option(help: "Central fraction of the frame fed to the depth model (1 = whole frame).")
    var depthCrop: Double?

    @Option(help: "The depth model's training focal length in pixels of its native input; depth is scaled by the frame's focal length over it. 'none' turns the correction off. Default: the value stored in the model file, if any (the bundled FastDepth stores none: on 7-Scenes focal scaling made its depth worse, see docs/results.md).")
    var depthFocal: String?

    @Option(help: precisionHelp)
    var precision: NetworkPrecision = .float32

    @Option(help: "Run the network on every n-th fused frame. Default: 10 (SemanticFusion's rate) with sensor depth, 1 with predicted depth (frames without a network run are then not fused).")
    var networkEvery: Int?

    @Option(help: "Depth to fuse: 'sensor' or 'predicted' (the network's; reconstruction from RGB alone). Default: sensor when the sequence has depth, else predicted.")
    var depth: String?

    @Option(help: "Probability given to the labelled class when turning label images into probabilities.")
    var labelConfidence: Double = 0.7

    @Option(help: "Class set of the map: ade32, nyu40 or nyu13. Probabilities of a finer set are mapped onto a coarser one (summed per class: ade32 → nyu40 → nyu13, see docs/class-sets.md). Default: the sequence's or the network's own.")
    var classSet: String?

    @Option(help: "Seed of the simulated segmenter (with --labels simulated).")
    var seed: UInt64 = 1

    @Option(help: "Point colours in the PLY: 'semantic' (class palette) or 'rgb'. Default: semantic when labels are fused.")
    var color: String?

    @Flag(help: "Write ASCII PLY instead of binary little-endian.")
    var ascii = false

    @Flag(help: "Write all surfels, not only stable ones (confidence >= threshold).")
    var allSurfels = false

    @Flag(help: "Also write every class probability per point (prob_0 ...).")
    var probabilities = false

    @Option(help: "Also write a triangle mesh of the map to this PLY (per-vertex label, label_confidence and colours fused from the surfels; see 'semfuse mesh --help').")
    var mesh: String?

    @Option(help: "Also write one mesh per class into this folder (<id>-<name>.ply).")
    var meshPerClass: String?

    @Option(help: "Mesh voxel edge in metres. Default: 0.85 times the median surfel radius (within 2 mm - 5 cm); labels and colours are fused at the radius's own scale.")
    var voxelSize: Double?

    @Option(help: "Mesh coarsening: towards edges this many times the local surfel spacing, where the surfels are sparser than the voxels (0: keep marching cubes' even spread; see 'semfuse mesh --help'). Default: 1.")
    var coarsen: Double?

    @Flag(inversion: .prefixedNo, help: "Write <output>.preview.png, a rendering of the map (class colours | RGB).")
    var preview = true

    @Option(help: "Intrinsics override: 'fx,fy,cx,cy' or a file (one line 'fx fy cx cy' or a 3x3 matrix). fx must be positive; fy may be negative (y-up images such as ICL-NUIM's). Write a leading minus as --intrinsics=...")
    var intrinsics: String?

    @Option(help: "Depth units per metre, overriding the layout's default (7-Scenes 1000, TUM/ICL 5000); 1-100000.")
    var depthScale: Double?

    @Option(help: "Ignore depth beyond this many metres (ElasticFusion's default 3).")
    var maxDepth: Float = 3

    @Option(help: "Confidence at which a surfel becomes stable (ElasticFusion's default 10); given, it is also the confidence of the surfels kept and written (ElasticFusion's rule; see --keep-confidence). With --depth predicted and no threshold given, all surfels are written: per-frame predicted depth rarely agrees closely enough for surfels to merge into stable ones.")
    var confidenceThreshold: Float?

    @Option(help: "Surfels with at least this confidence survive ElasticFusion's timeout for unstable surfels and are written. Default: 1 (surface seen in about two frames: complete maps on short sequences at the accuracy of stable surfels, see docs/results.md), or --confidence-threshold when that is given (ElasticFusion's fixed rule).")
    var keepConfidence: Float?

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(help: ArgumentHelp("How each surfel stores its class distribution: log8 keeps one byte per class, its log-probability below the most likely class's in steps of ln(10^6)/255 (53 + C bytes per surfel: 93 with 40 classes); top<k> keeps the k most likely classes exactly and shares the rest of the mass evenly among the others (81 bytes per surfel with top4, whatever the class count); dense keeps every class as Float32 (SemanticFusion's table: 213 bytes per surfel with 40 classes); auto picks log8 up to 47 classes and top4 beyond. Maps and --probabilities outputs show the full distribution either way (docs/results.md, \"Byte log-codes\").", valueName: "auto|log8|top4|dense"))
    var labelStorage: String = LabelStorage.standard.description

    @Option(help: ArgumentHelp("Tracking: weight of the photometric term against point-to-plane ICP (both normalised by their noise, 1 cm and 10 grey levels; 0: geometric only). Default: 1 where the sequence's colour is registered to its depth (TUM, ICL-NUIM, .klg, semfuse synth), 0 where it is not (7-Scenes, ScanNet .sens).", valueName: "weight"))
    var photometricWeight: Double?

    @Option(help: ICPWeights.help)
    var icpWeights: ICPWeights?

    @Flag(name: .customLong("no-relocalisation"), help: "Tracking: when tracking fails, do not look the frame up among the keyframes (randomised ferns, then keypoint matching, then surface-shape matching where corners find nothing, each checked by ICP against the map) to recover the camera; a lost camera then stays lost.")
    var noRelocalisation = false

    @Flag(name: .customLong("no-corner-check"), help: "Tracking: do not check the image corners of unusual frames (those that match the map less or move faster than the last ten, and every frame after a loss) against the last fused frame's. The check refuses a frame whose shared corners do not move as the tracked motion says: a view of somewhere else that ICP fitted near the last pose, as where a room repeats its shape. It costs 15-30 ms a checked frame at 640x480; without colour at the depth's size it does not run.")
    var noCornerCheck = false

    @Option(help: ArgumentHelp("Tracking: when this many frames in a row are lost (tracking and relocalisation both fail), the last of them (or the first with depth after it) starts a separate piece of map, tracked on its own; when one of its frames is relocalised in the map, the piece joins the map (surfels, keyframes and poses moved into it). A piece left unplaced can still join later, when the map (or a later piece, which takes it in) comes to its surface; two frames placed in both must agree. A piece never placed in the map is written next to it as <map>.piece-<first>-<last>.ply with its trajectory (and its mesh with --mesh), in its own frame (pieces of 10 frames or more, the 8 largest); when such a piece has more frames than the map, it is written as the map (and scored) and the map the run began with beside it. 0, or --no-relocalisation: a lost camera's frames are not fused until relocalisation finds it.", valueName: "frames"))
    var newPieceAfter: Int = ReconstructionOptions().newPieceAfter ?? 0

    @Option(help: "Frames a surface may go unseen before it leaves the active map (ElasticFusion's -t, 200). Tracking and fusion use the active map; a loop closes when the camera comes back to inactive surface.")
    var timeWindow: Int = FusionParameters().timeDelta

    @Option(help: "Tracking: frames over which the confidence a surfel needs to be in the model the tracker aligns to rises from 0 to the stable threshold, so a young map is tracked against everything it has fused rather than against its last frame; 0 requires stable surfels from the first frame (ElasticFusion).")
    var modelWarmup: Int = FusionParameters().trackingModelWarmup

    @Flag(name: .customLong("no-loop-closure"), help: "Tracking: do not bend the map back into one surface when the camera returns to surface it left more than --time-window frames ago. Loop closure is ElasticFusion's: local (the recent map registered to the old surface in view) and global (a frame that looks like an old keyframe, by randomised ferns, registered to it by keypoints, then to the old surface by ICP); either deforms the map and the trajectory.")
    var noLoopClosure = false
    @Flag(help: "Read each frame only when it is fused, instead of decoding the next one on a background thread meanwhile (for measuring what the overlap saves).")
    var noPrefetch = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard every >= 1 else { throw ValidationError("--every must be at least 1") }
        _ = try parseLabelStorage(labelStorage)
        if let poses, poses != "groundtruth" && poses != "track" { throw ValidationError("--poses must be 'groundtruth' or 'track'") }
        guard ["auto", "recorded", "ground-truth", "groundtruth", "simulated", "none"].contains(labels) else {
            throw ValidationError("--labels must be auto, recorded, ground-truth, simulated or none")
        }
        if let color, color != "semantic" && color != "rgb" { throw ValidationError("--color must be 'semantic' or 'rgb'") }
        guard labelConfidence > 0, labelConfidence < 1 else { throw ValidationError("--label-confidence must be in (0, 1)") }
        if let classSet, ClassSet.named(classSet) == nil { throw ValidationError("--class-set must be one of \(ClassSet.knownNames.joined(separator: ", "))") }
        // Numeric ranges and their reasons live in InputLimits.
        try limit(InputLimits.check(Double(maxDepth), "--max-depth", in: InputLimits.maxDepth, exclusiveLower: true, unit: " m"))
        try limit(depthScale.flatMap { InputLimits.depthScale($0) })
        try limit(confidenceThreshold.flatMap { InputLimits.check(Double($0), "--confidence-threshold", in: InputLimits.confidenceThreshold) })
        try limit(keepConfidence.flatMap { InputLimits.check(Double($0), "--keep-confidence", in: InputLimits.confidenceThreshold) })
        try limit(voxelSize.flatMap { InputLimits.check($0, "--voxel-size", in: InputLimits.voxelSize, unit: " m") })
        try limit(threads.flatMap { InputLimits.check($0, "--threads", in: InputLimits.threads) })
        try limit(InputLimits.check(timeWindow, "--time-window", in: InputLimits.timeWindow))
        try limit(InputLimits.check(modelWarmup, "--model-warmup", in: InputLimits.modelWarmup))
        try limit(photometricWeight.flatMap { InputLimits.check($0, "--photometric-weight", in: InputLimits.photometricWeight) })
        guard newPieceAfter >= 0 else { throw ValidationError("--new-piece-after must be 0 (off) or a number of frames") }
        if let networkEvery, networkEvery < 1 { throw ValidationError("--network-every must be at least 1") }
        if let depth, depth != "sensor" && depth != "predicted" { throw ValidationError("--depth must be 'sensor' or 'predicted'") }
        if network == nil && (networkEvery != nil || depth == "predicted" || depthNetwork != nil) {
            throw ValidationError("--network-every, --depth-network and --depth predicted need --network (a segmenter such as 'deeplab', or the joint network's weights)")
        }
        if voxelSize != nil && mesh == nil && meshPerClass == nil { throw ValidationError("--voxel-size is for the mesh: give --mesh <file.ply>") }
        if coarsen != nil && mesh == nil && meshPerClass == nil { throw ValidationError("--coarsen is for the mesh: give --mesh <file.ply>") }
        try limit(coarsen.flatMap { InputLimits.check($0, "--coarsen", in: InputLimits.meshCoarsening) })
        if let depthCrop, !(depthCrop > 0.1 && depthCrop <= 1) { throw ValidationError("--depth-crop must be in (0.1, 1]") }
        _ = try DepthInputArgument.parse(size: depthInput, crop: depthCrop, focal: depthFocal)
    }

    func run() throws {
        logging.bootstrap()
        let logger = Logger(label: "semfuse")
        var request = ReconstructionRequest(sequence: URL(fileURLWithPath: sequence))
        request.output = output.map { URL(fileURLWithPath: $0) }
        request.trajectory = trajectory.map { URL(fileURLWithPath: $0) }
        request.poses = poses.flatMap(ReconstructionOptions.PoseSource.init(rawValue:))
        request.selection = try FrameSelection(parsing: frames ?? "0:", every: every)
        request.labels = LabelChoice(rawValue: labels == "groundtruth" ? "ground-truth" : labels) ?? .auto
        request.labelConfidence = labelConfidence
        request.classSet = classSet.flatMap(ClassSet.named)
        request.simulatorSeed = seed
        request.colorMode = color.map { $0 == "rgb" ? .rgb : .semantic }
        request.ascii = ascii
        request.onlyStable = !allSurfels
        request.includeProbabilities = probabilities
        request.preview = preview
        if mesh != nil || meshPerClass != nil {
            let output = mesh.map { URL(fileURLWithPath: $0) }
                ?? (self.output.map { URL(fileURLWithPath: $0) } ?? URL(fileURLWithPath: "Output/\(URL(fileURLWithPath: sequence).lastPathComponent).ply"))
                    .deletingPathExtension().appendingPathExtension("mesh.ply")
            var meshRequest = MeshRequest(output: output)
            meshRequest.perClassDirectory = meshPerClass.map { URL(fileURLWithPath: $0, isDirectory: true) }
            meshRequest.parameters.voxelSize = voxelSize.map(Float.init)
            if let coarsen { meshRequest.parameters.coarsening = Float(coarsen) }
            meshRequest.includeProbabilities = probabilities
            meshRequest.ascii = ascii
            request.mesh = meshRequest
        }
        request.reader.intrinsics = try intrinsics.map(IntrinsicsArgument.parse)
        request.reader.depthScale = depthScale
        request.reader.maxDepth = max(maxDepth, 8)
        request.fusion.maxDepth = maxDepth
        request.fusion.timeDelta = timeWindow
        request.fusion.trackingModelWarmup = modelWarmup
        request.fusion.confidenceThreshold = confidenceThreshold ?? 10
        // Measured on 7-Scenes (docs/results.md, "Complete maps"): keeping and writing surfels
        // from confidence 1 on leaves accuracy as it is and completes the map; a given
        // --confidence-threshold restores ElasticFusion's fixed rule.
        request.fusion.keepConfidence = keepConfidence ?? (confidenceThreshold == nil ? 1 : nil)
        if depth == "predicted" && confidenceThreshold == nil && !allSurfels {
            request.onlyStable = false
            logger.notice("predicted depth: writing all surfels (give --confidence-threshold to keep only stable ones)")
        }
        if let threads { request.fusion.threads = threads }
        request.fusion.labelStorage = try parseLabelStorage(labelStorage)
        request.network = network
        request.depthNetwork = depthNetwork
        request.depthInput = try DepthInputArgument.parse(size: depthInput, crop: depthCrop, focal: depthFocal)
        request.networkPrecision = precision
        request.photometricWeight = photometricWeight
        request.tracking.depthNoise = (icpWeights ?? .depthNoise).noise
        request.automaticICPWeights = icpWeights == nil
        request.relocalise = !noRelocalisation
        request.cornerCheck = !noCornerCheck
        request.newPieceAfter = newPieceAfter > 0 ? newPieceAfter : nil
        request.loopClosure = !noLoopClosure
        request.rawTrajectory = trajectoryRaw.map { URL(fileURLWithPath: $0) }
        request.prefetch = !noPrefetch
        request.networkEvery = networkEvery
        request.depth = depth.flatMap(ReconstructionOptions.DepthSource.init(rawValue:))

        Interrupt.install()
        let printer = ProgressPrinter(quiet: logging.quiet)
        let result = try ReconstructionJob.run(request, logger: logger,
                                               progress: printer.report, shouldStop: { Interrupt.requested })
        printer.finish()
        print(result.summary)
        if !result.outcome.isSuccess { throw ExitCode(result.exitCode) }
    }
}

/// Turns an `InputLimits` problem into a usage error (exit 64 with the message).
func limit(_ problem: String?) throws {
    if let problem { throw ValidationError(problem) }
}

/// A plain error message for the command line.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}

/// Prints one progress line about once a second to standard error.
final class ProgressPrinter {
    private let quiet: Bool
    private var last = Date.distantPast
    private let interactive = isatty(STDERR_FILENO) != 0
    init(quiet: Bool) { self.quiet = quiet }

    func report(_ p: ReconstructionProgress) {
        guard !quiet else { return }
        let now = Date()
        guard now.timeIntervalSince(last) >= 1 || p.done == p.total else { return }
        last = now
        let line = String(format: "frame %d/%d (#%d)  %.1f frames/s  %@ surfels (%@ stable)",
                          p.done, p.total, p.frameIndex, p.framesPerSecond, Self.count(p.surfelCount), Self.count(p.stableCount))
        FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[K" : "") + line + (interactive ? "" : "\n")).utf8))
    }

    func finish() {
        if interactive && !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func count(_ n: Int) -> String {
        n >= 1_000_000 ? String(format: "%.2fM", Double(n) / 1e6) : (n >= 10_000 ? String(format: "%.0fk", Double(n) / 1e3) : "\(n)")
    }
}

/// How the tracker's ICP weights its correspondences (`--icp-weights`).
enum ICPWeights: String, ExpressibleByArgument, CaseIterable {
    case depthNoise = "depth-noise"
    case uniform

    static let help = ArgumentHelp(
        "Tracking: how ICP weights a point. depth-noise by 1/σ(z)², σ a Kinect v1's depth noise at the point's depth (Nguyen et al. 2012: 1.9 mm at 1 m, 6.1 mm at 2 m, 14 mm at 3 m), which took the 7-Scenes kitchen's tracked error on frames 0-499 from 3.6 to 2.8 cm (the finest pyramid level is weighted, the coarse ones uniform); uniform weights every point alike, as ElasticFusion, which suits depth whose far range is as trustworthy as its near. Default: uniform for rendered depth (ICL-NUIM, semfuse synth), depth-noise for a sensor's.",
        valueName: "depth-noise|uniform")

    var noise: AxialDepthNoise? { self == .depthNoise ? .kinect : nil }
}

/// Parses the depth-model input options shared by `reconstruct`, `predict` and `evaluate`.
enum DepthInputArgument {
    /// `size`: 'native', 'image' or WIDTHxHEIGHT (nil: `defaultSize`).
    static func parse(size: String?, crop: Double?, focal: String?, defaultSize: DepthInput.Size = .native) throws -> DepthInput {
        var input = DepthInput(size: defaultSize)
        switch size {
        case nil: break
        case "native": input.size = .native
        case "image": input.size = .image
        case let text?:
            let parts = text.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts[0] >= 8, parts[1] >= 8, parts[0] <= 8192, parts[1] <= 8192 else {
                throw ValidationError("--depth-input \(text): expected 'native', 'image' or WIDTHxHEIGHT (8-8192), e.g. 320x240")
            }
            input.size = .fixed(width: parts[0], height: parts[1])
        }
        if let crop { input.crop = crop }
        if let focal {
            if focal == "none" { input.focal = .none } else {
                guard let f = Double(focal), f > 0, f.isFinite else { throw ValidationError("--depth-focal \(focal): expected pixels (> 0) or 'none'") }
                input.focal = .pixels(f)
            }
        }
        return input
    }
}

/// `--label-storage`: `auto`, `log8`, `dense`, or `top<k>` with 1 ≤ k ≤ `LabelStorage.maxKept`.
func parseLabelStorage(_ text: String) throws -> LabelStorage {
    guard let storage = LabelStorage(text) else {
        throw ValidationError("--label-storage: '\(text)' is none of 'auto', 'log8', 'dense' and 'top<k>' with k from 1 to \(LabelStorage.maxKept) (e.g. top4)")
    }
    return storage
}
