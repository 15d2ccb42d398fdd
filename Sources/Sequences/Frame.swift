import Geometry
import Imaging
import Semantics

/// One RGB-D frame as every reader delivers it.
///
/// Depth is in metres with 0 for missing measurements, whatever the source's integer scale.
public struct Frame: @unchecked Sendable {
    /// Position in the sequence (0-based, after any frame selection).
    public var index: Int
    /// Seconds; sequences without timestamps use the frame number.
    public var timestamp: Double
    public var color: ColorImage
    public var depth: DepthImage?
    /// Ground-truth or recorded camera-to-world pose, if the sequence has one.
    public var worldFromCamera: RigidTransform?
    /// Ground-truth class ids (255 = ignore), if the sequence has them.
    public var labels: LabelImage?
    /// Recorded per-pixel class probabilities, if the sequence has them.
    public var probabilities: ClassProbabilityMap?
    /// Where the frame came from, for messages (e.g. the colour file's path).
    public var source: String
    /// Why the frame's ground-truth pose could not be used (then `worldFromCamera` is nil).
    ///
    /// Readers do not throw for a bad pose file: with tracking, ground truth only scores the
    /// run, so one bad pose leaves that frame out of the score instead of stopping the run.
    /// Runs that fuse with ground-truth poses throw this error.
    public var poseError: SequenceError?
    /// How far the stored rotation was from orthonormal before it was re-orthonormalised
    /// (`‖R − nearest rotation‖_F`; 0 for poses stored as quaternions).
    public var poseDeviation: Double = 0

    public init(index: Int, timestamp: Double, color: ColorImage, depth: DepthImage? = nil,
                worldFromCamera: RigidTransform? = nil, labels: LabelImage? = nil,
                probabilities: ClassProbabilityMap? = nil, source: String = "", poseError: SequenceError? = nil) {
        self.index = index; self.timestamp = timestamp; self.color = color; self.depth = depth
        self.worldFromCamera = worldFromCamera; self.labels = labels; self.probabilities = probabilities
        self.source = source; self.poseError = poseError
    }
}

/// What a sequence offers, known before any frame is read.
public struct SequenceCapabilities: Equatable, Sendable {
    public var hasDepth: Bool
    public var hasPoses: Bool
    public var hasLabels: Bool
    public var hasProbabilities: Bool
    /// Whether each colour pixel sees what the depth pixel at the same place sees (one camera, or
    /// depth reprojected into the colour camera by the sensor's driver), so tracking can compare
    /// colours through the depth's geometry (the photometric term). Known from the format, not
    /// measured: false where the layout ships the two cameras' raw images (7-Scenes, ScanNet).
    public var colorRegisteredToDepth: Bool
    /// Whether the depth is rendered from a scene model (with simulated, unbiased noise) rather
    /// than measured: a real sensor's error grows with range beyond its noise, a renderer's does
    /// not, and tracking weights its points accordingly.
    public var depthIsRendered: Bool
    public init(hasDepth: Bool, hasPoses: Bool, hasLabels: Bool = false, hasProbabilities: Bool = false,
                colorRegisteredToDepth: Bool = false, depthIsRendered: Bool = false) {
        self.hasDepth = hasDepth; self.hasPoses = hasPoses; self.hasLabels = hasLabels; self.hasProbabilities = hasProbabilities
        self.colorRegisteredToDepth = colorRegisteredToDepth; self.depthIsRendered = depthIsRendered
    }
}

/// A readable RGB-D sequence: random access to frames by position.
public protocol FrameSource: AnyObject {
    /// Short human-readable name (folder name by default).
    var name: String { get }
    /// The layout it was read as ("7scenes", "tum", "icl-nuim", "semfuse").
    var layout: String { get }
    var intrinsics: Intrinsics { get }
    var frameCount: Int { get }
    var capabilities: SequenceCapabilities { get }
    /// Class set of labels/probabilities, if the sequence declares one.
    var classSet: ClassSet? { get }
    /// Reads frame `index` (0 ..< frameCount). Throws `SequenceError` naming the file at fault.
    func frame(at index: Int) throws -> Frame
    /// What the reader assumed because the sequence did not say (a default calibration or
    /// depth scale), one sentence each, for the user to see before a run.
    var assumptions: [String] { get }
    /// Problems found on opening that do not stop every use of the sequence (e.g. ground truth
    /// missing for some frames), to be shown as warnings.
    var warnings: [String] { get }
    /// Timestamp and ground-truth pose of frame `index` without decoding its images (nil pose:
    /// the frame has none; `poseError`: it has one that cannot be used).
    func groundTruth(at index: Int) throws -> (timestamp: Double, pose: RigidTransform?, poseError: SequenceError?)
}

extension FrameSource {
    public var assumptions: [String] { [] }
    public var warnings: [String] { [] }

    public func groundTruth(at index: Int) throws -> (timestamp: Double, pose: RigidTransform?, poseError: SequenceError?) {
        let frame = try frame(at: index)
        return (frame.timestamp, frame.worldFromCamera, frame.poseError)
    }
}

/// Options that override what a reader would detect or assume.
public struct ReaderOptions: Sendable, Equatable {
    /// Replaces the sequence's intrinsics; the image size comes from the sequence unless given.
    public var intrinsics: IntrinsicsArgument.Values?
    /// Integer depth units per metre (7-Scenes 1000, TUM/ICL 5000).
    public var depthScale: Double?
    /// Depth beyond this (metres) is treated as missing.
    public var maxDepth: Float
    /// Depth below this (metres) is treated as missing (ElasticFusion uses 0.3 m).
    public var minDepth: Float

    public init(intrinsics: IntrinsicsArgument.Values? = nil, depthScale: Double? = nil, maxDepth: Float = 8, minDepth: Float = 0.3) {
        self.intrinsics = intrinsics; self.depthScale = depthScale; self.maxDepth = maxDepth; self.minDepth = minDepth
    }
}
