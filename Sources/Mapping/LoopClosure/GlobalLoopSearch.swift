import Imaging
import Geometry

/// ElasticFusion's global loop closure, driven by the relocaliser's keyframes: when a tracked
/// frame looks like a keyframe taken before the active window (randomised ferns), the frame is
/// registered to that keyframe by keypoints, which says where the camera is against the old
/// surface however far the map has drifted; the loop closer then registers the live frame to
/// the old surface made around the keyframe's time, rendered from there, and bends the map as for
/// a local closure (`LoopCloser.attempt(_:pose:from:madeBy:live:)`).
///
/// A global attempt costs a keypoint detection, two renders and an ICP (about 0.1-0.2 s at
/// 640x480 on 2 threads, 0.3-0.4 s with the bend), so after any attempt the next waits
/// `retryAfter` frames: after a miss, the next frames would most likely miss too; after a
/// closure, a camera retracing an old path would otherwise close again on every frame with a
/// few millimetres each (seen on the kitchen played forwards and back). Frames without a similar
/// old keyframe cost only the fern comparisons.
public struct GlobalLoopSearch: Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Old keyframes at most this dissimilar by ferns are candidates (ElasticFusion's
        /// keyframe novelty threshold: a frame this similar would not have become a keyframe).
        public var maxDissimilarity = 0.3095
        /// Candidates registered per attempt, the most similar first.
        public var candidates = 2
        /// Frames to wait after an attempt (closed or not).
        public var retryAfter = 15
        public init() {}
    }

    /// What an attempt did.
    public struct Attempt: Sendable {
        public var outcome: LoopCloser.Outcome
        /// The keyframe hypothesis the outcome came from (nil when none was tried).
        public var hypothesis: Relocaliser.Hypothesis?
        /// Hypotheses registered by keypoints and tried.
        public var tried: Int
    }

    public var parameters: Parameters
    /// Map time before which no attempt is made (the back-off).
    var nextTick = 0
    /// Map time at which the camera was last found consistent with old surface (a local or
    /// global closure, or old surface found in agreement); nil before the first. Bounds later
    /// corrections (`LoopClosureParameters.driftAllowance`).
    public var lastConsistentTick: Int?

    /// Frames since `lastConsistentTick` at the map's current time.
    func framesSinceConsistent(_ fusion: SurfelFusion) -> Int? { lastConsistentTick.map { fusion.tick - $0 } }

    public init(parameters: Parameters = Parameters()) { self.parameters = parameters }

    /// Tries a global closure for a frame tracked to `pose` (before it is fused); `code` is the
    /// frame's fern code, `live` its vertex and normal pyramid (what is registered to the old
    /// surface).
    public mutating func attempt(_ fusion: SurfelFusion, pose: RigidTransform, closer: LoopCloser, relocaliser: Relocaliser,
                                 code: FernDatabase.Code, color: ColorImage?, depth: DepthImage, live: [VertexNormalMap]) -> Attempt {
        let oldest = fusion.tick - fusion.parameters.timeDelta
        guard fusion.tick >= nextTick, oldest > 0 else { return Attempt(outcome: .skipped, hypothesis: nil, tried: 0) }
        let (candidates, hypotheses) = relocaliser.loopHypotheses(code: code, color: color, depth: depth, before: oldest,
                                                    maxDissimilarity: parameters.maxDissimilarity, count: parameters.candidates)
        var last = Attempt(outcome: .skipped, hypothesis: nil, tried: 0)
        for hypothesis in hypotheses {
            var outcome = closer.attempt(fusion, pose: pose, from: hypothesis.worldFromCamera,
                                         madeBy: hypothesis.keyframeTick + closer.parameters.keyframeSurfaceFrames, live: live,
                                         framesSinceConsistent: framesSinceConsistent(fusion))
            if case .closed(var report, let deformation, let corrected) = outcome {
                report.keyframePosition = hypothesis.keyframePosition
                outcome = .closed(report, deformation, pose: corrected)
            }
            last = Attempt(outcome: outcome, hypothesis: hypothesis, tried: last.tried + 1)
            switch outcome {
            case .closed, .reactivated:
                nextTick = fusion.tick + parameters.retryAfter
                lastConsistentTick = fusion.tick
                return last
            case .skipped, .rejected: continue
            }
        }
        if candidates > 0 { nextTick = fusion.tick + parameters.retryAfter }
        return last
    }
}

/// One frame's loop closure, as `reconstruct` and `bench tracking` both run it: the local
/// closure first; when it neither closes nor finds the old surface in agreement, the global
/// search. What each did is kept for the caller's log.
public struct LoopClosureStep: Sendable {
    /// The local closure's outcome.
    public var local: LoopCloser.Outcome
    /// The global search, when it ran.
    public var global: GlobalLoopSearch.Attempt?
    /// The frame's fern code, when the global search computed it (the keyframes reuse it).
    public var code: FernDatabase.Code?

    /// What happened to the map this frame: the global attempt's outcome when it tried a
    /// keyframe, else the local one's.
    public var outcome: LoopCloser.Outcome {
        if let global, global.hypothesis != nil { return global.outcome }
        return local
    }

    /// The registrations refused this frame: the local one's, and the global attempt's when it
    /// tried a keyframe.
    public var rejections: [LoopCloser.Rejection] {
        var refused: [LoopCloser.Rejection] = []
        if case .rejected(let reason) = local { refused.append(reason) }
        if let global, global.hypothesis != nil, case .rejected(let reason) = global.outcome { refused.append(reason) }
        return refused
    }

    public static func run(_ fusion: SurfelFusion, pose: RigidTransform, closer: LoopCloser, search: inout GlobalLoopSearch,
                           keyframes: Relocaliser?, color: ColorImage?, depth: DepthImage, live: [VertexNormalMap]) -> LoopClosureStep {
        var step = LoopClosureStep(local: closer.attempt(fusion, pose: pose, framesSinceConsistent: search.framesSinceConsistent(fusion)),
                                   global: nil, code: nil)
        switch step.local {
        case .closed, .reactivated:
            search.lastConsistentTick = fusion.tick
            return step
        case .skipped, .rejected:
            guard let keyframes else { return step }
            let code = keyframes.encode(color: color, depth: depth)
            step.code = code
            step.global = search.attempt(fusion, pose: pose, closer: closer, relocaliser: keyframes, code: code,
                                         color: color, depth: depth, live: live)
            return step
        }
    }
}
