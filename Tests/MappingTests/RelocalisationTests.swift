import Geometry
import Imaging
@testable import Mapping
import XCTest

/// Test images with corners: a blocky grey texture, shifted copies of it, as colour.
enum TestTexture {
    /// A deterministic blocky texture (random grey squares, lightly blurred) as an RGB image.
    static func texture(width: Int, height: Int, seed: UInt64 = 7) -> [Float] {
        var random = SplitMix64(seed: seed)
        let block = 6
        let bw = width / block + 2, bh = height / block + 2
        let values = (0..<(bw * bh)).map { _ in Float(Int.random(in: 30...225, using: &random)) }
        return (0..<(width * height)).map { p in
            let x = p % width, y = p / width
            return values[(y / block) * bw + x / block]
        }
    }

    static func shifted(_ grey: [Float], width: Int, height: Int, dx: Int, dy: Int) -> [Float] {
        (0..<(width * height)).map { p in
            let x = p % width - dx, y = p / width - dy
            return x >= 0 && y >= 0 && x < width && y < height ? grey[y * width + x] : 128
        }
    }

    static func color(_ grey: [Float], width: Int, height: Int) -> ColorImage {
        ColorImage(width: width, height: height, pixels: grey.map { RGB8(UInt8($0), UInt8($0), UInt8($0)) })
    }
}

/// The parts of relocalisation on data whose answer is known: ferns, keypoints, RANSAC.
final class RelocalisationTests: XCTestCase {
    func testRansacRecoversARigidMotionDespiteWrongMatches() throws {
        var random = SplitMix64(seed: 3)
        let truth = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0.2, 1, 0.1), angle: 0.3), translation: SIMD3(0.25, -0.1, 0.05))
        let f = truth.float
        var source: [SIMD3<Float>] = [], target: [SIMD3<Float>] = []
        for i in 0..<120 {
            let p = SIMD3<Float>(Float.random(in: -1...1, using: &random), Float.random(in: -1...1, using: &random), Float.random(in: 1...3, using: &random))
            source.append(p)
            if i % 5 < 2 {  // 40 % wrong matches
                target.append(SIMD3(Float.random(in: -1...1, using: &random), Float.random(in: -1...1, using: &random), Float.random(in: 1...3, using: &random)))
            } else {
                target.append(f.apply(p) + SIMD3(Float.random(in: -0.003...0.003, using: &random), 0, 0))
            }
        }
        let result = try XCTUnwrap(RigidRANSAC.estimate(source: source, target: target))
        XCTAssertEqual(result.inliers, 72)
        XCTAssertLessThan((result.targetFromSource.translation - truth.translation).length, 0.005)
        XCTAssertLessThan((result.targetFromSource.inverse * truth).rotationAngle, 0.005)
        // Nothing but noise: no registration.
        let noise = (0..<120).map { _ in SIMD3<Float>(Float.random(in: -1...1, using: &random), Float.random(in: -1...1, using: &random), Float.random(in: 1...3, using: &random)) }
        XCTAssertNil(RigidRANSAC.estimate(source: source, target: noise))
    }

    /// A textured wall 1.5 m in front of the camera, seen again after the camera moved sideways
    /// (the image shifts by whole pixels): keypoints, matching and RANSAC give that motion back.
    func testKeypointsRegisterAShiftedView() throws {
        let w = 200, h = 150, z: Float = 1.5
        let intrinsics = Intrinsics(fx: 150, fy: 150, cx: 100, cy: 75, width: w, height: h)
        let depth = DepthImage(width: w, height: h, repeating: z)
        let a = TestTexture.texture(width: w, height: h), b = TestTexture.shifted(a, width: w, height: h, dx: 9, dy: -5)
        let detector = KeypointDetector()
        let ka = detector.detect(grey: a, width: w, height: h, depth: depth, intrinsics: intrinsics)
        let kb = detector.detect(grey: b, width: w, height: h, depth: depth, intrinsics: intrinsics)
        XCTAssertGreaterThan(ka.count, 40)
        let matches = KeypointDetector.match(kb, ka)
        XCTAssertGreaterThan(matches.count, 20)
        let right = matches.filter { ka.pixels[$0.1] &+ SIMD2(9, -5) == kb.pixels[$0.0] }.count
        XCTAssertGreaterThan(Double(right) / Double(matches.count), 0.8, "matches that pair the same texture point")
        let fit = try XCTUnwrap(RigidRANSAC.estimate(source: matches.map { kb.points[$0.0] }, target: matches.map { ka.points[$0.1] }))
        // b's pixel (x, y) shows what a showed at (x - 9, y + 5): a's camera frame = b's shifted by (-9, 5) px at 1.5 m.
        let expected = SIMD3<Double>(-9 * 1.5 / 150, 5 * 1.5 / 150, 0)
        XCTAssertLessThan((fit.targetFromSource.translation - expected).length, 0.003, "\(fit.targetFromSource)")
        XCTAssertLessThan(fit.targetFromSource.rotationAngle, 0.01)
    }

    func testFernsTellARevisitedViewFromANewOne() {
        let w = 160, h = 120
        var database = FernDatabase()
        let depth = DepthImage(width: w, height: h, pixels: (0..<(w * h)).map { 1 + Float($0 % w) / Float(w) * 2 })
        let a = TestTexture.texture(width: w, height: h, seed: 1)
        let codeA = database.encode(color: TestTexture.color(a, width: w, height: h), depth: depth)
        XCTAssertEqual(database.encode(color: TestTexture.color(a, width: w, height: h), depth: depth), codeA, "encoding is deterministic")
        XCTAssertTrue(database.isNovel(codeA), "an empty database has seen nothing")
        database.add(FernDatabase.Keyframe(code: codeA, worldFromCamera: .identity, position: 0, tick: 0, features: KeypointSet()))
        // The same place from nearly the same viewpoint (a 2-pixel shift): found, not novel.
        let again = database.encode(color: TestTexture.color(TestTexture.shifted(a, width: w, height: h, dx: 2, dy: 1), width: w, height: h), depth: depth)
        XCTAssertLessThan(FernDatabase.dissimilarity(again, codeA), database.parameters.novelty)
        XCTAssertFalse(database.isNovel(again))
        XCTAssertEqual(database.nearest(again, count: 3).first?.index, 0)
        // Another place (other texture, other depth): novel.
        let farDepth = DepthImage(width: w, height: h, pixels: (0..<(w * h)).map { 3.5 - Float($0 / w) / Float(h) * 2 })
        let other = database.encode(color: TestTexture.color(TestTexture.texture(width: w, height: h, seed: 99), width: w, height: h), depth: farDepth)
        XCTAssertGreaterThan(FernDatabase.dissimilarity(other, codeA), database.parameters.novelty)
        XCTAssertTrue(database.isNovel(other))
    }
}
