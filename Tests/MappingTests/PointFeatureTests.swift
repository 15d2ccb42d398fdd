import Geometry
import Imaging
@testable import Mapping
import XCTest

/// Surface-shape descriptors (FPFH) for relocalisation: they describe shape, not viewpoint.
final class PointFeatureTests: XCTestCase {
    /// A bumpy 3 m x 3 m height field sampled every 5 cm, with its analytic normals (facing −z,
    /// towards a camera in front of it), 2 m in front of the origin.
    func bumpySurface() -> OrientedPoints {
        var surface = OrientedPoints()
        func height(_ x: Double, _ y: Double) -> (h: Double, dx: Double, dy: Double) {
            var h = 0.08 * sin(2.1 * x) * cos(1.7 * y), dx = 0.08 * 2.1 * cos(2.1 * x) * cos(1.7 * y), dy = -0.08 * 1.7 * sin(2.1 * x) * sin(1.7 * y)
            for (cx, cy, a, s) in [(0.4, -0.6, 0.25, 0.2), (-0.8, 0.5, -0.2, 0.3), (0.9, 0.9, 0.3, 0.15)] {
                let e = a * exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (2 * s * s))
                h += e; dx += -e * (x - cx) / (s * s); dy += -e * (y - cy) / (s * s)
            }
            return (h, dx, dy)
        }
        for iy in 0..<60 {
            for ix in 0..<60 {
                let x = -1.5 + 0.05 * Double(ix), y = -1.5 + 0.05 * Double(iy)
                let f = height(x, y)
                let n = SIMD3<Double>(f.dx, f.dy, -1)
                surface.points.append(SIMD3(Float(x), Float(y), Float(2 + f.h)))
                surface.normals.append(SIMD3<Float>(n / (n * n).sum().squareRoot()))
            }
        }
        return surface
    }

    func testHistogramsMatchTheSamePointsAfterARigidMotion() throws {
        let extractor = PointFeatureExtractor()
        let surface = bumpySurface()
        let motion = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0.3, 1, -0.2), angle: 0.6), translation: SIMD3(0.4, -0.2, 0.7))
        let f = motion.float
        var moved = OrientedPoints()
        moved.points = surface.points.map { f.apply($0) }
        moved.normals = surface.normals.map { f.rotate($0) }
        let a = extractor.describe(surface), b = extractor.describe(moved)
        XCTAssertEqual(a.count, b.count, "the same points have the same neighbours")
        XCTAssertGreaterThan(a.count, 3000)
        for part in 0..<3 {
            let sum = (0..<11).reduce(Float(0)) { $0 + a.histograms[part * 11 + $1] }
            XCTAssertEqual(sum, 100, accuracy: 0.01, "each of the three histograms sums to 100")
        }
        let matches = PointFeatureExtractor.match(b, a, threads: 2)
        XCTAssertEqual(matches.map { "\($0.0),\($0.1)" }, PointFeatureExtractor.match(b, a, threads: 1).map { "\($0.0),\($0.1)" },
                       "the thread count does not change the matches")
        let right = matches.filter { $0.0 == $0.1 }.count
        XCTAssertGreaterThan(Double(right) / Double(matches.count), 0.95, "matches pair a point with itself")
        XCTAssertGreaterThan(matches.count, a.count / 2)
        // A plane has no shape to tell its points apart: its histograms are all alike.
        let flat = extractor.describe(OrientedPoints(points: surface.points.map { SIMD3($0.x, $0.y, 2) },
                                                     normals: surface.normals.map { _ in SIMD3(0, 0, -1) }))
        let centre = 30 * 60 + 30, other = 20 * 60 + 40
        let d = (0..<PointFeatureSet.stride).reduce(Float(0)) {
            let x = flat.histograms[centre * PointFeatureSet.stride + $1] - flat.histograms[other * PointFeatureSet.stride + $1]
            return $0 + x * x
        }
        XCTAssertLessThan(d, 1e-6)
        // Points that are not finite or absurdly far get no histogram and do not disturb the rest.
        var broken = surface
        broken.points[0] = SIMD3(.nan, 0, 2); broken.points[1] = SIMD3(3e38, 0, 2); broken.points[2] = SIMD3(0, .infinity, 2)
        XCTAssertEqual(extractor.describe(broken).count, a.count - 3)

        // RANSAC over the matches gives the motion back.
        let fit = try XCTUnwrap(RigidRANSAC.estimate(source: matches.map { a.points[$0.1] }, target: matches.map { b.points[$0.0] },
                                                     parameters: Relocaliser.Parameters().shapeRANSAC))
        XCTAssertLessThan((fit.targetFromSource.translation - motion.translation).length, 0.002)
        XCTAssertLessThan((fit.targetFromSource.inverse * motion).rotationAngle * 180 / .pi, 0.1)
    }

    /// A wall 2 m in front of the camera: one point per voxel it crosses, each at 2 m with the
    /// normal towards the camera; nothing from pixels without depth or beyond the range.
    func testOrientedPointsOfAWall() {
        let w = 160, h = 120
        let intrinsics = Intrinsics(fx: 146, fy: 146, cx: 79.5, cy: 59.5, width: w, height: h)
        var pixels = [Float](repeating: 2, count: w * h)
        for p in 0..<(w * h) where p % w >= 120 { pixels[p] = 0 }          // no depth on the right quarter
        for p in 0..<(w * 10) { pixels[p] = 9 }                              // beyond the range at the top
        let oriented = PointFeatureExtractor().orientedPoints(depth: DepthImage(width: w, height: h, pixels: pixels), intrinsics: intrinsics)
        XCTAssertGreaterThan(oriented.count, 100)
        for (p, n) in zip(oriented.points, oriented.normals) {
            XCTAssertEqual(p.z, 2, accuracy: 1e-4)
            XCTAssertLessThan(p.x, Float(119 - 79.5) / 146 * 2 + 0.001)
            XCTAssertGreaterThan(p.y, Float(10 - 59.5) / 146 * 2 - 0.001)
            XCTAssertEqual(n.z, -1, accuracy: 1e-4)
        }
        // Nothing to describe: no depth at all, or an image smaller than the grid step.
        XCTAssertEqual(PointFeatureExtractor().extract(depth: DepthImage(width: w, height: h, repeating: 0), intrinsics: intrinsics).count, 0)
        XCTAssertEqual(PointFeatureExtractor().extract(depth: DepthImage(width: 2, height: 2, repeating: 2), intrinsics: intrinsics).count, 0)
    }

    /// A surfel map is thinned to one oriented point per voxel: the mean of its confident
    /// surfels, those below the confidence left out, at most the number asked, evenly spread.
    func testASurfelMapThinsToOnePointPerVoxel() {
        let map = SurfelMap(classCount: 0)
        // A 1 m x 1 m wall at z = 2, a surfel every 1 cm; a second, unconfident wall behind it.
        for i in 0..<100 { for j in 0..<100 {
            let p = SIMD3<Float>(Float(i) * 0.01 + 0.005, Float(j) * 0.01 + 0.005, 2)
            map.append(position: p, normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 5, color: .init(0, 0, 0), time: 1)
            map.append(position: p + SIMD3(0, 0, 0.5), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 0.5, color: .init(0, 0, 0), time: 1)
        }}
        let extractor = PointFeatureExtractor()   // 5 cm voxels
        let thinned = extractor.orientedPoints(map: map, minimumConfidence: 1, maximumPoints: 1000)
        XCTAssertEqual(thinned.count, 400, "20 x 20 voxels of the front wall")
        XCTAssertTrue(thinned.points.allSatisfy { abs($0.z - 2) < 1e-5 }, "the unconfident wall is left out")
        XCTAssertTrue(thinned.normals.allSatisfy { abs($0.z + 1) < 1e-6 })
        let first = thinned.points.min { ($0.x, $0.y) < ($1.x, $1.y) }!
        XCTAssertEqual(first.x, 0.025, accuracy: 1e-5, "the mean of the voxel's 25 surfels")
        XCTAssertEqual(extractor.orientedPoints(map: map, minimumConfidence: 1, maximumPoints: 100).count, 100)
        XCTAssertEqual(extractor.orientedPoints(map: map, minimumConfidence: 10, maximumPoints: 100).count, 0)
        XCTAssertEqual(extractor.orientedPoints(map: SurfelMap(classCount: 0), minimumConfidence: 1, maximumPoints: 100).count, 0)
    }
}
