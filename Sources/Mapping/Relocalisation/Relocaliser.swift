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
        /// The sequence position of the keyframe it came from.
        public var keyframePosition: Int
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

    /// Records a tracked frame: a keyframe when its appearance is new. Returns whether it became one.
    @discardableResult
    public mutating func observe(color: ColorImage?, depth: DepthImage, worldFromCamera: RigidTransform, position: Int) -> Bool {
        let code = database.encode(color: color, depth: depth)
        guard database.isNovel(code) else { return false }
        database.add(FernDatabase.Keyframe(code: code, worldFromCamera: worldFromCamera, position: position,
                                           features: features(color: color, depth: depth)))
        return true
    }

    /// Pose hypotheses for a lost frame, the best-supported first.
    public func hypotheses(color: ColorImage?, depth: DepthImage) -> [Hypothesis] {
        let code = database.encode(color: color, depth: depth)
        let nearest = database.nearest(code, count: parameters.candidates)
        guard !nearest.isEmpty else { return [] }
        let live = features(color: color, depth: depth)
        var registered: [Hypothesis] = [], own: [Hypothesis] = []
        for (index, dissimilarity) in nearest {
            let keyframe = database.keyframes[index]
            if own.isEmpty {
                own.append(Hypothesis(worldFromCamera: keyframe.worldFromCamera, keyframePosition: keyframe.position,
                                      fernDissimilarity: dissimilarity, matches: 0, inliers: 0))
            }
            let matches = KeypointDetector.match(live, keyframe.features)
            guard matches.count >= parameters.ransac.minimumInliers,
                  let fit = RigidRANSAC.estimate(source: matches.map { live.points[$0.0] }, target: matches.map { keyframe.features.points[$0.1] },
                                                 parameters: parameters.ransac) else { continue }
            registered.append(Hypothesis(worldFromCamera: keyframe.worldFromCamera * fit.targetFromSource, keyframePosition: keyframe.position,
                                         fernDissimilarity: dissimilarity, matches: matches.count, inliers: fit.inliers))
        }
        return registered.sorted { $0.inliers > $1.inliers } + own
    }

    func features(color: ColorImage?, depth: DepthImage) -> KeypointSet {
        guard let color, color.width == depth.width, color.height == depth.height else { return KeypointSet() }
        return detector.detect(grey: IntensityMap.luma(color), width: color.width, height: color.height, depth: depth, intrinsics: intrinsics)
    }
}
