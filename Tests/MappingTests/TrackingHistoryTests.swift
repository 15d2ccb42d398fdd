@testable import Mapping
import XCTest
import Geometry

/// `TrackingHistory`: a frame fails when it keeps under half the recent inlier share, or leaps
/// far beyond the recent motion on a smaller loss; relocalised frames answer to the share alone.
final class TrackingHistoryTests: XCTestCase {
    private func result(share: Double, metres: Double, degrees: Double = 0, from start: RigidTransform) -> TrackingResult {
        let step = RigidTransform.exp(rho: SIMD3(metres, 0, 0), omega: SIMD3(0, degrees * .pi / 180, 0))
        return TrackingResult(pose: start * step, inliers: Int((share * 10_000).rounded()), validPixels: 10_000, residual: 0.004,
                              conditioning: 0.05, failure: nil)
    }

    /// Ten frames matching `share` of their pixels and moving `metres` each, ending at `end`.
    private func history(end: inout RigidTransform, share: Double = 0.47, metres: Double = 0.006) -> TrackingHistory {
        var history = TrackingHistory()
        for _ in 0..<10 {
            let r = result(share: share, metres: metres, from: end)
            XCTAssertNil(history.failure(of: r, from: end), "a history shorter than its window judges nothing")
            history.record(r, from: end)
            end = r.pose
        }
        return history
    }

    func testAFrameThatLosesItsMatchesAndJumpsFails() throws {
        var pose = RigidTransform()
        let history = history(end: &pose)
        let jump = result(share: 0.10, metres: 0.11, degrees: 3.5, from: pose)
        let reason = try XCTUnwrap(history.failure(of: jump, from: pose))
        XCTAssertTrue(reason.contains("matched 10 %") && reason.contains("110 mm"), reason)
        // A turn alone is a jump too.
        XCTAssertNotNil(history.failure(of: result(share: 0.10, metres: 0.006, degrees: 5, from: pose), from: pose))
    }

    /// The 7-Scenes kitchen with frames 300-399 cut out: ICP took the frame after the cut 115 mm
    /// and 9.7 deg while keeping 0.54 of the recent share. A leap of many times the recent motion
    /// fails on that smaller loss; a smaller move with the same loss does not.
    func testALeapFailsOnASmallerLossOfMatches() throws {
        var pose = RigidTransform()
        let history = history(end: &pose)
        let leap = result(share: 0.25, metres: 0.115, degrees: 9.7, from: pose)
        let reason = try XCTUnwrap(history.failure(of: leap, from: pose))
        XCTAssertTrue(reason.contains("115 mm"), reason)
        XCTAssertNotNil(history.failure(of: result(share: 0.25, metres: 0.006, degrees: 11, from: pose), from: pose), "a turn alone leaps too")
        XCTAssertNil(history.failure(of: result(share: 0.27, metres: 0.034, degrees: 6.4, from: pose), from: pose),
                     "a quick start from rest: under the floors of a leap")
        XCTAssertNil(history.failure(of: result(share: 0.25, metres: 0.04, from: pose), from: pose),
                     "a jump under the 5 cm floor of a leap needs the larger loss")
        XCTAssertNil(history.failure(of: result(share: 0.35, metres: 0.2, from: pose), from: pose),
                     "a leap that keeps 0.74 of the share")
    }

    /// The kitchen cut from frame 287 to 321, every 2nd frame: the frames moved about 22 mm and
    /// matched 59 %; ICP took the frame after the cut 158 mm and 4.6 deg, matching 39 %. Five
    /// times the recent motion with that loss fails; good tracking moved at most 2.7 times it.
    func testALeapOfFiveTimesTheRecentMotionFails() throws {
        var pose = RigidTransform()
        let history = history(end: &pose, share: 0.59, metres: 0.022)
        let reason = try XCTUnwrap(history.failure(of: result(share: 0.389, metres: 0.158, degrees: 4.6, from: pose), from: pose))
        XCTAssertTrue(reason.contains("158 mm"), reason)
        XCTAssertNil(history.failure(of: result(share: 0.389, metres: 0.10, degrees: 2, from: pose), from: pose),
                     "4.5 times the recent motion")
        XCTAssertNil(history.failure(of: result(share: 0.42, metres: 0.158, degrees: 4.6, from: pose), from: pose),
                     "a leap that keeps 0.71 of the share")
    }

    /// A synthetic room cut from one side to the other (1.8 m, 180 deg): the frames moved 25 mm
    /// and matched 33 %; ICP settled 55 mm from the last pose, matching 12.5 %. Under half the
    /// share fails at any speed; good tracking kept at least 0.80 of it.
    func testLosingHalfTheMatchesFailsAtAnySpeed() throws {
        var pose = RigidTransform()
        let history = history(end: &pose, share: 0.33, metres: 0.025)
        let reason = try XCTUnwrap(history.failure(of: result(share: 0.12, metres: 0.055, degrees: 1.78, from: pose), from: pose))
        XCTAssertTrue(reason.contains("matched 12 %") && reason.contains("55 mm"), reason)
        XCTAssertNotNil(history.failure(of: result(share: 0.16, metres: 0.0, from: pose), from: pose), "standing still")
        XCTAssertNil(history.failure(of: result(share: 0.17, metres: 0.055, degrees: 1.78, from: pose), from: pose),
                     "0.52 of the share")
    }

    func testAFastMoveThatKeepsItsMatchesIsGoodTracking() {
        var pose = RigidTransform()
        let history = history(end: &pose)
        XCTAssertNil(history.failure(of: result(share: 0.45, metres: 0.11, from: pose), from: pose),
                     "a fast move that still matches as before")
        XCTAssertNil(history.failure(of: result(share: 0.40, metres: 0.025, degrees: 1.5, from: pose), from: pose),
                     "0.85 of the share, four times the motion")
        var failed = result(share: 0.10, metres: 0.11, from: pose)
        failed.failure = "ICP's own"
        XCTAssertNil(history.failure(of: failed, from: pose), "a frame ICP failed already is not judged again")
    }

    func testARelocalisedFrameMustMatchAsTheRecentFramesDid() {
        var pose = RigidTransform()
        let history = history(end: &pose)
        XCTAssertNotNil(history.relocalisationFailure(of: result(share: 0.10, metres: 0.5, from: pose)))
        XCTAssertNil(history.relocalisationFailure(of: result(share: 0.30, metres: 0.5, from: pose)), "jumps are what relocalisation does")
        XCTAssertNil(TrackingHistory().relocalisationFailure(of: result(share: 0.10, metres: 0.5, from: pose)))
    }

    /// What asks the corner check for a second opinion: a frame that keeps under 0.9 of the
    /// recent share or moves over twice the recent motion (beyond 1 cm or 1 deg), and every frame
    /// while there is no recent history to compare with.
    func testUnusualFramesAreThoseThatMatchLessOrMoveFaster() {
        var pose = RigidTransform()
        XCTAssertTrue(TrackingHistory().isUnusual(result(share: 0.47, metres: 0.006, from: pose), from: pose), "no history yet")
        let history = history(end: &pose)
        XCTAssertFalse(history.isUnusual(result(share: 0.47, metres: 0.006, from: pose), from: pose))
        XCTAssertFalse(history.isUnusual(result(share: 0.43, metres: 0.011, from: pose), from: pose), "0.91 of the share, 1.8 times the motion")
        XCTAssertTrue(history.isUnusual(result(share: 0.41, metres: 0.006, from: pose), from: pose), "0.87 of the share")
        XCTAssertTrue(history.isUnusual(result(share: 0.47, metres: 0.013, from: pose), from: pose), "2.2 times the motion")
        XCTAssertTrue(history.isUnusual(result(share: 0.47, metres: 0.006, degrees: 1.5, from: pose), from: pose), "a turn")
        var still = RigidTransform()
        let resting = self.history(end: &still, metres: 0.0005)
        XCTAssertFalse(resting.isUnusual(result(share: 0.47, metres: 0.005, from: still), from: still),
                       "ten times a resting camera's motion, under the 1 cm floor")
    }
}
