import Foundation
import Geometry

/// The last few tracked frames' statistics, for a check one registration cannot make alone.
///
/// `ICPTracker` fails a frame when under a tenth of its pixels match the model. A frame from
/// somewhere else (a dropped stretch, a sensor glitch) can still clear that where the model is
/// large and has a floor, since floors match floors: in `TrackingTests
/// .testSuddenJumpIsReportedInsteadOfFused` such a frame matched 10.4 % of its pixels where its
/// predecessors matched 47 %, and ICP moved the camera 110 mm where it had been moving 6 mm a
/// frame. So a frame fails when it keeps under `minInlierRatio` of the recent inlier share, or
/// when it leaps (below) on a smaller loss.
/// The loss alone is enough, whatever the motion: in a synthetic room cut from one side to the
/// other (1.8 m, 180 degrees), ICP settled 55 mm from the last pose, where the recent frames had
/// moved 25 mm, matching 0.38 of their share, and the frames after it were fused into a second
/// copy of the room. Good tracking keeps far more: on the 7-Scenes kitchen (every frame, every
/// 2nd, every 3rd, forwards and back), PNG-50, the bundled room and a 900-frame synthetic loop,
/// at least 0.80 of the recent share (docs/results.md, "Random cuts of a synthetic room"). A
/// frame that loses half its match to an occluder close to the camera fails too; it would fuse
/// the occluder into the map.
public struct TrackingHistory: Sendable {
    /// Frames the recent medians are taken over; the check waits until this many are recorded.
    public var window = 10
    /// A frame keeping less than this share of the recent median inlier share has lost its match.
    public var minInlierRatio = 0.5
    /// A frame that moves more than `largeJumpFactor` times the recent motion (and at least
    /// `minLargeJump` or `minLargeJumpDegrees`) fails on a smaller loss of its match, under
    /// `largeJumpInlierRatio` of the recent share. The 7-Scenes kitchen with frames 300-399 cut
    /// out: ICP took the frame after the cut 115 mm and 9.7 deg (the camera had moved 0.82 m and
    /// 10.9 deg) while the last frames moved 10 mm and 0.3 deg, keeping 0.54 of their share, so
    /// the first rule let it through and the room was fused twice. Five times, not ten: a
    /// kitchen run cut from frame 287 to 321 (0.27 m, 5.3 deg, every 2nd frame) had ICP take the
    /// frame after the cut 158 mm and 4.6 deg, 7.3 times the recent 22 mm, keeping 0.66 of the
    /// share, and 40 frames were fused 0.45 m off. Good tracking on the kitchen (every frame,
    /// every 2nd, every 3rd, forwards and back), PNG-50 and the synthetic room moved at most 2.7
    /// times the recent motion and kept at least 0.80 of the share. The floors keep quick
    /// starts out: a camera still for 15 frames that then turned 6.4 deg and moved 34 mm in one
    /// frame kept 0.58 of the share and was refused with a 5 deg floor.
    public var largeJumpFactor = 5.0
    public var minLargeJump = 0.05
    public var minLargeJumpDegrees = 10.0
    public var largeJumpInlierRatio = 0.7
    /// What `isUnusual` calls unusual.
    public var unusualInlierRatio = 0.9
    public var unusualMotionFactor = 2.0
    public var minUnusualJump = 0.01
    public var minUnusualJumpDegrees = 1.0

    private var inlierShares: [Double] = []
    private var translations: [Double] = []
    private var rotations: [Double] = []

    public init() {}

    /// Why `result`, tracked from `previousPose`, does not continue the recent frames, or nil.
    public func failure(of result: TrackingResult, from previousPose: RigidTransform) -> String? {
        guard result.succeeded, inlierShares.count >= window else { return nil }
        let share = Self.share(result)
        let recentShare = Self.median(inlierShares)
        guard share < max(minInlierRatio, largeJumpInlierRatio) * recentShare else { return nil }
        let motion = previousPose.inverse * result.pose
        let metres = motion.translationNorm, degrees = motion.rotationAngle * 180 / .pi
        let recentMetres = Self.median(translations), recentDegrees = Self.median(rotations)
        let leapt = metres > max(largeJumpFactor * recentMetres, minLargeJump) || degrees > max(largeJumpFactor * recentDegrees, minLargeJumpDegrees)
        guard share < minInlierRatio * recentShare || leapt else { return nil }
        return String(format: "matched %.0f %% of its pixels where the last %d frames matched %.0f %%, and moved %.0f mm, %.1f deg where they moved %.0f mm, %.1f deg: a view of somewhere else",
                      share * 100, window, recentShare * 100, metres * 1000, degrees, recentMetres * 1000, recentDegrees)
    }

    /// Whether `result` differs enough from the recent frames to be worth a second opinion
    /// (`CornerCheck`): it keeps under `unusualInlierRatio` of the recent inlier share, or moves
    /// over `unusualMotionFactor` times the recent motion (and over `minUnusualJump` or
    /// `minUnusualJumpDegrees`), or there are not yet `window` recent frames to compare with.
    /// Every frame tracked wrongly across a cut of a synthetic room kept at most 0.84 of the
    /// share or moved at least 3 times the recent motion; on the 7-Scenes kitchen 1-13 % of the
    /// frames are unusual by this (most where the camera starts or stops moving).
    public func isUnusual(_ result: TrackingResult, from previousPose: RigidTransform) -> Bool {
        guard inlierShares.count >= window else { return true }
        guard Self.share(result) >= unusualInlierRatio * Self.median(inlierShares) else { return true }
        let motion = previousPose.inverse * result.pose
        let metres = motion.translationNorm, degrees = motion.rotationAngle * 180 / .pi
        return (metres > unusualMotionFactor * Self.median(translations) && metres > minUnusualJump)
            || (degrees > unusualMotionFactor * Self.median(rotations) && degrees > minUnusualJumpDegrees)
    }

    /// Why a relocalised `result` (which may jump by nature) does not match the way the recent
    /// frames did, or nil: the same share test without the leap test. A frame from somewhere
    /// else otherwise comes back through relocalisation, registered from a keyframe near the
    /// last pose to the same wrong place.
    public func relocalisationFailure(of result: TrackingResult) -> String? {
        guard result.succeeded, inlierShares.count >= window else { return nil }
        let share = Self.share(result), recentShare = Self.median(inlierShares)
        guard share < minInlierRatio * recentShare else { return nil }
        return String(format: "matched %.0f %% of its pixels where the last tracked frames matched %.0f %%", share * 100, recentShare * 100)
    }

    /// Records a frame that was tracked and accepted.
    public mutating func record(_ result: TrackingResult, from previousPose: RigidTransform) {
        let motion = previousPose.inverse * result.pose
        inlierShares.append(Self.share(result))
        translations.append(motion.translationNorm)
        rotations.append(motion.rotationAngle * 180 / .pi)
        if inlierShares.count > window {
            inlierShares.removeFirst(); translations.removeFirst(); rotations.removeFirst()
        }
    }

    private static func share(_ result: TrackingResult) -> Double {
        Double(result.inliers) / Double(max(result.validPixels, 1))
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }
}
