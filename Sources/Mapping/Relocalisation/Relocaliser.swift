import Geometry
import Imaging

/// Keeps keyframes of the places a tracked camera has been, and proposes poses for a frame whose
/// tracking failed (ElasticFusion's fern relocalisation, with a keypoint registration added so
/// that a camera that moved far while lost, beyond ICP's reach, is still found).
///
/// Each tracked frame is fern-encoded; a frame unlike every keyframe becomes one and keeps its
/// pose and keypoints with depth. For a lost frame, the keyframes whose ferns are most similar
/// are registered to it by keypoint matching and RANSAC, which gives a pose hypothesis; the
/// most similar keyframe's own pose is one too (for frames without colour, or too few
/// keypoints). Each hypothesis costs an ICP, so a lost frame tries at most `candidates` + 1.
/// The caller verifies each hypothesis by ICP against the map, so a wrong one is never fused.
public struct Relocaliser: Sendable {
    public struct Parameters: Sendable, Equatable {
        public var ferns = FernDatabase.Parameters()
        public var keypoints = KeypointDetector.Parameters()
        public var ransac = RigidRANSAC.Parameters()
        /// Keyframes tried per lost frame (the most similar by ferns).
        public var candidates = 5
        public init() {}
    }

    /// A pose to verify, and where it came from.
    public struct Hypothesis: Sendable {
        public var worldFromCamera: RigidTransform
        /// The sequence position of the keyframe it came from, and its map time.
        public var keyframePosition: Int
        public var keyframeTick: Int
        public var fernDissimilarity: Double
        /// Keypoint matches and RANSAC inliers (0 for a keyframe's own pose).
        public var matches: Int
        public var inliers: Int
    }

    public let parameters: Parameters
    public private(set) var database: FernDatabase
    let detector: KeypointDetector
    let intrinsics: Intrinsics

    public init(intrinsics: Intrinsics, parameters: Parameters = Parameters()) {
        self.parameters = parameters
        self.intrinsics = intrinsics
        database = FernDatabase(parameters: parameters.ferns)
        detector = KeypointDetector(parameters: parameters.keypoints)
    }

    public var keyframeCount: Int { database.keyframes.count }

    /// Moves the keyframes' poses with the map (loop closure).
    public mutating func moveKeyframes(_ move: (_ pose: RigidTransform, _ position: Int) -> RigidTransform) {
        database.movePoses(move)
    }

    /// The frame's fern code, computed once and shared by `observe` and `loopHypotheses`.
    public func encode(color: ColorImage?, depth: DepthImage) -> FernDatabase.Code {
        database.encode(color: color, depth: depth)
    }

    /// Records a tracked frame: a keyframe when its appearance is new. Returns whether it became one.
    @discardableResult
    public mutating func observe(color: ColorImage?, depth: DepthImage, worldFromCamera: RigidTransform, position: Int,
                                 tick: Int, code: FernDatabase.Code? = nil) -> Bool {
        let code = code ?? database.encode(color: color, depth: depth)
        guard database.isNovel(code) else { return false }
        database.add(FernDatabase.Keyframe(code: code, worldFromCamera: worldFromCamera, position: position, tick: tick,
                                           features: features(color: color, depth: depth)))
        return true
    }

    /// Pose hypotheses for a lost frame, the best-supported first.
    public func hypotheses(color: ColorImage?, depth: DepthImage) -> [Hypothesis] {
        let code = database.encode(color: color, depth: depth)
        let nearest = database.nearest(code, count: parameters.candidates)
        guard !nearest.isEmpty else { return [] }
        let live = features(color: color, depth: depth)
        let keyframe = database.keyframes[nearest[0].index]
        let own = Hypothesis(worldFromCamera: keyframe.worldFromCamera, keyframePosition: keyframe.position, keyframeTick: keyframe.tick,
                             fernDissimilarity: nearest[0].dissimilarity, matches: 0, inliers: 0)
        return register(live, to: nearest) + [own]
    }

    /// Pose hypotheses for a tracked frame from keyframes taken before map time `before` (global
    /// loop closure: the camera is back at a place it left long ago), registered by keypoints,
    /// the best-supported first, with the number of keyframes that were candidates. Only
    /// keyframes at most `maxDissimilarity` from the frame by ferns are tried, at most `count`
    /// of them, and keypoints are detected only when there is one, so most frames cost a fern
    /// comparison per keyframe. A keyframe's own pose is no hypothesis here: the tracked pose is
    /// a better start than a view 10-30 cm away.
    public func loopHypotheses(code: FernDatabase.Code, color: ColorImage?, depth: DepthImage, before tick: Int,
                               maxDissimilarity: Double, count: Int) -> (candidates: Int, hypotheses: [Hypothesis]) {
        // Frames smaller than the fern image all encode alike: no appearance to match on.
        guard depth.width >= parameters.ferns.width, depth.height >= parameters.ferns.height else { return (0, []) }
        let nearest = database.nearest(code, count: count) { $0.tick < tick }.filter { $0.dissimilarity <= maxDissimilarity }
        guard !nearest.isEmpty else { return (0, []) }
        return (nearest.count, register(features(color: color, depth: depth), to: nearest))
    }

    /// Keypoint registrations of a frame to keyframes, the most RANSAC inliers first.
    func register(_ live: KeypointSet, to keyframes: [(index: Int, dissimilarity: Double)]) -> [Hypothesis] {
        var registered: [Hypothesis] = []
        for (index, dissimilarity) in keyframes {
            let keyframe = database.keyframes[index]
            let matches = KeypointDetector.match(live, keyframe.features)
            guard matches.count >= parameters.ransac.minimumInliers,
                  let fit = RigidRANSAC.estimate(source: matches.map { live.points[$0.0] }, target: matches.map { keyframe.features.points[$0.1] },
                                                 parameters: parameters.ransac) else { continue }
            registered.append(Hypothesis(worldFromCamera: keyframe.worldFromCamera * fit.targetFromSource, keyframePosition: keyframe.position,
                                         keyframeTick: keyframe.tick,
                                         fernDissimilarity: dissimilarity, matches: matches.count, inliers: fit.inliers))
        }
        return registered.sorted { $0.inliers > $1.inliers }
    }

    func features(color: ColorImage?, depth: DepthImage) -> KeypointSet {
        guard let color, color.width == depth.width, color.height == depth.height else { return KeypointSet() }
        return detector.detect(grey: IntensityMap.luma(color), width: color.width, height: color.height, depth: depth, intrinsics: intrinsics)
    }
}
