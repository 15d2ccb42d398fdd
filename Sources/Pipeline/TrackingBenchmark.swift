import Foundation
import Geometry
import Imaging
import Mapping
import Semantics
import Sequences

/// Tracking accuracy and speed on a sequence with ground truth: tracks from the first true pose,
/// fuses every tracked frame, times tracking alone and tracking + fusion (reading not timed).
public struct TrackingBenchmark {
    public struct Result: Sendable {
        public var trackingMilliseconds: [Double]
        public var totalMilliseconds: [Double]
        public var failures: Int
        /// Gauss-Newton iterations per tracked frame (all levels).
        public var iterations: [Int] = []
        /// Milliseconds per frame of the tracking stages: live frame (filter + pyramid),
        /// model prediction (splatting + pyramid), alignment.
        public var stageMilliseconds: [String: [Double]] = [:]
        public var ate: AbsoluteTrajectoryError?
        /// Milliseconds per tracked frame spent on loop closure (the inactive model's prediction
        /// and, where it is in view, the registration and any deformation; keeping the keyframes
        /// and the global search among them); part of the total.
        public var loopClosureMilliseconds: [Double] = []
        /// The closures that bent the map, with the time each took.
        public var loopClosures: [LoopClosureReport] = []
        /// Registrations refused, by the check they failed (as `reconstruct` counts them).
        public var loopClosureRejections: [LoopCloser.Rejection.Check: Int] = [:]
        public var trackingMedian: Double { FusionBenchmark.Run.percentile(trackingMilliseconds, 0.5) }
        public var trackingP10: Double { FusionBenchmark.Run.percentile(trackingMilliseconds, 0.1) }
        public var trackingP90: Double { FusionBenchmark.Run.percentile(trackingMilliseconds, 0.9) }
        public var totalMedian: Double { FusionBenchmark.Run.percentile(totalMilliseconds, 0.5) }
    }

    public let source: FrameSource
    public let positions: [Int]
    public var parameters: TrackingParameters
    /// Confidence surfels need to be in the tracker's model (nil: the stable threshold).
    public var modelConfidence: Float?
    /// Frames over which that confidence rises to its full value (`FusionParameters.trackingModelWarmup`).
    public var modelWarmup = FusionParameters().trackingModelWarmup
    /// Cleanup's keep confidence (`FusionParameters.keepConfidence`; nil: ElasticFusion's rule).
    public var keepConfidence: Float?
    /// Close loops by deforming the map, as `reconstruct` does.
    public var loopClosure = true
    public init(source: FrameSource, positions: [Int], parameters: TrackingParameters = TrackingParameters()) {
        self.source = source; self.positions = positions; self.parameters = parameters
    }

    public func run(progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        var fusionParameters = FusionParameters()
        fusionParameters.trackingConfidenceThreshold = modelConfidence
        fusionParameters.trackingModelWarmup = modelWarmup
        fusionParameters.keepConfidence = keepConfidence
        let fusion = SurfelFusion(intrinsics: source.intrinsics, classCount: 0, parameters: fusionParameters)
        let tracker = ICPTracker(parameters: parameters)
        var history = TrackingHistory()
        let photometric = parameters.photometricWeight > 0
        var tracking: [Double] = [], total: [Double] = []
        var estimated: [RigidTransform] = [], truth: [RigidTransform] = []
        var failures = 0
        var iterations: [Int] = []
        var stages: [String: [Double]] = [:]
        var last: RigidTransform?
        let closer = loopClosure ? LoopCloser(tracking: parameters) : nil
        // Global closures start from keyframes, kept as `reconstruct` keeps them.
        var keyframes = loopClosure ? Relocaliser(intrinsics: source.intrinsics) : nil
        var search = GlobalLoopSearch()
        var loopMilliseconds: [Double] = [], closures: [LoopClosureReport] = []
        var rejections: [LoopCloser.Rejection.Check: Int] = [:]
        var ticks: [Int] = []
        for (k, position) in positions.enumerated() {
            let frame = try source.frame(at: position)
            if let error = frame.poseError { throw error }
            guard let depth = frame.depth, let gt = frame.worldFromCamera else {
                throw PipelineError.invalidOption("bench tracking needs depth and ground-truth poses (\(frame.source))")
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            var pose = gt
            let live = fusion.liveFrame(depth: depth)
            let liveIntensity = photometric ? fusion.liveIntensity(color: frame.color) : nil
            let tLive = DispatchTime.now().uptimeNanoseconds
            if let previous = last {
                let model = fusion.predictedModel(from: previous, intensity: photometric)
                let tModel = DispatchTime.now().uptimeNanoseconds
                var result = tracker.track(frame: live.pyramid, model: model.geometry, previousPose: previous,
                                           frameIntensity: liveIntensity, modelIntensity: model.intensity)
                if let jump = history.failure(of: result, from: previous) {
                    result.failure = jump
                    result.pose = previous
                } else if result.succeeded {
                    history.record(result, from: previous)
                }
                let tAligned = DispatchTime.now().uptimeNanoseconds
                stages["live frame", default: []].append(Double(tLive - t0) / 1e6)
                stages["model prediction", default: []].append(Double(tModel - tLive) / 1e6)
                stages["alignment", default: []].append(Double(tAligned - tModel) / 1e6)
                iterations.append(result.iterations)
                if result.succeeded { fusion.acceptLiveFrame(live.pyramid, intensity: liveIntensity); pose = result.pose } else { failures += 1; pose = previous }
                if let closer, let relocaliser = keyframes, result.succeeded {
                    let start = DispatchTime.now().uptimeNanoseconds
                    let step = LoopClosureStep.run(fusion, pose: pose, closer: closer, search: &search, keyframes: relocaliser,
                                                   color: frame.color, depth: depth, live: live.pyramid)
                    for reason in step.rejections { rejections[reason.check, default: 0] += 1 }
                    if case .closed(let report, let deformation, let corrected) = step.outcome {
                        pose = corrected
                        closures.append(report)
                        for k in estimated.indices { estimated[k] = deformation.deform(estimated[k], time: ticks[k]) }
                        keyframes?.moveKeyframes { keyframePose, position in deformation.deform(keyframePose, time: ticks[position]) }
                    }
                    keyframes?.observe(color: frame.color, depth: depth, worldFromCamera: pose, position: k, tick: fusion.tick,
                                       code: step.code ?? relocaliser.encode(color: frame.color, depth: depth))
                    loopMilliseconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
            } else {
                fusion.acceptLiveFrame(live.pyramid, intensity: liveIntensity)
            }
            let t1 = DispatchTime.now().uptimeNanoseconds
            try fusion.integrate(depth: depth, color: frame.color, worldFromCamera: pose, source: frame.source,
                                 filteredDepth: live.filteredDepth)
            let t2 = DispatchTime.now().uptimeNanoseconds
            if last != nil { tracking.append(Double(t1 - t0) / 1e6); total.append(Double(t2 - t0) / 1e6) }
            last = pose
            estimated.append(pose); truth.append(gt); ticks.append(fusion.tick)
            progress?(k + 1, positions.count)
        }
        return Result(trackingMilliseconds: tracking, totalMilliseconds: total, failures: failures,
                      iterations: iterations, stageMilliseconds: stages, ate: AbsoluteTrajectoryError(estimated: estimated, groundTruth: truth),
                      loopClosureMilliseconds: loopMilliseconds, loopClosures: closures, loopClosureRejections: rejections)
    }
}

/// A sequence at a lower resolution (every `factor`-th pixel of depth and colour), for
/// measuring the pipeline at 320x240 on 640x480 data.
public final class DownsampledSource: FrameSource {
    public let base: FrameSource
    public let factor: Int
    public let intrinsics: Intrinsics
    public var name: String { base.name }
    public var layout: String { base.layout }
    public var frameCount: Int { base.frameCount }
    public var capabilities: SequenceCapabilities { base.capabilities }
    public var classSet: ClassSet? { base.classSet }

    public init(_ base: FrameSource, factor: Int) throws {
        self.base = base
        self.factor = factor
        let k = base.intrinsics
        let s = Double(factor)
        intrinsics = Intrinsics(fx: k.fx / s, fy: k.fy / s, cx: (k.cx + 0.5) / s - 0.5, cy: (k.cy + 0.5) / s - 0.5,
                                width: k.width / factor, height: k.height / factor)
    }

    public func frame(at index: Int) throws -> Frame {
        var frame = try base.frame(at: index)
        let w = intrinsics.width, h = intrinsics.height, f = factor, o = factor / 2
        func pick<P>(_ image: Image<P>) -> Image<P> {
            var pixels = [P]()
            pixels.reserveCapacity(w * h)
            for y in 0..<h { for x in 0..<w { pixels.append(image[x * f + o, y * f + o]) } }
            return Image(width: w, height: h, pixels: pixels)
        }
        frame.color = pick(frame.color)
        frame.depth = frame.depth.map(pick)
        frame.labels = frame.labels.map(pick)
        return frame
    }
}
