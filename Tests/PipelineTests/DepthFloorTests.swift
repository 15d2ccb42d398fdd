import Foundation
import Geometry
import Imaging
import Semantics
import Sequences
import XCTest
@testable import Pipeline

/// `MapGeometryScore.depthFloor` on frames of a flat wall whose answer is known in closed form.
final class DepthFloorTests: XCTestCase {
    /// A wall facing the camera at a given depth per frame, all frames at the same pose. The focal
    /// length makes one pixel 1 mm wide at 2 m, and the principal point is pixel (0, 0), so pixel
    /// (x, y) of a frame at 2 m lies at (x, y) mm.
    final class WallFrames: FrameSource {
        let depths: [Float]
        let side = 33
        init(depths: [Float]) { self.depths = depths }
        var name: String { "wall" }
        var layout: String { "test" }
        var intrinsics: Intrinsics { Intrinsics(fx: 2000, fy: 2000, cx: 0, cy: 0, width: side, height: side) }
        var frameCount: Int { depths.count }
        var capabilities: SequenceCapabilities { SequenceCapabilities(hasDepth: true, hasPoses: true) }
        var classSet: ClassSet? { nil }
        func frame(at index: Int) throws -> Frame {
            Frame(index: index, timestamp: Double(index), color: ColorImage(width: side, height: side, repeating: RGB8(0, 0, 0)),
                  depth: DepthImage(width: side, height: side, repeating: depths[index]), worldFromCamera: .identity)
        }
        func groundTruth(at index: Int) throws -> (timestamp: Double, pose: RigidTransform?, poseError: SequenceError?) {
            (Double(index), .identity, nil)
        }
    }

    /// The held-out frame's pixels against the other frames' samples at every 4th pixel: each
    /// pixel's nearest sample is at the nearest multiple of 4 along each axis (33 pixels: a
    /// sample on both sides of every pixel), plus the depth offset between the frames.
    func expectedMedian(offsetMM: Double) -> Double {
        func d(_ x: Int) -> Double { Double(min(x % 4, 4 - x % 4)) }
        var all: [Double] = []
        for y in 0..<33 { for x in 0..<33 { all.append((d(x) * d(x) + d(y) * d(y) + offsetMM * offsetMM).squareRoot() / 1000) } }
        return all.sorted()[all.count / 2]
    }

    func testARawFrameScoresTheSpacingOfTheSamplesAndTheNoise() throws {
        // Frames 1 and 2 agree with frame 0 (held out, every 10th): only the sample spacing.
        let same = try XCTUnwrap(MapGeometryScore.depthFloor(source: WallFrames(depths: [2, 2, 2]), every: 1))
        XCTAssertEqual(same.heldOutFrames, 1)
        XCTAssertEqual(same.perPixel.points, 33 * 33)
        XCTAssertEqual(same.perPixel.median, expectedMedian(offsetMM: 0), accuracy: 2e-5)
        XCTAssertGreaterThan(same.perPixel.median, 0.0009)
        XCTAssertEqual(same.perPixel.within2cm, 1)
        // The other frames measured the wall 3 mm further away: that offset is in every distance
        // (the lateral scale changes by 0.15 %, under 0.05 mm at the wall's edge).
        let far = try XCTUnwrap(MapGeometryScore.depthFloor(source: WallFrames(depths: [2, 2.003, 2.003]), every: 1))
        XCTAssertEqual(far.perPixel.median, expectedMedian(offsetMM: 3), accuracy: 6e-5)
        // Thinned to one point per 1 cm cube: the wall (33 x 33 mm) touches 4 x 4 cubes along x
        // and y, all at one depth.
        XCTAssertEqual(far.thinned.points, 16)
        // No other frame: nothing to compare with.
        XCTAssertNil(try MapGeometryScore.depthFloor(source: WallFrames(depths: [2]), every: 1))
    }
}
