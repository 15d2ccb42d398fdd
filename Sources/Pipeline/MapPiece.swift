import Geometry
import Imaging
import Mapping

/// A piece of the scene tracked in its own frame while the map has lost the camera.
///
/// Relocalisation finds a lost camera only where the map already has surface. A camera that goes
/// on into surface the map never saw (or that the keyframes cannot place for a while) would leave
/// every later frame unfused. Instead, after a few lost frames with depth, those frames start a
/// piece: a map of their own, tracked frame to model like the main one. Every frame of the piece
/// is also looked up in the main map's keyframes; a frame that checks out there has a pose in
/// both frames, which gives the rigid motion between them, and the piece joins the map (its
/// surfels, keyframes and poses moved by that motion). A piece that is not placed is left and
/// kept beside the map, not fused into it: there is no evidence where it belongs. The
/// map's later frames are looked up in a left piece's keyframes, and when the tracked camera
/// comes to the surface the piece holds, it joins then; a piece being tracked that comes to it
/// takes it in the same way.
/// A frame the piece cannot track is relocalised in the piece from its own keyframes. A piece
/// ends when `newPieceAfter` (3) frames with depth in a row are lost to it, or when the map
/// finds the camera on a frame the piece could not track. Systems after
/// ElasticFusion keep several such maps and merge any two that meet (ORB-SLAM's atlas); here,
/// while the run goes on, a left piece meets the map or the piece being tracked. When the run
/// ends, the left pieces are registered by surface shape to the map and to each other, and
/// those placed join (`Reconstruction.placeLeftPieces`); then the largest left piece becomes
/// the map if it has more frames (`Reconstruction.promotedPiece`).
final class MapPiece {
    /// A frame fused into the piece, in the piece's frame.
    struct FusedFrame {
        var position: Int
        var timestamp: Double
        var pose: RigidTransform
        var tick: Int
        var seconds: Double
        /// The frame's ground-truth pose, or why it could not be used (tracking score).
        var truth: RigidTransform?
        var truthError: String?
    }

    let fusion: SurfelFusion
    /// Keyframes of the piece, joined to the map's when the piece is.
    var relocaliser: Relocaliser?
    var history = TrackingHistory()
    var lastPose: RigidTransform
    /// The last frame fused into the piece, for the corner check of the next one.
    var lastFused: FusedImages?
    private(set) var frames: [FusedFrame] = []
    /// Frames in a row the piece itself could not track.
    var consecutiveFailures = 0
    /// Fusion's stage timings over the piece's frames (the run's once it joins the map).
    var timings = SurfelFusion.StageTimings()
    /// Seconds spent keeping the piece's keyframes (the run's once it joins the map).
    var keyframeSeconds = 0.0

    init(fusion: SurfelFusion, relocaliser: Relocaliser?, startPose: RigidTransform) {
        self.fusion = fusion
        self.relocaliser = relocaliser
        lastPose = startPose
    }

    var firstPosition: Int? { frames.first?.position }
    var lastPosition: Int? { frames.last?.position }

    func record(_ frame: FusedFrame) {
        frames.append(frame)
        lastPose = frame.pose
    }

    /// Takes in the frames (and timings) of a piece left earlier that this one came to, moved
    /// into this piece's frame, in sequence order; the frame being tracked stays the last.
    func take(_ other: MapPiece, transformedBy transform: RigidTransform, tickOffset: Int) {
        frames += other.frames.map { f in
            var moved = f
            moved.pose = transform * f.pose
            moved.tick += tickOffset
            return moved
        }
        frames.sort { $0.position < $1.position }
        timings = timings + other.timings
        keyframeSeconds += other.keyframeSeconds
    }
}

/// The images of the last frame fused into a map or piece: a frame tracked from its pose must
/// share its corners (`CornerCheck`), which are detected when first needed.
struct FusedImages {
    var color: ColorImage?
    var depth: DepthImage
    var corners: KeypointSet?
}

/// A frame of the map (or of the piece being tracked) placed in a left piece: the motion from the
/// left piece's frame of reference to the other's. A left piece is moved only when two frames, a
/// few run frames apart at most, give motions that agree: a single registration can land on the
/// wrong one of two similar places (cupboard doors, a repeated shelf), and then the frames after
/// it would not agree.
struct Placement {
    /// The frame's sequence position, and its index among the run's frames.
    var position: Int
    var index: Int
    var transform: RigidTransform
    /// How far apart two placements may be and still agree.
    static let agreementMetres = 0.03, agreementDegrees = 2.0
    /// Run frames within which a second placement must follow the first (the run's frames, not
    /// sequence positions, which `--every` spaces out).
    static let window = 5

    /// Whether `later` confirms this placement: within `window` run frames and the tolerances.
    func isConfirmed(by later: Placement) -> Bool {
        later.index - index <= Self.window && Self.agree(transform, later.transform)
    }

    /// Whether two motions between the same two frames of reference agree within the tolerances.
    static func agree(_ a: RigidTransform, _ b: RigidTransform) -> Bool {
        let difference = a.inverse * b
        return difference.translationNorm <= agreementMetres && difference.rotationAngle * 180 / .pi <= agreementDegrees
    }

    /// Whether it is too old for any later frame to confirm it.
    func hasExpired(at index: Int) -> Bool { index - self.index > Self.window }
}

/// What became of a piece: joined to the map at `joinedAt`, or not (its frames are not in the map).
public struct MapPieceReport: Sendable {
    public var firstPosition: Int
    public var lastPosition: Int
    public var frames: Int
    public var surfels: Int
    /// The frame that was placed in both the piece and the map (for a left piece, the second of
    /// two that agree; for one placed after the run, the second of its two keyframes), when the
    /// piece joined it.
    public var joinedAt: Int?
    /// The motion that moved the piece into the map (metres, degrees), when it joined.
    public var shiftMetres: Double?
    public var shiftDegrees: Double?
    /// Whether a piece that did not join the map was kept (`Reconstruction.leftPieces`).
    public var kept = false
    /// Whether the piece joined after it had been left: the map, tracking on, came to surface
    /// the piece holds (`joinedAt` is then that later frame), or it was placed after the run.
    public var joinedLater = false
    /// When the piece was placed in the map after the run (by surface shape): the positions of
    /// the two of its keyframes whose views verified the placement.
    public var placedAfterTheRun: (Int, Int)?
    /// Left pieces placed in this one after the run (their frame ranges, "first-last"); their
    /// frames are counted in `frames`.
    public var tookIn: [String] = []

    /// Whether this left piece had more frames than the map when the run ended, and so became
    /// the map (`Reconstruction.promoteLargestPiece`).
    public var becameTheMap = false
    /// Whether this is the map the run began with, left beside a larger piece that became the map.
    public var wasTheMap = false

    /// "first-last", as the files of a left piece are named (`<map>.piece-<first>-<last>.ply`).
    public var frameRange: String { "\(firstPosition)-\(lastPosition)" }
}
