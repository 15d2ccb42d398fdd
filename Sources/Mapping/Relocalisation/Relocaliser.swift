import Geometry
import Imaging

/// Keeps keyframes of the places a tracked camera has been, and proposes poses for a frame whose
/// tracking failed (ElasticFusion's fern relocalisation, with a keypoint registration added so
/// that a camera that moved far while lost, beyond ICP's reach, is still found).
///
/// Each tracked frame is fern-encoded; a frame unlike every keyframe becomes one and keeps its
/// pose and keypoints with depth. For a lost frame, the keyframes whose ferns are most similar
/// are registered to it by keypoint matching and RANSAC, which gives a pose hypothesis. Each
/// hypothesis costs an ICP, so a lost frame tries at most `candidates`. The caller verifies each
/// hypothesis by ICP against the map. ElasticFusion also tries the most similar keyframe's own
/// pose; that is no hypothesis here: ICP from a view tens of centimetres away can settle on the
/// wrong one of two similar places and pass every check, with nothing else speaking for it
/// (on randomly cut kitchen runs it placed the camera 0.78 m off and a piece 0.3 m off, and
/// never placed one right that keypoints or shape did not; docs/results.md).
///
/// When none of those checks out, `shapeHypotheses` registers the frame to keyframes by surface
/// shape (FPFH and RANSAC, `PointFeatureExtractor`): corners stop matching once the camera sees
/// the old surface from much further away or where it has little texture, and shape does not
/// depend on either. It is slower (tens of milliseconds a keyframe), so each lost frame tries a
/// few keyframes, newest first, and the next lost frame goes on where it stopped.
public struct Relocaliser: Sendable {
    public struct Parameters: Sendable, Equatable {
        public var ferns = FernDatabase.Parameters()
        public var keypoints = KeypointDetector.Parameters()
        public var ransac = RigidRANSAC.Parameters()
        /// Keyframes tried per lost frame (the most similar by ferns).
        public var candidates = 5
        public var shape = PointFeatureExtractor.Parameters()
        /// Shape registration: a match is an inlier within 1.5 voxels, and a registration needs
        /// 30 of them (correct ones of the 7-Scenes kitchen have 35-45 of about 2,000 points,
        /// wrong ones rarely more than 20; ICP against the map verifies each anyway).
        public var shapeRANSAC: RigidRANSAC.Parameters = {
            var p = RigidRANSAC.Parameters()
            p.iterations = 5000
            p.inlierDistance = 0.075
            p.minimumInliers = 30
            p.minimumSpread = 0.1
            return p
        }()
        /// Keyframes registered by shape per lost frame.
        public var shapeCandidates = 2
        /// Once every keyframe has been tried, a camera that stays lost is registered by shape
        /// only on every this-many-th frame: it is somewhere the map does not cover, and each
        /// try costs about 60 ms at 640x480.
        public var shapeRetryInterval = 4
        public init() {}
    }

    /// A pose to verify, and where it came from.
    public struct Hypothesis: Sendable {
        public var worldFromCamera: RigidTransform
        /// The sequence position of the keyframe it came from, and its map time.
        public var keyframePosition: Int
        public var keyframeTick: Int
        public var fernDissimilarity: Double
        /// Keypoint (or shape) matches and RANSAC inliers.
        public var matches: Int
        public var inliers: Int
        /// Whether it came from surface shape rather than image corners.
        public var byShape = false
    }

    public let parameters: Parameters
    public private(set) var database: FernDatabase
    let detector: KeypointDetector
    let shapeExtractor: PointFeatureExtractor
    let intrinsics: Intrinsics
    /// Shape histograms of the keyframes tried during the current loss, by keyframe index.
    var shapeCache: [Int: PointFeatureSet] = [:]
    /// Keyframe registrations by shape in the current loss (newest keyframe first, wrapping
    /// round), and the lost frames it has lasted.
    var shapeTried = 0, lostFrames = 0

    public init(intrinsics: Intrinsics, parameters: Parameters = Parameters()) {
        self.parameters = parameters
        self.intrinsics = intrinsics
        database = FernDatabase(parameters: parameters.ferns)
        detector = KeypointDetector(parameters: parameters.keypoints)
        shapeExtractor = PointFeatureExtractor(parameters: parameters.shape)
    }

    public var keyframeCount: Int { database.keyframes.count }

    /// Moves the keyframes' poses with the map (loop closure).
    public mutating func moveKeyframes(_ move: (_ pose: RigidTransform, _ position: Int) -> RigidTransform) {
        database.movePoses(move)
    }

    /// Takes in the keyframes of `other` (kept for a piece of the scene tracked in its own
    /// frame), their poses moved by `transform` and their map times shifted by `tickOffset`.
    public mutating func absorb(_ other: Relocaliser, transformedBy transform: RigidTransform, tickOffset: Int) {
        for var keyframe in other.database.keyframes {
            keyframe.worldFromCamera = transform * keyframe.worldFromCamera
            keyframe.tick += tickOffset
            database.add(keyframe)
        }
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
                                           features: features(color: color, depth: depth),
                                           surface: shapeExtractor.orientedPoints(depth: depth, intrinsics: intrinsics)))
        return true
    }

    /// Pose hypotheses for a lost frame from surface shape: the frame registered to the next
    /// `shapeCandidates` keyframes, newest first (the camera is most likely near where it was
    /// lost), continuing from where the previous lost frame stopped and wrapping round, so a
    /// camera that stays lost tries every keyframe in turn (after the first round, on every
    /// `shapeRetryInterval`-th lost frame only). The most inliers first.
    public mutating func shapeHypotheses(depth: DepthImage, threads: Int = defaultThreadCount) -> [Hypothesis] {
        lostFrames += 1
        let n = database.keyframes.count
        guard n > 0, parameters.shapeCandidates > 0 else { return [] }
        guard shapeTried < n || lostFrames % max(parameters.shapeRetryInterval, 1) == 0 else { return [] }
        let live = shapeExtractor.extract(depth: depth, intrinsics: intrinsics)
        guard live.count >= parameters.shapeRANSAC.minimumInliers else { return [] }
        var registered: [Hypothesis] = []
        for k in 0..<min(parameters.shapeCandidates, n) {
            let index = n - 1 - (shapeTried + k) % n
            let keyframe = database.keyframes[index]
            let shape = shapeCache[index] ?? shapeExtractor.describe(keyframe.surface)
            shapeCache[index] = shape
            let matches = PointFeatureExtractor.match(live, shape, threads: threads)
            guard matches.count >= parameters.shapeRANSAC.minimumInliers,
                  let fit = RigidRANSAC.estimate(source: matches.map { live.points[$0.0] }, target: matches.map { shape.points[$0.1] },
                                                 parameters: parameters.shapeRANSAC) else { continue }
            registered.append(Hypothesis(worldFromCamera: keyframe.worldFromCamera * fit.targetFromSource, keyframePosition: keyframe.position,
                                         keyframeTick: keyframe.tick, fernDissimilarity: .nan, matches: matches.count, inliers: fit.inliers,
                                         byShape: true))
        }
        shapeTried += min(parameters.shapeCandidates, n)
        return registered.sorted { $0.inliers > $1.inliers }
    }

    /// Ends a loss: the next one starts its shape search at the newest keyframe again, and the
    /// histograms computed for this one are dropped.
    public mutating func trackingRecovered() {
        guard lostFrames != 0 || !shapeCache.isEmpty else { return }
        shapeTried = 0
        lostFrames = 0
        shapeCache = [:]
    }

    /// Pose hypotheses for a lost frame, the best-supported first.
    public func hypotheses(color: ColorImage?, depth: DepthImage) -> [Hypothesis] {
        let code = database.encode(color: color, depth: depth)
        let nearest = database.nearest(code, count: parameters.candidates)
        guard !nearest.isEmpty else { return [] }
        return register(features(color: color, depth: depth), to: nearest)
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
        var keypoints: KeypointSet?
        return loopHypotheses(code: code, color: color, depth: depth, before: tick, maxDissimilarity: maxDissimilarity, count: count,
                              keypoints: &keypoints)
    }

    /// `loopHypotheses`, with the frame's keypoints detected into `keypoints` when it is nil and
    /// taken from it otherwise: a frame looked up in several relocalisers (the map's, and those
    /// of pieces kept beside it) is detected once. Relocalisers sharing the fern parameters share
    /// `code` too.
    public func loopHypotheses(code: FernDatabase.Code, color: ColorImage?, depth: DepthImage, before tick: Int,
                               maxDissimilarity: Double, count: Int, keypoints: inout KeypointSet?) -> (candidates: Int, hypotheses: [Hypothesis]) {
        // Frames smaller than the fern image all encode alike: no appearance to match on.
        guard depth.width >= parameters.ferns.width, depth.height >= parameters.ferns.height else { return (0, []) }
        let nearest = database.nearest(code, count: count) { $0.tick < tick }.filter { $0.dissimilarity <= maxDissimilarity }
        guard !nearest.isEmpty else { return (0, []) }
        let live = keypoints ?? features(color: color, depth: depth)
        keypoints = live
        return (nearest.count, register(live, to: nearest))
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
        detector.detect(color: color, depth: depth, intrinsics: intrinsics)
    }
}
