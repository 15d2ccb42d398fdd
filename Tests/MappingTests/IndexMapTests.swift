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

    /// Many surfels (several batches per worker, many per pixel, some inactive, behind or off
    /// the image) against a plain z-buffer written out here.
    func testManySurfelsMatchAPlainZBuffer() {
        let intr = Intrinsics(fx: 60, fy: 60, cx: 31.5, cy: 23.5, width: 64, height: 48)
        let map = SurfelMap(classCount: 0)
        var rng = SplitMix64(seed: 11)
        for _ in 0..<20_000 {
            let p = SIMD3<Float>(Float(rng.nextDouble() * 3 - 1.5), Float(rng.nextDouble() * 2.4 - 1.2), Float(rng.nextDouble() * 4 - 0.5))
            map.append(position: p, normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1, color: .init(0, 0, 0),
                       time: Int32(rng.next() % 300))
        }
        let pose = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 1, 0), angle: 0.1), translation: SIMD3(0.05, 0, -0.1))
        let T = pose.float
        var expected = [Int32](repeating: -1, count: intr.width * intr.height)
        var best = [Float](repeating: .infinity, count: expected.count)
        for i in 0..<map.count where map.lastSeen[i] >= 300 - 200 {
            let c = T.apply(map.positions[i])
            guard c.z > 0, c.z <= 3 else { continue }
            let u = (Float(intr.fx) * c.x / c.z + Float(intr.cx) + 0.5).rounded(.down)
            let v = (Float(intr.fy) * c.y / c.z + Float(intr.cy) + 0.5).rounded(.down)
            guard u >= 0, v >= 0, u < Float(intr.width), v < Float(intr.height) else { continue }
            let p = Int(v) * intr.width + Int(u)
            if c.z < best[p] { best[p] = c.z; expected[p] = Int32(i) }  // ties: the lower index stays
        }
        XCTAssertGreaterThan(expected.filter { $0 >= 0 }.count, expected.count / 2)
        for threads in [1, 2, 3] {
            var im = IndexMap()
            im.render(map, cameraFromWorld: pose, intrinsics: intr, tick: 300, timeDelta: 200, maxDepth: 3, threads: threads)
            XCTAssertEqual(im.surfel, expected, "\(threads) threads")
        }
    }
    /// `inView` holds exactly the active surfels in front of the camera that project inside the
    /// image, at any depth (here past `maxDepth` too), in index order, whatever the threads. A
    /// render of only those and of surfels appended since, after some of the shown ones moved
    /// (what fusion does between its two index maps), equals a render of every surfel, and its
    /// own `inView` equals a full render's.
    func testInViewListAndRenderingOnlyThoseMatchTheFullRender() {
        let intr = Intrinsics(fx: 60, fy: 60, cx: 31.5, cy: 23.5, width: 64, height: 48)
        var rng = SplitMix64(seed: 5)
        func fill(_ map: SurfelMap, _ count: Int) {
            for _ in 0..<count {
                let p = SIMD3<Float>(Float(rng.nextDouble() * 6 - 3), Float(rng.nextDouble() * 5 - 2.5), Float(rng.nextDouble() * 6 - 1))
                map.append(position: p, normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1, color: .init(0, 0, 0),
                           time: Int32(rng.next() % 300))
            }
        }
        let pose = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 1, 0), angle: 0.1), translation: SIMD3(0.05, 0, -0.1))
        let T = pose.float
        for threads in [1, 2, 3] {
            let map = SurfelMap(classCount: 0)
            fill(map, 30_000)
            var expected: [Int32] = []
            var beyond = 0
            for i in 0..<map.count where map.lastSeen[i] >= 300 - 200 {
                let c = T.apply(map.positions[i])
                guard c.z > 0 else { continue }
                let u = (Float(intr.fx) * c.x / c.z + Float(intr.cx) + 0.5).rounded(.down)
                let v = (Float(intr.fy) * c.y / c.z + Float(intr.cy) + 0.5).rounded(.down)
                guard u >= 0, v >= 0, u < Float(intr.width), v < Float(intr.height) else { continue }
                expected.append(Int32(i))
                if c.z > 3 { beyond += 1 }
            }
            var before = IndexMap()
            before.render(map, cameraFromWorld: pose, intrinsics: intr, tick: 300, timeDelta: 200, maxDepth: 3, threads: threads,
                          recordInView: true)
            XCTAssertTrue(before.inView == expected, "\(threads) threads: \(before.inView.count) listed, \(expected.count) expected")
            XCTAssertGreaterThan(beyond, 100)
            XCTAssertLessThan(expected.count, map.count / 2, "most surfels should be out of view or inactive")
            // Move every third shown surfel a little (possibly out of view), append new ones.
            let countBefore = map.count
            for p in 0..<before.surfel.count where before.surfel[p] >= 0 && p % 3 == 0 {
                let i = Int(before.surfel[p])
                map.positions[i] += SIMD3(Float(rng.nextDouble() - 0.5), Float(rng.nextDouble() - 0.5), Float(rng.nextDouble() - 0.5)) * 0.4
                map.lastSeen[i] = 300
            }
            fill(map, 2_000)
            var full = IndexMap(), only = IndexMap()
            full.render(map, cameraFromWorld: pose, intrinsics: intr, tick: 300, timeDelta: 200, maxDepth: 3, threads: threads,
                        positions: false, recordInView: true)
            only.render(map, cameraFromWorld: pose, intrinsics: intr, tick: 300, timeDelta: 200, maxDepth: 3, threads: threads,
                        positions: false, recordInView: true, only: (before.inView, countBefore))
            XCTAssertTrue(only.surfel == full.surfel, "\(threads) threads")
            XCTAssertTrue(only.depth == full.depth, "\(threads) threads")
            XCTAssertTrue(only.inView == full.inView, "\(threads) threads: \(only.inView.count) against \(full.inView.count)")
        }
    }
}
