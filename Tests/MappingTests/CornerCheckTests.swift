import Geometry
import Imaging
@testable import Mapping
import XCTest

/// `CornerCheck`: the corners two frames share must move as the tracked motion says.
final class CornerCheckTests: XCTestCase {
    let w = 200, h = 150
    var intrinsics: Intrinsics { Intrinsics(fx: 150, fy: 150, cx: 100, cy: 75, width: w, height: h) }

    /// A textured wall 1.5 m away, and the same wall after the camera moved 9 px to the left and
    /// 5 px down (at 1.5 m: 9 cm and 5 cm).
    func frames(otherSeed: UInt64? = nil) -> (last: (ColorImage, DepthImage), current: (ColorImage, DepthImage), lastFromCurrent: RigidTransform) {
        let depth = DepthImage(width: w, height: h, repeating: 1.5)
        let a = TestTexture.texture(width: w, height: h)
        let b = otherSeed.map { TestTexture.texture(width: w, height: h, seed: $0) } ?? TestTexture.shifted(a, width: w, height: h, dx: 9, dy: -5)
        let motion = RigidTransform(rotation: .identity, translation: SIMD3(-9 * 1.5 / 150, 5 * 1.5 / 150, 0))
        return ((TestTexture.color(a, width: w, height: h), depth), (TestTexture.color(b, width: w, height: h), depth), motion)
    }

    func testTheTrueMotionIsAgreedWithAndAWrongOneRefused() throws {
        let check = CornerCheck(intrinsics: intrinsics)
        let (last, current, truth) = frames()
        let a = check.corners(color: last.0, depth: last.1), b = check.corners(color: current.0, depth: current.1)
        XCTAssertGreaterThan(min(a.count, b.count), 40)
        let right = check.check(current: b, last: a, lastFromCurrent: truth)
        XCTAssertNil(right.failure)
        XCTAssertGreaterThan(right.agreeing, 20)
        XCTAssertGreaterThan(Double(right.agreeing), 0.8 * Double(right.matches))
        // ICP settling 20 cm along the wall from where the camera went (the wall fits anywhere).
        let slid = RigidTransform(rotation: .identity, translation: truth.translation + SIMD3(0.2, 0, 0))
        let wrong = check.check(current: b, last: a, lastFromCurrent: slid)
        let reason = try XCTUnwrap(wrong.failure)
        XCTAssertEqual(wrong.agreeing, 0)
        XCTAssertTrue(reason.contains("0 of \(wrong.matches) corner matches") && reason.contains("within 100 mm"), reason)
        // Within the agreement distance (a rotation error of a degree at 1.5 m moves points 2.6 cm): agreed.
        let close = RigidTransform(rotation: .identity, translation: truth.translation + SIMD3(0.03, 0, 0))
        XCTAssertNil(check.check(current: b, last: a, lastFromCurrent: close).failure)
    }

    func testAViewOfSomewhereElseIsRefused() throws {
        let check = CornerCheck(intrinsics: intrinsics)
        let (last, current, _) = frames(otherSeed: 99)
        let a = check.corners(color: last.0, depth: last.1), b = check.corners(color: current.0, depth: current.1)
        let verdict = check.check(current: b, last: a, lastFromCurrent: .identity)
        XCTAssertLessThan(verdict.agreeing, 5, "chance matches of unrelated textures")
        XCTAssertNotNil(verdict.failure, "\(verdict.agreeing) of \(verdict.matches)")
    }

    /// Too few corners, or too few matches, say nothing either way: no refusal.
    func testFramesWithoutCornersAreNotJudged() {
        let check = CornerCheck(intrinsics: intrinsics)
        let depth = DepthImage(width: w, height: h, repeating: 1.5)
        let blank = ColorImage(width: w, height: h, repeating: RGB8(128, 128, 128))
        let (last, _, _) = frames()
        let textured = check.corners(color: last.0, depth: last.1)
        let none = check.corners(color: blank, depth: depth)
        XCTAssertEqual(none.count, 0)
        XCTAssertNil(check.check(current: none, last: textured, lastFromCurrent: .identity).failure)
        XCTAssertEqual(check.corners(color: nil, depth: depth).count, 0, "no colour, no corners")
        let small = ColorImage(width: w / 2, height: h / 2, repeating: RGB8(128, 128, 128))
        XCTAssertEqual(check.corners(color: small, depth: depth).count, 0, "colour of another size than the depth")
        var strict = CornerCheck.Parameters()
        strict.minimumMatches = 10_000
        let unrelated = frames(otherSeed: 99).current
        XCTAssertNil(CornerCheck(intrinsics: intrinsics, parameters: strict)
            .check(current: check.corners(color: unrelated.0, depth: unrelated.1), last: textured, lastFromCurrent: .identity).failure,
                     "too few matches to tell")
    }
}
