import XCTest
import Geometry
import Imaging
import TestSupport
@testable import Mapping

/// The association's per-pixel measurement, eight pixels at a time, against the same arithmetic
/// one pixel at a time.
final class AssociationKernelTests: XCTestCase {
    private let intrinsics = Intrinsics(fx: 70, fy: 73, cx: 41.3, cy: 30.6, width: 83, height: 61)

    /// Raw depth with holes, a depth edge, a steep ramp (normals almost across the view) and
    /// noise; the filtered depth is the bilateral filter's, with holes of its own, so a lane
    /// can fail on either.
    private func depths() -> (raw: [Float], filtered: [Float]) {
        var rng = SplitMix64(seed: 11)
        let w = intrinsics.width, h = intrinsics.height
        var raw = DepthImage(width: w, height: h, repeating: 0)
        for y in 0..<h {
            for x in 0..<w {
                let noise = Float(rng.nextDouble() - 0.5) * 0.01
                var z: Float = x < 30 ? 1.2 + 0.004 * Float(y) : 2.0 - 0.003 * Float(x)
                if (50..<60).contains(x) { z = 0.6 + 0.2 * Float(x - 50) }   // 20 cm a pixel
                raw[x, y] = (x * 7 + y * 3) % 23 == 0 ? 0 : z + noise
            }
        }
        for x in 10..<20 { raw[x, 25] = 0 }
        var filtered = [Float]()
        BilateralFilter().apply(raw, into: &filtered, threads: 1)
        for i in stride(from: 5, to: filtered.count, by: 37) { filtered[i] = 0 }
        return (raw.pixels, filtered)
    }

    private func same(_ a: AssociationMeasurement.Pixel, _ b: AssociationMeasurement.Pixel) -> Bool {
        func bits(_ p: AssociationMeasurement.Pixel) -> [UInt32] {
            [p.normal.x, p.normal.y, p.normal.z, p.vertex.x, p.vertex.y, p.vertex.z, p.radius,
             p.ray.x, p.ray.y, p.ray.z, p.rayScale].map(\.bitPattern)
        }
        return bits(a) == bits(b)
    }

    func testLanesGiveThePixelsBits() {
        let (raw, filtered) = depths()
        let m = AssociationMeasurement(intrinsics: intrinsics)
        let w = intrinsics.width, h = intrinsics.height
        var measured = 0, acrossTheView = 0
        raw.withUnsafeBufferPointer { raw in
            filtered.withUnsafeBufferPointer { filtered in
                for step in [1, 2] {
                    for y in 1...(h - 2) {
                        var x0 = 1
                        while x0 + 8 * step <= w - 1 {
                            let lanes = m.lanes(raw: raw.baseAddress!, filtered: filtered.baseAddress!, x0: x0, y: y, step: step)
                            for k in 0..<8 {
                                let x = x0 + k * step
                                let pixel = m.pixel(raw: raw.baseAddress!, filtered: filtered.baseAddress!, x: x, y: y)
                                XCTAssertEqual(lanes.valid[k], pixel != nil, "(\(x), \(y)) step \(step)")
                                if let pixel, lanes.valid[k] {
                                    XCTAssertTrue(same(lanes[k], pixel), "(\(x), \(y)) step \(step): \(lanes[k]) against \(pixel)")
                                    measured += 1
                                    if pixel.normal.x > 0.9 || pixel.normal.x < -0.9 { acrossTheView += 1 }
                                }
                            }
                            x0 += 1
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(measured, 2 * (w - 18) * (h - 2) / 2, "most lanes measure something")
        XCTAssertGreaterThan(acrossTheView, 0, "the ramp gives normals almost across the view")
    }

    func testPixelsOnTheBorderOrWithoutDepthMeasureNothing() {
        let (raw, filtered) = depths()
        let m = AssociationMeasurement(intrinsics: intrinsics)
        let w = intrinsics.width, h = intrinsics.height
        raw.withUnsafeBufferPointer { raw in
            filtered.withUnsafeBufferPointer { filtered in
                for (x, y) in [(0, 10), (w - 1, 10), (10, 0), (10, h - 1)] {
                    XCTAssertNil(m.pixel(raw: raw.baseAddress!, filtered: filtered.baseAddress!, x: x, y: y))
                }
                // A hole in the raw depth takes its four neighbours with it.
                for (x, y) in [(15, 25), (15, 24), (15, 26)] {
                    XCTAssertNil(m.pixel(raw: raw.baseAddress!, filtered: filtered.baseAddress!, x: x, y: y))
                }
                XCTAssertNotNil(m.pixel(raw: raw.baseAddress!, filtered: filtered.baseAddress!, x: 15, y: 23))
            }
        }
    }

    /// Whole fusion with the measurement eight pixels at a time and one at a time: the same map,
    /// over frames with every pixel (the first) and the checkerboard (the rest).
    func testFusionGivesTheSameMapEitherWay() throws {
        let scene = PlaneScene()
        var rng = SplitMix64(seed: 5)
        var frames: [(DepthImage, RigidTransform)] = []
        for i in 0..<6 {
            let pose = scene.pose(i * 5)
            var depth = scene.depth(pose)
            for j in 0..<depth.count {
                depth.pixels[j] = j % 29 == i ? 0 : depth.pixels[j] + Float(rng.nextDouble() - 0.5) * 0.004
            }
            frames.append((depth, pose))
        }
        var maps: [SurfelMap] = []
        for vectorised in [false, true] {
            let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 0)
            fusion.associationVectorised = vectorised
            for (depth, pose) in frames { try fusion.integrate(depth: depth, color: scene.color(), worldFromCamera: pose) }
            maps.append(fusion.map)
        }
        XCTAssertGreaterThan(maps[0].count, 1000)
        XCTAssertEqual(maps[0].count, maps[1].count)
        func differing<T: Equatable>(_ a: [T], _ b: [T]) -> Int { zip(a, b).filter { $0 != $1 }.count }
        XCTAssertEqual(differing(maps[0].positions, maps[1].positions), 0, "positions")
        XCTAssertEqual(differing(maps[0].normals, maps[1].normals), 0, "normals")
        XCTAssertEqual(differing(maps[0].radii, maps[1].radii), 0, "radii")
        XCTAssertEqual(differing(maps[0].confidences, maps[1].confidences), 0, "confidences")
    }
}
