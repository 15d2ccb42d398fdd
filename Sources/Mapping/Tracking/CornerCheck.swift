import Geometry
import Imaging

/// A second opinion on a tracked motion, from image corners: the corners a frame shares with
/// the last fused frame must move as ICP says the camera moved.
///
/// ICP only asks whether the frame's surface fits the map's somewhere near the last pose. Where
/// the scene repeats its shape (a box room's walls and floor, seen from a camera that was cut to
/// the room's other side), it fits in the wrong place too, keeping most of its matches
/// (`TrackingHistory` cannot tell), and every later frame is fused into a second copy of the room.
/// The images tell: consecutive frames of one stretch share dozens of corner matches, nearly all
/// within a few centimetres of where the tracked motion puts them, while a view of somewhere else
/// shares a few chance matches that land anywhere. Measured on every frame of random cuts of a
/// synthetic room and of the 7-Scenes kitchen and of five uncut sequences (docs/results.md,
/// "Corners that must move with the camera"): of 8,115 continuing frames with corners enough,
/// the fewest agreeing were 14, the lowest share 0.58; the frames ICP tracked wrongly across a
/// cut had 0-3 agreeing of 4-25 matches.
///
/// Corners are FAST with BRIEF (`KeypointDetector`), 15-30 ms a check at 640x480, so a run checks
/// only the frames that look unusual (`TrackingHistory.isUnusual`) and those tracked after a loss.
public struct CornerCheck: Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Both frames need this many corners with depth for the check to speak: a blank wall
        /// has too few to say anything either way.
        public var minimumCorners = 20
        /// A corner match agrees with the motion when its point, moved by the motion, lands
        /// within this distance of its match (metres; loose for colour that is not registered to
        /// depth, whose corners take depth from a neighbouring surface at edges).
        public var agreementDistance: Float = 0.1
        /// The motion is refused when fewer than `minimumAgreeing` matches agree and they are
        /// under `minimumAgreeingShare` of all matches.
        public var minimumAgreeing = 5
        public var minimumAgreeingShare = 0.25
        /// Fewer matches than this say nothing: a blurred frame matches few corners, and those
        /// by chance. A view of somewhere else matched 3-17 corners of 40-70 in the synthetic
        /// room, a continuing one at least 14.
        public var minimumMatches = 3
        public init() {}
    }

    public let parameters: Parameters
    let detector: KeypointDetector
    let intrinsics: Intrinsics

    public init(intrinsics: Intrinsics, parameters: Parameters = Parameters(), keypoints: KeypointDetector.Parameters = .init()) {
        self.parameters = parameters
        self.intrinsics = intrinsics
        detector = KeypointDetector(parameters: keypoints)
    }

    /// A frame's corners with depth (none without colour at the depth's size).
    public func corners(color: ColorImage?, depth: DepthImage) -> KeypointSet {
        detector.detect(color: color, depth: depth, intrinsics: intrinsics)
    }

    /// How many of the corner matches between `current` and `last` agree with `lastFromCurrent`
    /// (the tracked camera motion, from the current frame's camera to the last one's).
    public func agreement(current: KeypointSet, last: KeypointSet, lastFromCurrent: RigidTransform) -> (agreeing: Int, matches: Int) {
        let matches = KeypointDetector.match(current, last)
        let motion = lastFromCurrent.float
        let limit = parameters.agreementDistance * parameters.agreementDistance
        let agreeing = matches.reduce(0) { count, match in
            let d = motion.apply(current.points[match.0]) - last.points[match.1]
            return count + ((d * d).sum() <= limit ? 1 : 0)
        }
        return (agreeing, matches.count)
    }

    /// What the corners say about a motion.
    public struct Verdict: Sendable {
        /// Corner matches between the two frames, and those that agree with the motion.
        public var matches = 0, agreeing = 0
        /// Why the motion is refused, or nil.
        public var failure: String?
    }

    /// Whether the motion `lastFromCurrent` moves `last`'s corners onto `current`'s. It is
    /// refused only when both frames have enough corners and share enough matches to tell.
    public func check(current: KeypointSet, last: KeypointSet, lastFromCurrent: RigidTransform) -> Verdict {
        guard min(current.count, last.count) >= parameters.minimumCorners else { return Verdict() }
        var verdict = Verdict()
        (verdict.agreeing, verdict.matches) = agreement(current: current, last: last, lastFromCurrent: lastFromCurrent)
        if verdict.matches >= parameters.minimumMatches, verdict.agreeing < parameters.minimumAgreeing,
           Double(verdict.agreeing) < parameters.minimumAgreeingShare * Double(verdict.matches) {
            verdict.failure = String(format: "its image corners do not move as tracking says: %d of %d corner matches with the last fused frame agree with the motion (within %.0f mm): a view of somewhere else",
                                     verdict.agreeing, verdict.matches, Double(parameters.agreementDistance) * 1000)
        }
        return verdict
    }
}
