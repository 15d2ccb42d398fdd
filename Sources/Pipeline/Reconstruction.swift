import Dispatch
import Foundation
import Geometry
import Imaging
import Logging
import Mapping
import Semantics
import Sequences

/// Options of a reconstruction run.
public struct ReconstructionOptions: Sendable {
    /// Where camera poses come from.
    public enum PoseSource: String, Sendable {
        /// The sequence's own (ground-truth) poses.
        case groundTruth = "groundtruth"
        /// Frame-to-model ICP against the map; ground truth, if any, is only used to evaluate.
        case track
    }
    /// Where fused depth comes from.
    public enum DepthSource: String, Sendable {
        /// The sequence's depth images (falling back to predicted depth where a frame has none).
        case sensor
        /// The predictor's depth (the joint network): reconstruction from RGB alone. Frames
        /// without a prediction are skipped.
        case predicted
    }
    public var selection = FrameSelection()
    public var fusion = FusionParameters()
    public var poses = PoseSource.groundTruth
    public var depth = DepthSource.sensor
    public var tracking = TrackingParameters()
    /// When tracking fails, look the frame up among the keyframes and register it to the map
    /// again (`Relocaliser`); off, a lost camera stays lost.
    public var relocalise = true
    public var relocalisation = Relocaliser.Parameters()
    /// When this many frames in a row are lost (tracking and relocalisation both failed), the
    /// last of them (or the first with depth after it) starts a separate piece of map
    /// (`MapPiece`), tracked on its own until one of its frames is relocalised in the map, when
    /// it joins the map. Not at the first lost frame: until
    /// then, tracking from the last pose is still tried, which recovers from a frame or two of
    /// blur or glitch. Nil: a lost camera's frames stay unfused until relocalisation finds it.
    public var newPieceAfter: Int? = 3
    /// Refuse a tracked frame whose image corners do not move as the tracked motion says
    /// (`CornerCheck`), checked on frames that look unusual (`TrackingHistory.isUnusual`) and on
    /// those tracked after a loss; nil (`--no-corner-check`): off, ICP and the history check alone.
    public var cornerCheck: CornerCheck.Parameters? = CornerCheck.Parameters()
    /// Bend the map back into one surface when the camera returns to surface it left more than
    /// `fusion.timeDelta` frames ago (ElasticFusion's local and global loop closure; tracking
    /// runs only). Global closures start from the keyframes, which are kept for them even when
    /// `relocalise` is off.
    public var loopClosure = true
    public var loopClosureParameters = LoopClosureParameters()
    public var globalLoopSearch = GlobalLoopSearch.Parameters()
    public init() {}
}

/// Progress of a running reconstruction, reported after every fused frame.
public struct ReconstructionProgress: Sendable {
    public var done: Int
    public var total: Int
    public var frameIndex: Int
    public var framesPerSecond: Double
    public var surfelCount: Int
    public var stableCount: Int
}

/// How a run ended. Runs never throw per-frame errors: they stop, and the map built so far stays
/// available for export.
public enum ReconstructionOutcome {
    case completed
    case interrupted(atPosition: Int)
    case failed(PipelineError)

    public var isSuccess: Bool { if case .completed = self { return true } else { return false } }
}

/// Accuracy counts of per-frame predictions against ground-truth labels.
public struct AccuracyCount: Sendable, Equatable {
    public var correct = 0
    public var total = 0
    public var accuracy: Double? { total > 0 ? Double(correct) / Double(total) : nil }
}

/// Runs the per-frame pipeline over a sequence: read → predict → fuse (with the sequence's
/// ground-truth poses) → label fusion, keeping the trajectory and statistics.
public final class Reconstruction {
    public let source: FrameSource
    public let predictor: Predictor?
    public let options: ReconstructionOptions
    /// The map's fusion: the run's own, or a larger piece's that became the map when the run
    /// ended (`promotedPiece`).
    public private(set) var fusion: SurfelFusion
    public var map: SurfelMap { fusion.map }
    public var classSet: ClassSet? { predictor?.classSet }

    /// Camera-to-world pose of every fused frame with its timestamp; corrected by every loop
    /// closure since, like the map.
    public private(set) var trajectory: [(timestamp: Double, pose: RigidTransform)] = []
    /// The same poses as tracked, before any loop closure bent them.
    public private(set) var rawTrajectory: [(timestamp: Double, pose: RigidTransform)] = []
    /// Map time (`SurfelFusion.tick`) at which each trajectory entry was fused.
    private var trajectoryTicks: [Int] = []
    /// Sequence position of each trajectory entry: a piece that joins after it was left puts
    /// its frames back in sequence order (`sortTrajectory`).
    private var trajectoryPositions: [Int] = []
    /// Loop closures that bent the map, in order, with the sequence position of the frame.
    public private(set) var loopClosures: [(position: Int, report: LoopClosureReport)] = []
    /// Loop-closure registrations tried and rejected, frames where inactive surface in view was
    /// found to agree already (and made active again), and the time spent in all attempts.
    public private(set) var loopClosureRejections = 0, loopClosureReactivations = 0
    /// The rejections by the check they failed (the summary says which checks refused most).
    public private(set) var loopClosureRejectionsByCheck: [LoopCloser.Rejection.Check: Int] = [:]
    public private(set) var loopClosureSeconds = 0.0
    /// Frames on which a registration against the inactive model was tried.
    public private(set) var loopClosureAttempts = 0
    private var loopCloser: LoopCloser?
    private var globalLoopSearch: GlobalLoopSearch?
    /// Sequence position → map time of the fused frames, for moving keyframes with the map.
    private var tickOfPosition: [Int: Int] = [:]
    public private(set) var framesFused = 0
    /// Frames fused (into the map or a piece) with class probabilities from the predictor.
    public var framesWithPrediction: Int { predictedPositions.count }
    /// Their sequence positions (each frame is fused once), to count those whose labels are in the map.
    private var predictedPositions = Set<Int>()
    /// Frames of the map whose class probabilities were fused into it (those of a piece left
    /// beside the map are in that piece).
    public var framesWithPredictionInMap: Int { trajectoryPositions.reduce(0) { $0 + (predictedPositions.contains($1) ? 1 : 0) } }
    /// Frames skipped because fusion uses predicted depth and the predictor did not run on them.
    public private(set) var framesWithoutPredictedDepth = 0
    /// Per-frame prediction accuracy against ground-truth labels, where the sequence has them.
    public private(set) var perFrameAccuracy = AccuracyCount()
    /// Seconds per fused frame (fusion + labels, excluding reading and prediction), entry by
    /// entry with `trajectory`.
    public private(set) var fusionSeconds: [Double] = []
    public private(set) var stageTimings = SurfelFusion.StageTimings()
    public private(set) var totalSeconds = 0.0

    private let logger = Logger(label: "semfuse.reconstruction")

    /// Frames whose tracking failed (position, reason); they were not fused.
    public private(set) var trackingFailures: [(position: Int, reason: String)] = []
    /// Frames whose tracking failed and that were registered to the map again from a keyframe
    /// (they were fused).
    public private(set) var relocalisations: [Relocalisation] = []
    /// Pieces of map tracked on their own while the camera was lost (`newPieceAfter`), joined to
    /// the map or not, in order; after `promoteLargestPiece`, first the map the run began with.
    public private(set) var pieces: [MapPieceReport] = []
    /// The pieces that never joined the map, with their surfels and poses in their own frame
    /// (written next to the map by `semfuse reconstruct`: the surface they hold was seen, but
    /// where it lies relative to the map is unknown). Only pieces of at least
    /// `minimumKeptPiece` frames are kept, and of those the `maximumKeptPieces` with the most
    /// frames: a run that keeps losing the camera (wrong intrinsics or depth scale, say) must
    /// not fill memory and the output folder with fragments. Until the run ends, each of the
    /// map's frames is looked up in their keyframes, and a piece the map comes to joins it then.
    /// When the largest became the map (`promotedPiece`), the map the run began with is among them.
    public var leftPieces: [LeftPiece] {
        waitingPieces.map { LeftPiece(report: $0.report, map: $0.piece.fusion.map, trajectory: $0.piece.frames.map { ($0.timestamp, $0.pose) },
                                      positions: $0.piece.frames.map(\.position)) }
    }
    public static let minimumKeptPiece = 10, maximumKeptPieces = 8
    public struct LeftPiece {
        public var report: MapPieceReport
        public var map: SurfelMap
        public var trajectory: [(timestamp: Double, pose: RigidTransform)]
        /// The sequence position of each trajectory entry.
        public var positions: [Int]
    }
    /// The piece being tracked now, if the camera is lost from the map.
    private var piece: MapPiece?
    /// A left piece that may still join the map, with its keyframes for the lookup.
    struct WaitingPiece {
        var report: MapPieceReport
        let piece: MapPiece
        /// The run's frame (`frameIndex`) from which frames are looked up in the piece again
        /// (after a lookup whose hypotheses did not check out, the next few frames would not
        /// either).
        var nextLookup = 0
        /// A frame placed in both, waiting for a second to agree.
        var pending: Placement?
    }
    private var waitingPieces: [WaitingPiece] = []
    /// Frames of the run after a lookup in a left piece that found nothing before the next.
    /// Counted in the run's frames, not sequence positions, which `--every` spaces out.
    static let leftPieceRetry = 5
    /// The index of the frame being processed among the run's selected frames.
    private var frameIndex = 0
    public struct Relocalisation: Sendable {
        public var position: Int
        public var keyframePosition: Int
        /// Keypoint (or surface-shape) matches and RANSAC inliers behind the hypothesis.
        public var matches: Int
        public var inliers: Int
        /// Why tracking from the last pose failed.
        public var reason: String
        /// Whether the hypothesis came from surface shape (image corners found nothing).
        public var byShape = false

        /// What placed the frame, for the log: "12 of 40 keypoint matches".
        var evidence: String { "\(inliers) of \(matches) \(byShape ? "surface-shape" : "keypoint") matches" }
    }
    /// Keyframes of the places seen so far, for relocalisation and global loop closure (tracking
    /// runs only).
    public private(set) var relocaliser: Relocaliser?
    /// Seconds spent keeping the keyframes (fern encoding of every fused frame, keypoints of
    /// the new keyframes) and in relocalisation attempts, for the summary.
    public private(set) var keyframeSeconds = 0.0, relocalisationSeconds = 0.0
    /// Frames the corner check was asked about (`ReconstructionOptions.cornerCheck`), those it
    /// refused, and its seconds, for the summary.
    public private(set) var cornerChecks = 0, cornerRefusals = 0
    public private(set) var cornerCheckSeconds = 0.0
    /// Seconds spent registering the left pieces to the map and to each other after the run.
    public private(set) var placementSeconds = 0.0
    /// Ground-truth poses of the fused frames that have a usable one, when tracking.
    public private(set) var groundTruthTrajectory: [(timestamp: Double, pose: RigidTransform)] = []
    /// The (corrected) tracked poses of the same frames as `groundTruthTrajectory`, pair by pair.
    public var scoredTrajectory: [(timestamp: Double, pose: RigidTransform)] { scoredIndices.map { trajectory[$0] } }
    /// Indices into `trajectory` of the frames in `groundTruthTrajectory`.
    private var scoredIndices: [Int] = []
    /// Fused frames left out of the tracking score because their ground-truth pose could not be
    /// used (position, the reader's error naming the file); tracking itself went on.
    public private(set) var groundTruthLeftOut: [(position: Int, reason: String)] = []
    /// The largest re-orthonormalisation any ground-truth rotation needed (`Frame.poseDeviation`)
    /// and the frame it was found in.
    public private(set) var worstPoseDeviation: (deviation: Double, position: Int, source: String)?
    private var lastPose: RigidTransform?
    /// The last frame fused into the map, whose corners a frame tracked from `lastPose` must share.
    private var lastFused: FusedImages?
    /// Corners of the frame being placed, when the corner check detected them (kept for
    /// `lastFused` once it is fused).
    private var currentCorners: (position: Int, corners: KeypointSet)?
    private lazy var cornerCheck = options.cornerCheck.map { CornerCheck(intrinsics: source.intrinsics, parameters: $0) }
    private var consecutiveFailures = 0
    /// The recent tracked frames, against which a frame that matches too little and jumps fails.
    private var trackingHistory = TrackingHistory()
    private lazy var tracker = ICPTracker(parameters: options.tracking)
    /// Photometric tracking needs colour at the depth resolution.
    private var usePhotometric: Bool {
        options.tracking.photometricWeight > 0 && source.intrinsics.width > 0
    }

    public init(source: FrameSource, predictor: Predictor?, options: ReconstructionOptions = ReconstructionOptions()) throws {
        if options.poses == .groundTruth && !source.capabilities.hasPoses {
            throw PipelineError.missingPoses(sequence: source.name)
        }
        self.source = source
        self.predictor = predictor
        self.options = options
        let classSet = predictor?.classSet
        self.fusion = SurfelFusion(intrinsics: source.intrinsics, classCount: classSet?.count ?? 0,
                                   unlabelledClass: classSet?.unlabelledId, parameters: options.fusion)
        if options.poses == .track && (options.relocalise || options.loopClosure) {
            relocaliser = Relocaliser(intrinsics: source.intrinsics, parameters: options.relocalisation)
        }
        if options.poses == .track && options.loopClosure {
            loopCloser = LoopCloser(parameters: options.loopClosureParameters, tracking: options.tracking)
            globalLoopSearch = GlobalLoopSearch(parameters: options.globalLoopSearch)
        }
    }

    /// Tracking accuracy against the sequence's ground truth (tracking runs only).
    /// Frames without ground truth (or left out, `groundTruthLeftOut`) are not scored.
    public var absoluteTrajectoryError: AbsoluteTrajectoryError? {
        guard options.poses == .track else { return nil }
        return AbsoluteTrajectoryError(estimated: scoredTrajectory.map(\.pose), groundTruth: groundTruthTrajectory.map(\.pose))
    }

    /// The frame positions this run will fuse.
    public var positions: [Int] { options.selection.positions(count: source.frameCount) }

    /// Fuses the selected frames. `shouldStop` is polled between frames (e.g. after Ctrl-C).
    public func run(progress: ((ReconstructionProgress) -> Void)? = nil, shouldStop: () -> Bool = { false }) -> ReconstructionOutcome {
        let selected = positions
        guard !selected.isEmpty else {
            return .failed(.noFrames("\(source.name): no frames selected (\(source.frameCount) in the sequence, selection \(options.selection))"))
        }
        let start = Date()
        defer {
            totalSeconds = Date().timeIntervalSince(start)
            if let piece { leave(piece) }
            placeLeftPieces()
            promoteLargestPiece()
            if let worst = worstPoseDeviation {
                // Real ground truth is stored to ~1e-4 (7-Scenes); how far it was is worth a look
                // when results surprise, not worth a line on every run.
                logger.debug("ground-truth rotations re-orthonormalised; worst deviation \(String(format: "%.2e", worst.deviation)) from the nearest rotation (frame \(worst.position), \(worst.source); accepted up to \(RigidTransform.rotationTolerance))")
            }
        }
        for (done, position) in selected.enumerated() {
            if shouldStop() { return .interrupted(atPosition: position) }
            frameIndex = done
            do {
                try fuse(position: position)
            } catch let error as PipelineError {
                return .failed(error)
            } catch {
                return .failed(.frameFailed(index: position, source: source.name, underlying: error))
            }
            if let progress {
                let elapsed = Date().timeIntervalSince(start)
                progress(ReconstructionProgress(done: done + 1, total: selected.count, frameIndex: position,
                                                framesPerSecond: Double(done + 1) / max(elapsed, 1e-9),
                                                surfelCount: map.count,
                                                stableCount: map.stableCount(threshold: options.fusion.confidenceThreshold)))
            }
        }
        return .completed
    }

    private func fuse(position: Int) throws {
        let frame = try source.frame(at: position)
        let where_ = frame.source.isEmpty ? "\(source.name) frame \(position)" : frame.source
        if frame.worldFromCamera != nil, frame.poseDeviation > (worstPoseDeviation?.deviation ?? 0) {
            worstPoseDeviation = (frame.poseDeviation, position, where_)
        }
        if options.poses == .groundTruth, let error = frame.poseError {
            // Fusing with ground truth needs this pose: stop with the reader's error (file, line).
            throw PipelineError.frameFailed(index: position, source: where_, underlying: error)
        }
        let prediction = try predictor?.predict(frame)
        if options.depth == .predicted && prediction?.depth == nil {
            framesWithoutPredictedDepth += 1
            return
        }
        let sensorDepth = options.depth == .sensor ? frame.depth : nil
        guard let depth = sensorDepth ?? prediction?.depth else {
            throw PipelineError.frameFailed(index: position, source: where_,
                                            underlying: PipelineError.invalidOption("no depth: the sequence has none and no predictor supplies it"))
        }
        let pose: RigidTransform
        var filtered: [Float]?
        // The frame's fern code, when loop closure needed it before the keyframes do.
        var code: FernDatabase.Code?
        // The live frame of a frame tracked in the map (for the lookup in left pieces).
        var tracked: (live: [VertexNormalMap], intensity: [IntensityMap]?)?
        switch options.poses {
        case .groundTruth:
            guard let given = frame.worldFromCamera else {
                throw PipelineError.frameFailed(index: position, source: where_, underlying: PipelineError.missingPoses(sequence: source.name))
            }
            pose = given
        case .track:
            guard let previous = lastPose else {
                // The first frame defines the world frame (its ground-truth pose when there is one,
                // so tracked and true trajectories share a frame).
                let live = fusion.liveFrame(depth: depth)
                // A map started from a frame without depth (a covered lens) would have nothing to
                // track against, and every later frame would fail: the map starts at the first
                // frame with usable depth on at least 1 % of its pixels.
                let usable = Self.usablePixels(live.pyramid)
                guard usable * 100 >= live.pyramid[0].normals.count else {
                    notFused(position, "usable depth on only \(usable) of \(live.pyramid[0].normals.count) pixels (under 1 %); the map starts at the first frame with depth",
                             warning: { "frame \(position) not fused: \($0)" })
                    return
                }
                if consecutiveFailures > 0 {
                    logger.notice("the map starts at frame \(position), after \(consecutiveFailures) frames without usable depth")
                    consecutiveFailures = 0
                }
                pose = frame.worldFromCamera ?? .identity
                fusion.acceptLiveFrame(live.pyramid, intensity: usePhotometric ? fusion.liveIntensity(color: frame.color) : nil)
                filtered = live.filteredDepth
                break
            }
            let live = fusion.liveFrame(depth: depth)
            let liveIntensity = usePhotometric ? fusion.liveIntensity(color: frame.color) : nil
            let placed: (result: TrackingResult, relocalised: Bool)?
            if let piece {
                // Lost from the map: the frame goes to the piece, and back to the map if it is found there.
                placed = try advance(piece, frame: frame, position: position, where: where_, depth: depth, prediction: prediction,
                                      live: live, intensity: liveIntensity).map { ($0, true) }
            } else {
                placed = try track(frame: frame, position: position, where: where_, depth: depth, prediction: prediction, live: live,
                                    intensity: liveIntensity, from: previous)
            }
            guard let (result, relocalised) = placed else { return }
            if !relocalised {
                let motion = previous.inverse * result.pose
                logger.debug("tracked", metadata: [
                    "frame": "\(position)", "matched": "\(String(format: "%.1f", Double(result.inliers) * 100 / Double(max(result.validPixels, 1)))) %",
                    "moved": "\(String(format: "%.1f mm %.2f deg", motion.translationNorm * 1000, motion.rotationAngle * 180 / .pi))",
                    "photometric": "\(result.photometricResidual.map { String(format: "%.2f", $0) } ?? "-")"])
                trackingHistory.record(result, from: previous)
            }
            self.relocaliser?.trackingRecovered()
            if consecutiveFailures > 0 {
                logger.notice("tracking resumed at frame \(position) after \(consecutiveFailures) frames that could not be tracked")
                consecutiveFailures = 0
            }
            fusion.acceptLiveFrame(live.pyramid, intensity: liveIntensity)
            filtered = live.filteredDepth
            pose = closeLoop(pose: result.pose, position: position, color: frame.color, depth: depth, live: live.pyramid, code: &code)
            tracked = (live.pyramid, liveIntensity)
        }
        lastPose = pose
        if let relocaliser {
            let start = DispatchTime.now().uptimeNanoseconds
            code = code ?? relocaliser.encode(color: frame.color, depth: depth)
            self.relocaliser?.observe(color: frame.color, depth: depth, worldFromCamera: pose, position: position, tick: fusion.tick,
                                      code: code)
            keyframeSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        score(prediction, against: frame, position: position)
        let report = try fusion.integrate(depth: depth, color: frame.color, worldFromCamera: pose,
                                          probabilities: prediction?.probabilities, source: where_, filteredDepth: filtered)
        framesFused += 1
        lastFused = fusedImages(color: frame.color, depth: depth, position: position)
        fusionSeconds.append(report.timings.total)
        stageTimings = stageTimings + report.timings
        appendToTrajectory(timestamp: frame.timestamp, pose: pose, tick: fusion.tick, position: position)
        if options.poses == .track {
            recordTruth(of: frame, position: position, trajectoryIndex: trajectory.count - 1)
        }
        logger.debug("fused", metadata: ["frame": "\(position)", "surfels": "\(report.surfelCount)",
                                          "created": "\(report.created)", "removed": "\(report.removed)"])
        if let tracked, let code, !waitingPieces.isEmpty {
            for placed in lookUpLeftPieces(frame: frame, position: position, depth: depth, live: tracked.live, intensity: tracked.intensity,
                                           pose: pose, code: code) {
                joinLater(placed.waiting, at: position, transformedBy: placed.transform, firstPlacedAt: placed.firstPlacedAt)
            }
        }
    }

    /// The corner check's objection to `result`, tracked from `previous` (the pose of `last`'s
    /// frame), or nil. Asked only when the frame looks unusual against `history` or follows a
    /// loss (so a frame refused once is refused again when the next one, tracked from the same
    /// last pose, lands on the same wrong place); the corners found are kept for `lastFused`.
    private func cornerFailure(of result: TrackingResult, from previous: RigidTransform, history: TrackingHistory, afterLoss: Bool,
                               color: ColorImage?, depth: DepthImage, position: Int, last: inout FusedImages?) -> String? {
        guard let cornerCheck, result.succeeded, color != nil, var reference = last,
              afterLoss || history.isUnusual(result, from: previous) else { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        defer { cornerCheckSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let corners = cornerCheck.corners(color: color, depth: depth)
        currentCorners = (position, corners)
        if reference.corners == nil {
            reference.corners = cornerCheck.corners(color: reference.color, depth: reference.depth)
            last = reference
        }
        cornerChecks += 1
        let verdict = cornerCheck.check(current: corners, last: reference.corners ?? KeypointSet(), lastFromCurrent: previous.inverse * result.pose)
        logger.debug("corner check", metadata: ["frame": "\(position)", "corners": "\(corners.count), last \(reference.corners?.count ?? 0)",
                                                "agreeing": "\(verdict.agreeing) of \(verdict.matches)", "refused": "\(verdict.failure != nil)"])
        if verdict.failure != nil { cornerRefusals += 1 }
        return verdict.failure
    }

    /// A frame being fused, as the reference of the corner check for the next one.
    private func fusedImages(color: ColorImage?, depth: DepthImage, position: Int) -> FusedImages? {
        guard cornerCheck != nil else { return nil }
        defer { currentCorners = nil }
        return FusedImages(color: color, depth: depth, corners: currentCorners?.position == position ? currentCorners?.corners : nil)
    }

    private func appendToTrajectory(timestamp: Double, pose: RigidTransform, tick: Int, position: Int) {
        trajectory.append((timestamp, pose))
        rawTrajectory.append((timestamp, pose))
        trajectoryTicks.append(tick)
        trajectoryPositions.append(position)
        tickOfPosition[position] = tick
    }

    /// Puts the trajectory back in sequence order (after a piece joined with earlier frames),
    /// with the ground-truth pairs following their entries.
    private func sortTrajectory() {
        let order = trajectory.indices.sorted { trajectoryPositions[$0] < trajectoryPositions[$1] }
        guard order != Array(trajectory.indices) else { return }
        var newIndex = [Int](repeating: 0, count: order.count)
        for (new, old) in order.enumerated() { newIndex[old] = new }
        trajectory = order.map { trajectory[$0] }
        rawTrajectory = order.map { rawTrajectory[$0] }
        trajectoryTicks = order.map { trajectoryTicks[$0] }
        trajectoryPositions = order.map { trajectoryPositions[$0] }
        if fusionSeconds.count == order.count { fusionSeconds = order.map { fusionSeconds[$0] } }   // entry by entry (both appended together)
        let pairs = scoredIndices.indices.sorted { newIndex[scoredIndices[$0]] < newIndex[scoredIndices[$1]] }
        groundTruthTrajectory = pairs.map { groundTruthTrajectory[$0] }
        scoredIndices = pairs.map { newIndex[scoredIndices[$0]] }
    }

    /// Counts a frame's prediction and scores it against the frame's ground-truth labels.
    private func score(_ prediction: Prediction?, against frame: Frame, position: Int) {
        if let probabilities = prediction?.probabilities {
            predictedPositions.insert(position)
            // Score the predictor against ground truth (not ground truth against itself), in the
            // class set the map uses.
            var base = predictor
            var labels = frame.labels
            if let mapped = predictor as? ClassMappingPredictor {
                base = mapped.inner
                labels = labels.map(mapped.mapping.map)
            }
            if let labels, !(base is LabelImagePredictor) {
                perFrameAccuracy = Self.accumulate(perFrameAccuracy, probabilities: probabilities, labels: labels)
            }
        }
    }

    /// Pairs a tracked frame's ground-truth pose with trajectory entry `index` for the score, or
    /// says why it cannot be used.
    private func recordTruth(of frame: Frame, position: Int, trajectoryIndex index: Int) {
        recordTruth(frame.worldFromCamera, error: frame.poseError?.description, timestamp: frame.timestamp, position: position,
                    trajectoryIndex: index)
    }

    private func recordTruth(_ truth: RigidTransform?, error: String?, timestamp: Double, position: Int, trajectoryIndex index: Int) {
        if let truth {
            groundTruthTrajectory.append((timestamp, truth))
            scoredIndices.append(index)
        } else if let error {
            groundTruthLeftOut.append((position, error))
            logger.warning("frame \(position): ground-truth pose unusable, left out of the tracking score: \(error)")
        }
    }

    /// Pixels of the finest level with a vertex and normal.
    private static func usablePixels(_ pyramid: [VertexNormalMap]) -> Int {
        pyramid[0].normals.reduce(0) { $0 + ($1 == .zero ? 0 : 1) }
    }

    /// Starts a piece of map at a lost frame (`ReconstructionOptions.newPieceAfter`), in the
    /// frame of the last pose the map had: the piece's own frame, unrelated to the map's until it
    /// joins it.
    private func startPiece(frame: Frame, position: Int, where source: String, depth: DepthImage, prediction: Prediction?,
                            live: (pyramid: [VertexNormalMap], filteredDepth: [Float]), intensity: [IntensityMap]?,
                            at pose: RigidTransform, reason: String) throws {
        let pieceFusion = SurfelFusion(intrinsics: self.source.intrinsics, classCount: fusion.map.classCount,
                                       unlabelledClass: fusion.map.unlabelledClass, parameters: options.fusion)
        let piece = MapPiece(fusion: pieceFusion, relocaliser: relocaliser.map { _ in Relocaliser(intrinsics: self.source.intrinsics, parameters: options.relocalisation) },
                             startPose: pose)
        logger.warning("tracking lost for \(consecutiveFailures + 1) frames in a row (\(reason)); frame \(position) starts a separate piece of map, which joins the map when one of its frames is relocalised there")
        pieceFusion.acceptLiveFrame(live.pyramid, intensity: intensity)
        try fuse(frame, into: piece, position: position, where: source, depth: depth, prediction: prediction, pose: pose,
                 filtered: live.filteredDepth)
        self.piece = piece
    }

    /// A frame while the camera is lost from the map: tracked against the piece and fused there,
    /// and looked up in the map's keyframes. Found in the map, the piece joins it (when the frame
    /// was placed in the piece too, which gives the motion between the two) or is left. Returns
    /// the map's tracking result when the frame is still to be fused into the map (found there,
    /// not in the piece); nil when it was dealt with.
    private func advance(_ piece: MapPiece, frame: Frame, position: Int, where source: String, depth: DepthImage,
                         prediction: Prediction?, live: (pyramid: [VertexNormalMap], filteredDepth: [Float]),
                         intensity: [IntensityMap]?) throws -> TrackingResult? {
        let model = piece.fusion.predictedModel(from: piece.lastPose, intensity: usePhotometric)
        var result = tracker.track(frame: live.pyramid, model: model.geometry, previousPose: piece.lastPose, threads: options.fusion.threads,
                                   frameIntensity: intensity, modelIntensity: model.intensity)
        if let jump = piece.history.failure(of: result, from: piece.lastPose)
            ?? cornerFailure(of: result, from: piece.lastPose, history: piece.history, afterLoss: piece.consecutiveFailures > 0,
                             color: frame.color, depth: depth, position: position, last: &piece.lastFused) {
            result.failure = jump
        }
        let first = piece.firstPosition ?? position
        let back = result.validPixels > 0
            ? relocalise(live: live.pyramid, intensity: intensity, color: frame.color, depth: depth, position: position,
                         reason: "lost since before frame \(first), tracked in a separate piece")
            : nil
        // Lost by the piece too: the piece's own keyframes may place the frame in it.
        var relocalisedInPiece = false
        if let failure = result.failure, back == nil, result.validPixels > 0,
           let found = relocalise(live: live.pyramid, intensity: intensity, color: frame.color, depth: depth, position: position,
                                  reason: failure, in: piece) {
            result = found
            relocalisedInPiece = true
        }
        if let failure = result.failure {
            // A frame without depth (a covered sensor) says nothing about where the camera is:
            // it does not count towards leaving the piece.
            if result.validPixels > 0 { piece.consecutiveFailures += 1 }
            if let back {
                logger.warning("frame \(position) was relocalised in the map but the piece that began at frame \(first) could not track it (\(failure)): the piece is left out")
                leave(piece)
                return back
            }
            notFused(position, "the separate piece lost it too: \(failure)", warning: { "frame \(position) not fused: \($0)" })
            if piece.consecutiveFailures >= (options.newPieceAfter ?? 1) {
                leave(piece)
            }
            return nil
        }
        piece.consecutiveFailures = 0
        if !relocalisedInPiece { piece.history.record(result, from: piece.lastPose) }
        piece.relocaliser?.trackingRecovered()
        piece.fusion.acceptLiveFrame(live.pyramid, intensity: intensity)
        try fuse(frame, into: piece, position: position, where: source, depth: depth, prediction: prediction, pose: result.pose,
                 filtered: live.filteredDepth)
        if !waitingPieces.isEmpty, let keyframes = piece.relocaliser {
            // A piece left earlier that this one comes to becomes part of it (and so of the map,
            // if this one joins it).
            for placed in lookUpLeftPieces(frame: frame, position: position, depth: depth, live: live.pyramid, intensity: intensity,
                                           pose: result.pose, code: keyframes.encode(color: frame.color, depth: depth)) {
                merge(placed.waiting, into: piece, at: position, transformedBy: placed.transform, firstPlacedAt: placed.firstPlacedAt)
            }
        }
        if let back { join(piece, at: position, mapPose: back.pose, piecePose: result.pose) }
        return nil
    }

    private func fuse(_ frame: Frame, into piece: MapPiece, position: Int, where source: String, depth: DepthImage, prediction: Prediction?,
                      pose: RigidTransform, filtered: [Float]) throws {
        score(prediction, against: frame, position: position)
        piece.lastFused = fusedImages(color: frame.color, depth: depth, position: position)
        let report = try piece.fusion.integrate(depth: depth, color: frame.color, worldFromCamera: pose,
                                                probabilities: prediction?.probabilities, source: source, filteredDepth: filtered)
        piece.timings = piece.timings + report.timings
        piece.record(MapPiece.FusedFrame(position: position, timestamp: frame.timestamp, pose: pose, tick: piece.fusion.tick,
                                         seconds: report.timings.total, truth: frame.worldFromCamera,
                                         truthError: frame.poseError?.description))
        if piece.relocaliser != nil {
            let start = DispatchTime.now().uptimeNanoseconds
            piece.relocaliser?.observe(color: frame.color, depth: depth, worldFromCamera: pose, position: position, tick: piece.fusion.tick)
            piece.keyframeSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        logger.debug("fused into the separate piece", metadata: ["frame": "\(position)", "surfels": "\(report.surfelCount)"])
    }

    /// Moves the piece into the map by the motion between the two poses of one frame, with its
    /// keyframes and poses; the map goes on from that frame.
    private func join(_ piece: MapPiece, at position: Int, mapPose: RigidTransform, piecePose: RigidTransform) {
        let transform = mapPose * piecePose.inverse
        let offset = fusion.absorb(piece.fusion, transformedBy: transform)
        if let keyframes = piece.relocaliser {
            relocaliser?.absorb(keyframes, transformedBy: transform, tickOffset: offset)
        }
        takeFrames(of: piece, transformedBy: transform, tickOffset: offset)
        sortTrajectory()   // a piece that took in a left one holds earlier frames
        let positions = Set(piece.frames.map(\.position))
        trackingFailures.removeAll { positions.contains($0.position) }
        pieces.append(MapPieceReport(firstPosition: piece.firstPosition ?? position, lastPosition: position, frames: piece.frames.count,
                                     surfels: piece.fusion.map.count, joinedAt: position, shiftMetres: transform.translationNorm,
                                     shiftDegrees: transform.rotationAngle * 180 / .pi))
        logger.notice("\(String(format: "the separate piece of frames %d-%d (%d fused, %d surfels) joined the map at frame %d, moved %.1f mm / %.2f deg", piece.firstPosition ?? position, position, piece.frames.count, piece.fusion.map.count, position, transform.translationNorm * 1000, transform.rotationAngle * 180 / .pi))")
        trackingHistory = piece.history
        lastPose = mapPose
        lastFused = piece.lastFused
        relocaliser?.trackingRecovered()
        consecutiveFailures = 0
        self.piece = nil
    }

    /// The piece's frames, fused into the map with it: their poses (moved by `transform`), map
    /// times, timings and ground truth.
    private func takeFrames(of piece: MapPiece, transformedBy transform: RigidTransform, tickOffset offset: Int) {
        stageTimings = stageTimings + piece.timings
        keyframeSeconds += piece.keyframeSeconds
        for f in piece.frames {
            appendToTrajectory(timestamp: f.timestamp, pose: transform * f.pose, tick: f.tick + offset, position: f.position)
            fusionSeconds.append(f.seconds)
            framesFused += 1
            recordTruth(f.truth, error: f.truthError, timestamp: f.timestamp, position: f.position, trajectoryIndex: trajectory.count - 1)
        }
    }

    /// Adds `piece` to `kept`, and when that makes more than `maximum`, drops the one with the
    /// fewest `frames` (the earliest of equals) and returns it.
    static func keep<Piece>(_ piece: Piece, in kept: inout [Piece], maximum: Int, frames: KeyPath<Piece, Int>) -> Piece? {
        kept.append(piece)
        guard kept.count > maximum, let smallest = kept.indices.min(by: { kept[$0][keyPath: frames] < kept[$1][keyPath: frames] }) else { return nil }
        return kept.remove(at: smallest)
    }

    /// The left piece that became the map when the run ended (`promoteLargestPiece`), if one did.
    public var promotedPiece: MapPieceReport? { pieces.first { $0.becameTheMap } }

    /// When the run ends with a left piece of more fused frames than the map, that piece becomes
    /// the map and the map the run began with is left beside it, as a piece. A camera lost early
    /// whose piece tracked most of the sequence without ever meeting the first frames' surface
    /// would otherwise leave those few frames as the map (the `-o` file, the trajectory, the score)
    /// and the bulk of the scene beside it. Each keeps its surfels, keyframes and poses, in its own
    /// frame; frames count as fused only in the map. The relocalisations and loop closures listed
    /// stay as they happened, in the map the run began with (pieces do not close loops).
    private func promoteLargestPiece() {
        guard let k = waitingPieces.indices.max(by: { waitingPieces[$0].piece.frames.count < waitingPieces[$1].piece.frames.count }),
              waitingPieces[k].piece.frames.count > framesFused,
              let first = trajectoryPositions.min(), let last = trajectoryPositions.max() else { return }
        let promoted = waitingPieces.remove(at: k)
        // The map so far, as a left piece: its frames with their poses, map times and ground truth.
        let former = MapPiece(fusion: fusion, relocaliser: relocaliser, startPose: lastPose ?? .identity)
        var truth: [Int: RigidTransform] = [:]
        for (j, index) in scoredIndices.enumerated() { truth[index] = groundTruthTrajectory[j].pose }
        let truthErrors = Dictionary(groundTruthLeftOut.map { ($0.position, $0.reason) }, uniquingKeysWith: { a, _ in a })
        for i in trajectory.indices {
            former.record(MapPiece.FusedFrame(position: trajectoryPositions[i], timestamp: trajectory[i].timestamp, pose: trajectory[i].pose,
                                              tick: trajectoryTicks[i], seconds: fusionSeconds.indices.contains(i) ? fusionSeconds[i] : 0, truth: truth[i],
                                              truthError: truthErrors[trajectoryPositions[i]]))
        }
        former.timings = stageTimings
        former.keyframeSeconds = keyframeSeconds
        fusion.releaseWorkspace()
        relocaliser?.trackingRecovered()

        let range = promoted.report.frameRange
        let inPromoted = Set(promoted.piece.frames.map(\.position))
        trackingFailures.removeAll { inPromoted.contains($0.position) }
        let reason = "fused into the map the run began with (frames \(first)-\(last)), written beside the larger piece of frames \(range) that became the map"
        trackingFailures += former.frames.map { ($0.position, reason) }
        trackingFailures.sort { $0.position < $1.position }

        fusion = promoted.piece.fusion
        relocaliser = promoted.piece.relocaliser
        trajectory = []; rawTrajectory = []; trajectoryTicks = []; trajectoryPositions = []; tickOfPosition = [:]
        fusionSeconds = []; framesFused = 0
        groundTruthTrajectory = []; scoredIndices = []; groundTruthLeftOut = []
        stageTimings = SurfelFusion.StageTimings(); keyframeSeconds = 0
        takeFrames(of: promoted.piece, transformedBy: .identity, tickOffset: 0)
        lastPose = promoted.piece.lastPose
        lastFused = promoted.piece.lastFused

        if let j = pieces.firstIndex(where: { $0.firstPosition == promoted.report.firstPosition }) { pieces[j].becameTheMap = true }
        var report = MapPieceReport(firstPosition: first, lastPosition: last, frames: former.frames.count, surfels: former.fusion.map.count,
                                    joinedAt: nil)
        report.kept = true
        report.wasTheMap = true
        pieces.insert(report, at: 0)   // the map began before any piece
        waitingPieces.insert(WaitingPiece(report: report, piece: former), at: 0)
        logger.notice("the separate piece of frames \(range) (\(framesFused) frames) never met the map and is larger than it (frames \(first)-\(last), \(former.frames.count) frames): it is written as the map, and the map the run began with beside it as a piece")
    }

    /// When the run ends, the left pieces are registered to the map and to each other by surface
    /// shape. While the run went on, a left piece could join only when the tracked camera came
    /// back to its surface and a frame matched one of its keyframes by image corners; a camera
    /// lost early, or two pieces of one room, may never do so although they hold the same
    /// surface (on randomly cut kitchen runs, left pieces shared 14-77 % of their surface with
    /// the map; docs/results.md). A piece placed (`placement`) joins the map; otherwise the
    /// smaller of two left pieces placed in the larger becomes part of it, and the larger is
    /// tried in the map again. Pieces that meet nothing stay beside the map, as before.
    private func placeLeftPieces() {
        guard options.relocalise, relocaliser != nil, !waitingPieces.isEmpty else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        defer { placementSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        // Pairs tried without success, by (target, piece) and their frame counts then: tried
        // again only once one of them has grown.
        var tried = Set<[Int]>()
        func key(_ target: AnyObject, _ targetFrames: Int, _ piece: MapPiece) -> [Int] {
            [ObjectIdentifier(target).hashValue, targetFrames, ObjectIdentifier(piece).hashValue, piece.frames.count]
        }
        var placedAny = true
        while placedAny {
            placedAny = false
            for k in waitingPieces.indices.reversed() {
                let waiting = waitingPieces[k]
                let pair = key(fusion, framesFused, waiting.piece)
                guard !tried.contains(pair) else { continue }
                guard let found = placement(of: waiting.piece, in: fusion) else {
                    tried.insert(pair)
                    continue
                }
                waitingPieces.remove(at: k)
                joinAfterTheRun(waiting, placed: found)
                placedAny = true
            }
            // The smaller piece into the larger (of equal ones, the later into the earlier).
            let order = waitingPieces.indices.sorted { waitingPieces[$0].piece.frames.count > waitingPieces[$1].piece.frames.count }
            search: for (i, a) in order.enumerated() {
                for b in order[(i + 1)...] {
                    let target = waitingPieces[a].piece, piece = waitingPieces[b].piece
                    let pair = key(target, target.frames.count, piece)
                    guard !tried.contains(pair) else { continue }
                    guard let found = placement(of: piece, in: target.fusion) else {
                        tried.insert(pair)
                        continue
                    }
                    merge(waitingPieces[b], into: a, placed: found)
                    waitingPieces.remove(at: b)
                    placedAny = true
                    break search
                }
            }
        }
    }

    /// Where a left piece lies in another map (the map, or another left piece), by surface
    /// shape: both maps thinned to oriented points, described by FPFH and registered by RANSAC
    /// (`PointFeatureExtractor`, as a lost frame is to a keyframe), which gives a motion good to
    /// several centimetres. It is then verified, and refined, from the piece's keyframes (at most
    /// `placementViews`, spread over it): the piece's whole surface rendered from the keyframe's
    /// pose is registered by ICP to the other map's whole surface (inactive too) rendered from
    /// the moved pose. A view verifies when ICP passes the tracker's own tests and, at the
    /// result, the two renders overlap on `placementOverlap` of the pixels and agree in depth
    /// on `placementAgreement` of those. The share of matched pixels against recent tracking,
    /// which a lost frame must keep, is not asked: two maps overlap only in part (views that
    /// placed pieces right on the kitchen matched 33-45 % against 71 %). Placed when two views'
    /// motions agree (`Placement`'s tolerances): a wrong placement puts a second copy of a room
    /// into the map. Returns the first of the two motions (from the piece's frame to the
    /// other's) and the two keyframes' positions.
    private func placement(of piece: MapPiece, in target: SurfelFusion)
        -> (transform: RigidTransform, keyframes: (Int, Int))? {
        guard let keyframes = piece.relocaliser?.database.keyframes, keyframes.count >= 2 else { return nil }
        let extractor = PointFeatureExtractor(parameters: options.relocalisation.shape)
        let confidence = options.fusion.keepConfidence ?? 1
        let own = extractor.describe(extractor.orientedPoints(map: piece.fusion.map, minimumConfidence: confidence,
                                                              maximumPoints: Self.placementPoints))
        let other = extractor.describe(extractor.orientedPoints(map: target.map, minimumConfidence: confidence,
                                                                maximumPoints: 2 * Self.placementPoints))
        let matches = PointFeatureExtractor.match(own, other, threads: options.fusion.threads)
        guard matches.count >= options.relocalisation.shapeRANSAC.minimumInliers,
              let fit = RigidRANSAC.estimate(source: matches.map { own.points[$0.0] }, target: matches.map { other.points[$0.1] },
                                             parameters: options.relocalisation.shapeRANSAC) else {
            logger.debug("left piece placement: no shape registration", metadata: [
                "piece": "\(piece.firstPosition ?? -1)-\(piece.lastPosition ?? -1)", "points": "\(own.count) against \(other.count)",
                "matches": "\(matches.count)"])
            return nil
        }
        let guess = fit.targetFromSource
        logger.debug("left piece placement: shape registration", metadata: [
            "piece": "\(piece.firstPosition ?? -1)-\(piece.lastPosition ?? -1)", "points": "\(own.count) against \(other.count)",
            "inliers": "\(fit.inliers)/\(matches.count)",
            "moved": "\(String(format: "%.0f mm %.1f deg", guess.translationNorm * 1000, guess.rotationAngle * 180 / .pi))"])
        // At most `placementViews` keyframes, spread over the piece.
        let step = max(1, (keyframes.count + Self.placementViews - 1) / Self.placementViews)
        var verified: [(transform: RigidTransform, keyframe: Int)] = []
        for keyframe in Swift.stride(from: 0, to: keyframes.count, by: step).map({ keyframes[$0] }) {
            let view = piece.fusion.predictedModel(from: keyframe.worldFromCamera, intensity: usePhotometric, fillHoles: false,
                                                   minimumConfidence: confidence, activeOnly: false)
            let start = guess * keyframe.worldFromCamera
            let model = target.predictedModel(from: start, intensity: usePhotometric, fillHoles: false, minimumConfidence: confidence,
                                              activeOnly: false)
            let result = tracker.track(frame: view.geometry, model: model.geometry, previousPose: start, threads: options.fusion.threads,
                                       frameIntensity: view.intensity, modelIntensity: model.intensity)
            let overlap = result.failure != nil ? (both: 0.0, agreeing: 0.0)
                : Self.overlap(view.geometry[0], target.predictedModel(from: result.pose, intensity: false, fillHoles: false,
                                                                       minimumConfidence: confidence, activeOnly: false).geometry[0])
            let failure = result.failure
                ?? (overlap.both < Self.placementOverlap ? String(format: "the two surfaces overlap on %.0f %% of the view", overlap.both * 100) : nil)
                ?? (overlap.agreeing < Self.placementAgreement
                    ? String(format: "only %.0f %% of the overlap agrees in depth", overlap.agreeing * 100) : nil)
            logger.debug("left piece placement: view", metadata: [
                "piece keyframe": "\(keyframe.position)", "overlap": "\(String(format: "%.3f", overlap.both))",
                "agreeing": "\(String(format: "%.3f", overlap.agreeing))", "verdict": "\(failure ?? "verified")"])
            guard failure == nil else { continue }
            let transform = result.pose * keyframe.worldFromCamera.inverse
            if let agreeing = verified.first(where: { Placement.agree($0.transform, transform) }) {
                return (agreeing.transform, (agreeing.keyframe, keyframe.position))
            }
            verified.append((transform, keyframe.position))
        }
        return nil
    }

    /// Of two renders from one pose, the share of pixels where both have surface, and of those
    /// the share whose depths agree (within 3 cm or 3 % of the depth).
    static func overlap(_ a: VertexNormalMap, _ b: VertexNormalMap) -> (both: Double, agreeing: Double) {
        guard a.vertices.count == b.vertices.count, !a.vertices.isEmpty else { return (0, 0) }
        var both = 0, agreeing = 0
        for p in a.vertices.indices {
            let za = a.vertices[p].z, zb = b.vertices[p].z
            guard za > 0, zb > 0 else { continue }
            both += 1
            if abs(za - zb) <= max(0.03, 0.03 * za) { agreeing += 1 }
        }
        return (Double(both) / Double(a.vertices.count), Double(agreeing) / Double(max(both, 1)))
    }

    /// Oriented points a left piece is thinned to for its shape registration (twice as many for
    /// the map it is registered to), and keyframes of the piece that verify it.
    static let placementPoints = 3000, placementViews = 8
    /// A view verifies a placement when the two renders have surface on this share of its pixels
    /// and their depths agree on this share of those.
    static let placementOverlap = 0.1, placementAgreement = 0.8

    /// Moves a left piece placed after the run into the map, as `joinLater` does.
    private func joinAfterTheRun(_ waiting: WaitingPiece, placed: (transform: RigidTransform, keyframes: (Int, Int))) {
        let piece = waiting.piece, transform = placed.transform
        let offset = absorb(piece, into: fusion, keyframes: &relocaliser, transformedBy: transform)
        takeFrames(of: piece, transformedBy: transform, tickOffset: offset)
        sortTrajectory()
        let report = waiting.report
        if let k = pieces.firstIndex(where: { $0.firstPosition == report.firstPosition }) {
            pieces[k].joinedAt = placed.keyframes.1
            pieces[k].joinedLater = true
            pieces[k].placedAfterTheRun = placed.keyframes
            pieces[k].shiftMetres = transform.translationNorm
            pieces[k].shiftDegrees = transform.rotationAngle * 180 / .pi
        }
        logger.notice("\(String(format: "the separate piece of frames %@ (%d fused, %d surfels) was placed in the map after the run (by surface shape, verified from its keyframes of frames %d and %d), moved %.1f mm / %.2f deg", report.frameRange, piece.frames.count, piece.fusion.map.count, placed.keyframes.0, placed.keyframes.1, transform.translationNorm * 1000, transform.rotationAngle * 180 / .pi))")
    }

    /// Moves a left piece placed after the run in another left piece (`waitingPieces[target]`)
    /// into it; its frames stay out of the map unless the larger piece is placed there too.
    private func merge(_ waiting: WaitingPiece, into target: Int, placed: (transform: RigidTransform, keyframes: (Int, Int))) {
        let piece = waiting.piece, into = waitingPieces[target].piece, transform = placed.transform
        let offset = into.fusion.absorb(piece.fusion, transformedBy: transform, current: false)
        if let keyframes = piece.relocaliser { into.relocaliser?.absorb(keyframes, transformedBy: transform, tickOffset: offset) }
        into.take(piece, transformedBy: transform, tickOffset: offset)
        let old = waitingPieces[target].report, taken = waiting.report
        var report = old
        report.firstPosition = into.firstPosition ?? old.firstPosition
        report.lastPosition = into.lastPosition ?? old.lastPosition
        report.frames = into.frames.count
        report.surfels = into.fusion.map.count
        report.tookIn.append(taken.frameRange)
        waitingPieces[target].report = report
        pieces.removeAll { $0.firstPosition == taken.firstPosition }
        if let k = pieces.firstIndex(where: { $0.firstPosition == old.firstPosition }) { pieces[k] = report }
        logger.notice("\(String(format: "the separate piece of frames %@ (%d fused) was placed in the separate piece of frames %@ after the run (by surface shape, verified from its keyframes of frames %d and %d), moved %.1f mm / %.2f deg; together frames %@, %d fused", taken.frameRange, piece.frames.count, old.frameRange, placed.keyframes.0, placed.keyframes.1, transform.translationNorm * 1000, transform.rotationAngle * 180 / .pi, report.frameRange, report.frames))")
    }

    /// Gives up a piece that did not join the map: its frames were not fused into the map, and are
    /// counted as lost (unless it joins later, `lookUpLeftPieces`).
    private func leave(_ piece: MapPiece) {
        let first = piece.firstPosition, last = piece.lastPosition
        if let first, let last {
            let reason = "tracked only in a separate piece of map (frames \(first)-\(last)) that was never relocalised in the map"
            trackingFailures.append(contentsOf: piece.frames.map { ($0.position, reason) })
            trackingFailures.sort { $0.position < $1.position }
            var report = MapPieceReport(firstPosition: first, lastPosition: last, frames: piece.frames.count, surfels: piece.fusion.map.count,
                                        joinedAt: nil)
            report.kept = piece.frames.count >= Self.minimumKeptPiece
            logger.warning("the separate piece of frames \(report.frameRange) (\(piece.frames.count) frame\(piece.frames.count == 1 ? "" : "s"), \(piece.fusion.map.count) surfels) was not placed in the map (none of its frames was relocalised there while it tracked) and is left out of it\(report.kept ? "; it joins the map if the map comes to its surface later" : " (too few frames to keep)")")
            piece.lastFused = nil   // a left piece is not tracked again
            if report.kept {
                piece.fusion.releaseWorkspace()
                piece.relocaliser?.trackingRecovered()   // drops the shape histograms of its last loss
                if let dropped = Self.keep(WaitingPiece(report: report, piece: piece), in: &waitingPieces, maximum: Self.maximumKeptPieces,
                                           frames: \.report.frames)?.report {
                    if let k = pieces.firstIndex(where: { $0.firstPosition == dropped.firstPosition }) { pieces[k].kept = false }
                    if dropped.firstPosition == first { report.kept = false }
                    logger.warning("more than \(Self.maximumKeptPieces) separate pieces were not placed in the map: the one of frames \(dropped.frameRange) (\(dropped.frames) frames) is not kept")
                }
            }
            pieces.append(report)
        }
        self.piece = nil
    }

    /// Tracks a frame against the map from the last pose, and relocalises it when that fails.
    /// Returns nil when the frame was dealt with without fusing it into the map (lost, or the
    /// first frame of a separate piece).
    private func track(frame: Frame, position: Int, where where_: String, depth: DepthImage, prediction: Prediction?,
                       live: (pyramid: [VertexNormalMap], filteredDepth: [Float]), intensity liveIntensity: [IntensityMap]?,
                       from previous: RigidTransform) throws -> (result: TrackingResult, relocalised: Bool)? {
        let model = fusion.predictedModel(from: previous, intensity: usePhotometric)
        var result = tracker.track(frame: live.pyramid, model: model.geometry, previousPose: previous, threads: options.fusion.threads,
                                   frameIntensity: liveIntensity, modelIntensity: model.intensity)
        if let jump = trackingHistory.failure(of: result, from: previous)
            ?? cornerFailure(of: result, from: previous, history: trackingHistory, afterLoss: consecutiveFailures > 0, color: frame.color,
                             depth: depth, position: position, last: &lastFused) {
            result.failure = jump
            result.pose = previous
        }
        if let failure = result.failure {
            // A frame without usable depth has nothing to register: no lookup.
            guard result.validPixels > 0,
                  let recovered = relocalise(live: live.pyramid, intensity: liveIntensity, color: frame.color, depth: depth,
                                             position: position, reason: failure) else {
                let lookedUp = options.relocalise && result.validPixels > 0
                if options.relocalise, let after = options.newPieceAfter, consecutiveFailures + 1 >= after,
                   Self.usablePixels(live.pyramid) * 100 >= live.pyramid[0].normals.count {
                    try startPiece(frame: frame, position: position, where: where_, depth: depth, prediction: prediction, live: live,
                                   intensity: liveIntensity, at: previous, reason: failure)
                    return nil
                }
                notFused(position, failure, warning: { [consecutiveFailures] in
                    "tracking failed at frame \(position)\(consecutiveFailures > 0 ? " (\(consecutiveFailures + 1) frames in a row)" : ""): \($0); keeping the last good pose, frame not fused\(lookedUp ? "; relocalisation found no pose" : "")"
                })
                return nil
            }
            return (recovered, true)
        }
        return (result, false)
    }

    /// Loop closure for a frame tracked to `pose` (before it is fused): local first; when that
    /// neither closes nor finds the old surface in agreement, global from an old keyframe that
    /// looks like the frame. When the map is bent, the trajectory and the keyframes move with it
    /// and the frame takes the corrected pose. `code` receives the frame's fern code when the
    /// global search computed it, so the keyframes do not compute it again.
    private func closeLoop(pose: RigidTransform, position: Int, color: ColorImage?, depth: DepthImage, live: [VertexNormalMap],
                           code: inout FernDatabase.Code?) -> RigidTransform {
        guard let loopCloser, var search = globalLoopSearch else { return pose }
        let start = DispatchTime.now().uptimeNanoseconds
        defer { loopClosureSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let step = LoopClosureStep.run(fusion, pose: pose, closer: loopCloser, search: &search, keyframes: relocaliser,
                                       color: color, depth: depth, live: live)
        globalLoopSearch = search
        code = step.code
        if case .rejected(let reason) = step.local { rejected(reason, kind: "local", position: position) }
        var kind = "local"
        if let hypothesis = step.global?.hypothesis {
            kind = "global from keyframe \(hypothesis.keyframePosition) (\(hypothesis.inliers) of \(hypothesis.matches) keypoint matches)"
            if case .rejected(let reason) = step.outcome { rejected(reason, kind: kind, position: position) }
        }
        switch step.outcome {
        case .skipped, .rejected:
            return pose
        case .reactivated(let count):
            loopClosureAttempts += 1
            loopClosureReactivations += 1
            logger.debug("inactive surface agrees with the active map; made active again", metadata: ["frame": "\(position)", "kind": "\(kind)", "surfels": "\(count)"])
            return pose
        case .closed(let report, let deformation, let corrected):
            loopClosureAttempts += 1
            loopClosures.append((position, report))
            for k in trajectory.indices {
                trajectory[k].pose = deformation.deform(trajectory[k].pose, time: trajectoryTicks[k])
            }
            relocaliser?.moveKeyframes { keyframePose, keyframePosition in
                tickOfPosition[keyframePosition].map { deformation.deform(keyframePose, time: $0) } ?? keyframePose
            }
            logger.notice("\(String(format: "loop closed at frame %d (%@): %d constraints, %d pins, residual %.1f -> %.1f mm, camera moved %.1f mm / %.2f deg, %d surfels active again, %.0f ms", position, kind, report.constraints, report.pins, report.residualBefore * 1000, report.residualAfter * 1000, report.correctionMetres * 1000, report.correctionDegrees, report.reactivated, report.seconds * 1000))")
            return corrected
        }
    }

    private func rejected(_ reason: LoopCloser.Rejection, kind: String, position: Int) {
        loopClosureAttempts += 1
        loopClosureRejections += 1
        loopClosureRejectionsByCheck[reason.check, default: 0] += 1
        logger.debug("loop closure rejected", metadata: ["frame": "\(position)", "kind": "\(kind)", "reason": "\(reason)"])
    }

    /// Records a frame that could not be placed: one warning per lost stretch (and every 50th
    /// frame of it), a debug line for the others.
    private func notFused(_ position: Int, _ failure: String, warning: (String) -> String) {
        trackingFailures.append((position, failure))
        consecutiveFailures += 1
        if consecutiveFailures == 1 || consecutiveFailures % 50 == 0 {
            logger.warning("\(warning(failure))")
        } else {
            logger.debug("frame \(position) not fused: \(failure)")
        }
    }

    /// Tries the relocaliser's hypotheses for a frame whose tracking failed: each is verified by
    /// tracking the frame against the map rendered from it (no holes filled from the last live
    /// frame, which was taken elsewhere), with the tracker's own failure tests. The first that
    /// passes is the frame's tracking result, and is logged (and listed for the summary). Every
    /// hypothesis is a registration of matched keypoints or surface shape (`Relocaliser`): two
    /// methods that agree, where ICP from a keyframe's pose alone would be one.
    /// With `piece`, the frame is relocalised in the piece instead, from its keyframes.
    private func relocalise(live: [VertexNormalMap], intensity: [IntensityMap]?, color: ColorImage?, depth: DepthImage,
                            position: Int, reason: String, in piece: MapPiece? = nil) -> TrackingResult? {
        guard options.relocalise, let relocaliser = piece == nil ? self.relocaliser : piece?.relocaliser else { return nil }
        let fusion = piece?.fusion ?? self.fusion
        let history = piece?.history ?? trackingHistory
        let start = DispatchTime.now().uptimeNanoseconds
        defer { relocalisationSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        func verify(_ hypothesis: Relocaliser.Hypothesis) -> TrackingResult? {
            let (result, failure) = register(live, intensity: intensity, to: fusion, from: hypothesis.worldFromCamera, history: history)
            guard failure == nil else {
                logger.debug("relocalisation hypothesis rejected", metadata: [
                    "frame": "\(position)", "keyframe": "\(hypothesis.keyframePosition)", "ferns": "\(hypothesis.fernDissimilarity)",
                    "\(hypothesis.byShape ? "shape" : "keypoints")": "\(hypothesis.inliers)/\(hypothesis.matches)", "icp": "\(failure ?? "")"])
                return nil
            }
            announce(Relocalisation(position: position, keyframePosition: hypothesis.keyframePosition, matches: hypothesis.matches,
                                    inliers: hypothesis.inliers, reason: reason, byShape: hypothesis.byShape), inPiece: piece != nil)
            return result
        }
        for hypothesis in relocaliser.hypotheses(color: color, depth: depth) {
            if let result = verify(hypothesis) { return result }
        }
        // Image corners found nothing that checks out: register by surface shape.
        let shaped = piece == nil ? self.relocaliser?.shapeHypotheses(depth: depth, threads: options.fusion.threads)
                                  : piece?.relocaliser?.shapeHypotheses(depth: depth, threads: options.fusion.threads)
        for hypothesis in shaped ?? [] {
            if let result = verify(hypothesis) { return result }
        }
        return nil
    }

    /// Logs a relocalisation that placed the camera (in the map, or with `inPiece` in the
    /// piece), and lists those in the map for the summary.
    private func announce(_ found: Relocalisation, inPiece: Bool = false) {
        if inPiece {
            logger.notice("relocalised frame \(found.position) in the separate piece from its keyframe \(found.keyframePosition) (\(found.evidence); the piece's tracking had failed: \(found.reason))")
            return
        }
        relocalisations.append(found)
        logger.notice("relocalised frame \(found.position) from keyframe \(found.keyframePosition) (\(found.evidence); tracking had failed: \(found.reason))")
    }

    /// Tracks a live frame against `fusion`'s map rendered from `pose` (a hypothesis from
    /// keyframes), with the tracker's failure tests and `history`'s check of a relocalisation.
    /// Surfels from the keep confidence up (default 1) are drawn, not only the stable ones: a
    /// camera lost early in a sequence has a map of mostly unstable surface, and tracking's fill
    /// from the last live frame is not available (it was taken elsewhere).
    private func register(_ live: [VertexNormalMap], intensity: [IntensityMap]?, to fusion: SurfelFusion, from pose: RigidTransform,
                          history: TrackingHistory) -> (result: TrackingResult, failure: String?) {
        let model = fusion.predictedModel(from: pose, intensity: usePhotometric, fillHoles: false,
                                          minimumConfidence: options.fusion.keepConfidence ?? 1)
        let result = tracker.track(frame: live, model: model.geometry, previousPose: pose,
                                   threads: options.fusion.threads, frameIntensity: intensity, modelIntensity: model.intensity)
        return (result, result.failure ?? history.relocalisationFailure(of: result))
    }

    /// Looks a frame tracked in the map (or in the current piece) up in the keyframes of the
    /// pieces left beside it. A hypothesis from keypoints (as for a global loop closure) is
    /// verified by ICP against the left piece's own surface; a piece placed so on two frames
    /// whose motions between the two frames of reference agree (`Placement`) is placed: a wrong
    /// join would put a second copy of a room into a map that was right without it.
    /// Returns the pieces placed (taken out of `waitingPieces`), each with the motion from its
    /// frame to the caller's and the frame that first placed it.
    private func lookUpLeftPieces(frame: Frame, position: Int, depth: DepthImage, live: [VertexNormalMap], intensity: [IntensityMap]?,
                                  pose: RigidTransform, code: FernDatabase.Code)
        -> [(waiting: WaitingPiece, transform: RigidTransform, firstPlacedAt: Int)] {
        var placedPieces: [(waiting: WaitingPiece, transform: RigidTransform, firstPlacedAt: Int)] = []
        let start = DispatchTime.now().uptimeNanoseconds
        defer { relocalisationSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        var keypoints: KeypointSet?
        for k in waitingPieces.indices.reversed() {
            if waitingPieces[k].pending?.hasExpired(at: frameIndex) == true { waitingPieces[k].pending = nil }
            guard frameIndex >= waitingPieces[k].nextLookup, let keyframes = waitingPieces[k].piece.relocaliser else { continue }
            let piece = waitingPieces[k].piece
            let (candidates, hypotheses) = keyframes.loopHypotheses(
                code: code, color: frame.color, depth: depth, before: .max, maxDissimilarity: options.globalLoopSearch.maxDissimilarity,
                count: options.globalLoopSearch.candidates, keypoints: &keypoints)
            guard candidates > 0 else { continue }
            let placed = hypotheses.lazy.compactMap { [self] hypothesis -> RigidTransform? in
                let (result, failure) = register(live, intensity: intensity, to: piece.fusion, from: hypothesis.worldFromCamera, history: piece.history)
                if let failure {
                    logger.debug("left piece lookup rejected", metadata: ["frame": "\(position)", "piece": "\(waitingPieces[k].report.frameRange)",
                                                                          "keyframe": "\(hypothesis.keyframePosition)", "icp": "\(failure)"])
                    return nil
                }
                return pose * result.pose.inverse
            }.first
            guard let transform = placed else {
                waitingPieces[k].nextLookup = frameIndex + Self.leftPieceRetry
                continue
            }
            let placement = Placement(position: position, index: frameIndex, transform: transform)
            if let pending = waitingPieces[k].pending, pending.isConfirmed(by: placement) {
                placedPieces.append((waitingPieces.remove(at: k), transform, pending.position))
                continue
            }
            waitingPieces[k].pending = placement
        }
        return placedPieces
    }

    /// Moves a left piece into the piece being tracked (surfels, keyframes, frames), by the motion
    /// found from two of that piece's frames: as `joinLater`, with the current piece for the map.
    private func merge(_ waiting: WaitingPiece, into piece: MapPiece, at position: Int, transformedBy transform: RigidTransform,
                       firstPlacedAt: Int) {
        let left = waiting.piece
        let offset = absorb(left, into: piece.fusion, keyframes: &piece.relocaliser, transformedBy: transform)
        piece.take(left, transformedBy: transform, tickOffset: offset)
        let report = waiting.report
        pieces.removeAll { $0.firstPosition == report.firstPosition }
        logger.notice("\(String(format: "the separate piece of frames %@ (%d fused), left earlier, became part of the piece being tracked at frame %d: that piece came to its surface (placed at frames %d and %d), moved %.1f mm / %.2f deg", report.frameRange, left.frames.count, position, firstPlacedAt, position, transform.translationNorm * 1000, transform.rotationAngle * 180 / .pi))")
    }

    /// A left piece's surfels (but those on surface `fusion` already has) and keyframes moved
    /// into `fusion` and `keyframes` (the map's or the current piece's), with times that end at
    /// `fusion`'s current one; its frames no longer count as lost. Returns the time offset its
    /// frames take.
    private func absorb(_ left: MapPiece, into fusion: SurfelFusion, keyframes: inout Relocaliser?,
                        transformedBy transform: RigidTransform) -> Int {
        let offset = fusion.absorb(left.fusion, transformedBy: transform, current: false)
        if let leftKeyframes = left.relocaliser {
            keyframes?.absorb(leftKeyframes, transformedBy: transform, tickOffset: offset)
        }
        let positions = Set(left.frames.map(\.position))
        trackingFailures.removeAll { positions.contains($0.position) }
        return offset
    }

    /// Moves a left piece into the map (surfels, keyframes, poses) by the motion found from two of
    /// the map's frames. Its surface takes times that end now (the camera is looking at it);
    /// the map's clock, live frame and tracking go on unchanged.
    private func joinLater(_ waiting: WaitingPiece, at position: Int, transformedBy transform: RigidTransform, firstPlacedAt: Int) {
        let piece = waiting.piece
        let offset = absorb(piece, into: fusion, keyframes: &relocaliser, transformedBy: transform)
        takeFrames(of: piece, transformedBy: transform, tickOffset: offset)
        sortTrajectory()
        let report = waiting.report
        if let k = pieces.firstIndex(where: { $0.firstPosition == report.firstPosition }) {
            pieces[k].joinedAt = position
            pieces[k].joinedLater = true
            pieces[k].shiftMetres = transform.translationNorm
            pieces[k].shiftDegrees = transform.rotationAngle * 180 / .pi
        }
        logger.notice("\(String(format: "the separate piece of frames %@ (%d fused, %d surfels), left earlier, joined the map at frame %d: the map came to its surface (placed at frames %d and %d), moved %.1f mm / %.2f deg", report.frameRange, piece.frames.count, piece.fusion.map.count, position, firstPlacedAt, position, transform.translationNorm * 1000, transform.rotationAngle * 180 / .pi))")
    }

    /// Adds the argmax agreement of `probabilities` (nearest-scaled to the label image) with
    /// `labels`, ignoring 255 and pixels without evidence.
    static func accumulate(_ count: AccuracyCount, probabilities: ClassProbabilityMap, labels: LabelImage) -> AccuracyCount {
        var result = count
        let predicted = probabilities.argmax().resizedNearest(width: labels.width, height: labels.height)
        for i in 0..<labels.count where labels.pixels[i] != ClassSet.ignoreLabel && predicted.pixels[i] != ClassSet.ignoreLabel {
            result.total += 1
            if labels.pixels[i] == predicted.pixels[i] { result.correct += 1 }
        }
        return result
    }
}
