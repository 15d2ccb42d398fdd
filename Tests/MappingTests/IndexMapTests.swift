import XCTest
import Geometry
@testable import Mapping

final class IndexMapTests: XCTestCase {
    func testNearestSurfelWinsAndTiesGoToLowerIndex() {
        let intr = Intrinsics(fx: 100, fy: 100, cx: 50, cy: 40, width: 100, height: 80)
        let map = SurfelMap(classCount: 0)
        map.append(position: SIMD3(0, 0, 2), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1, color: .init(0, 0, 0), time: 1)
        map.append(position: SIMD3(0, 0, 1), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1, color: .init(0, 0, 0), time: 1)
        map.append(position: SIMD3(0, 0, 1), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1, color: .init(0, 0, 0), time: 1)
        map.append(position: SIMD3(0.2, 0, 1), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1, color: .init(0, 0, 0), time: 1)
        map.append(position: SIMD3(0, 0, -1), normal: SIMD3(0, 0, 1), radius: 0.01, confidence: 1, color: .init(0, 0, 0), time: 1)
        for threads in [1, 2, 3] {
            var im = IndexMap()
            im.render(map, cameraFromWorld: .identity, intrinsics: intr, tick: 1, timeDelta: 200, maxDepth: 20, threads: threads)
            XCTAssertEqual(im.index(x: 50, y: 40), 1)
            XCTAssertEqual(im.index(x: 70, y: 40), 3)
            XCTAssertEqual(im.filledCount, 2, "behind-camera surfel must not be drawn")
        }
    }

    func testInactiveSurfelsAreNotDrawn() {
        let intr = Intrinsics(fx: 100, fy: 100, cx: 50, cy: 40, width: 100, height: 80)
        let map = SurfelMap(classCount: 0)
        map.append(position: SIMD3(0, 0, 1), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 20, color: .init(0, 0, 0), time: 1)
        var im = IndexMap()
        im.render(map, cameraFromWorld: .identity, intrinsics: intr, tick: 201, timeDelta: 200, maxDepth: 20, threads: 1)
        XCTAssertEqual(im.filledCount, 1)
        im.render(map, cameraFromWorld: .identity, intrinsics: intr, tick: 202, timeDelta: 200, maxDepth: 20, threads: 1)
        XCTAssertEqual(im.filledCount, 0)
    }
}
