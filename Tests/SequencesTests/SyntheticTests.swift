import Foundation
import XCTest
import Geometry
import Imaging
import Semantics
@testable import Sequences

final class SyntheticTests: XCTestCase {
    let scene = SyntheticScene.livingRoom()

    func testRaycastHitsLieOnSurfacesWithMatchingClass() {
        var hits = 0
        for k in 0..<400 {
            let origin = SIMD3(SyntheticNoise.uniform(1, UInt64(k)) * 2 - 1, SyntheticNoise.uniform(2, UInt64(k)) * 2 - 1, 1.2)
            let dir = SIMD3(SyntheticNoise.uniform(3, UInt64(k)) - 0.5, SyntheticNoise.uniform(4, UInt64(k)) - 0.5, SyntheticNoise.uniform(5, UInt64(k)) - 0.5)
            guard let hit = scene.raycast(origin: origin, direction: dir) else { continue }
            hits += 1
            let truth = scene.distanceToSurface(hit.point)
            XCTAssertLessThan(truth.distance, 1e-6)
            XCTAssertEqual(abs(hit.normal.length - 1), 0, accuracy: 1e-9)
            XCTAssertLessThan(hit.normal.dot(dir), 0, "normals face the ray")
            if truth.distance < 1e-9 { XCTAssertEqual(truth.classId, hit.classId) }
        }
        XCTAssertEqual(hits, 400, "from inside the room every ray hits something")
    }

    func testCleanDepthBackProjectsOntoTheSurfacesAndLabelsMatch() {
        let renderer = SyntheticRenderer(intrinsics: SyntheticRenderer.defaultIntrinsics(width: 80, height: 60), noise: .none)
        let rendered = renderer.render(37)
        let frame = rendered.frame
        let pose = frame.worldFromCamera!
        var classes = Set<UInt8>()
        for y in 0..<60 {
            for x in 0..<80 {
                let z = rendered.cleanDepth[x, y]
                XCTAssertGreaterThan(z, 0)
                let p = pose * SIMD3<Double>(renderer.intrinsics.backProject(u: Float(x), v: Float(y), depth: z))
                let truth = scene.distanceToSurface(p)
                XCTAssertLessThan(truth.distance, 1e-4)
                if truth.distance < 1e-6 { XCTAssertEqual(Int(frame.labels![x, y]), truth.classId) }
                classes.insert(frame.labels![x, y])
            }
        }
        XCTAssertGreaterThanOrEqual(classes.count, 4)
    }

    func testDepthNoiseFollowsTheKinectModel() {
        let renderer = SyntheticRenderer(intrinsics: SyntheticRenderer.defaultIntrinsics(width: 160, height: 120))
        var errors: [Double] = [], depths: [Double] = []
        var missing = 0, total = 0
        for i in [0, 100] {
            let r = renderer.render(i)
            for p in 0..<r.cleanDepth.count {
                let z = Double(r.cleanDepth.pixels[p]), m = Double(r.frame.depth!.pixels[p])
                total += 1
                guard m > 0 else { missing += 1; continue }
                errors.append(abs(m - z)); depths.append(z)
            }
        }
        // Expected median |error| of a Gaussian is 0.674 σ; disparity quantisation adds a little.
        let median = errors.sorted()[errors.count / 2]
        let zMedian = depths.sorted()[depths.count / 2]
        let sigma = 0.0012 + 0.0019 * (zMedian - 0.4) * (zMedian - 0.4)
        XCTAssertGreaterThan(median, 0.674 * sigma / 1.5)
        XCTAssertLessThan(median, 0.674 * sigma * 1.5 + 0.003)
        let missingFraction = Double(missing) / Double(total)
        XCTAssertTrue(missingFraction > 0.005 && missingFraction < 0.2, "missing \(missingFraction)")
    }

    func testTrajectoryIsSmoothAndStaysInTheRoomAwayFromObjects() {
        let trajectory = SyntheticTrajectory()
        for i in 0..<900 {
            let a = trajectory.pose(i), b = trajectory.pose(i + 1)
            let rel = a.inverse * b
            XCTAssertLessThan(rel.translationNorm, 0.02)
            XCTAssertLessThan(rel.rotationAngle * 180 / .pi, 1.5)
            XCTAssertTrue(a.isValid)
            let clearance = scene.distanceToSurface(a.translation).distance
            XCTAssertGreaterThan(clearance, 0.3, "camera at frame \(i) is \(clearance) m from a surface")
        }
    }

    func testSegmenterIsImperfectVariesAcrossFramesAndIsDeterministic() {
        let renderer = SyntheticRenderer(intrinsics: SyntheticRenderer.defaultIntrinsics(width: 160, height: 120))
        let segmenter = SimulatedSegmenter(classSet: .nyu40, seed: 5)
        var accuracies: [Double] = []
        var previousErrors: Set<Int>?
        var changed = false
        for i in Swift.stride(from: 0, to: 120, by: 20) {
            let labels = renderer.render(i).frame.labels!
            let map = segmenter.predict(labels: labels, frameIndex: i)
            XCTAssertEqual(map.width, 40)
            XCTAssertEqual(map.height, 30)
            accuracies.append(SimulatedSegmenter.accuracy(of: map, against: labels))
            XCTAssertEqual(map.values, segmenter.predict(labels: labels, frameIndex: i).values)
            let same = segmenter.predict(labels: labels, frameIndex: i + 1).argmax()
            let errors = Set((0..<same.count).filter { same.pixels[$0] != map.argmax().pixels[$0] })
            if let previousErrors, previousErrors != errors { changed = true }
            previousErrors = errors
            for p in 0..<(map.width * map.height) {
                let sum = map.values[(p * 40)..<((p + 1) * 40)].reduce(0, +)
                XCTAssertEqual(sum, 1, accuracy: 1e-4)
            }
        }
        let mean = accuracies.reduce(0, +) / Double(accuracies.count)
        XCTAssertTrue(mean > 0.55 && mean < 0.85, "mean per-frame accuracy \(mean)")
        XCTAssertTrue(changed, "errors must differ between frames")
    }

    func testRenderingIsDeterministic() {
        let renderer = SyntheticRenderer(intrinsics: SyntheticRenderer.defaultIntrinsics(width: 64, height: 48), seed: 9)
        let a = renderer.render(3).frame, b = renderer.render(3).frame
        XCTAssertEqual(a.color.pixels, b.color.pixels)
        XCTAssertEqual(a.depth!.pixels, b.depth!.pixels)
        XCTAssertEqual(a.labels!.pixels, b.labels!.pixels)
    }
}
