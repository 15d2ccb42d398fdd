import Foundation
import Geometry
import Imaging
import Sequences
import XCTest
@testable import Mapping

/// The eight-lane geometric accumulation against the per-pixel loop it replaced, on real
/// geometry (two frames of the bundled synthetic room), at widths that are and are not a
/// multiple of eight, for several transforms and thread counts.
final class ICPAccumulationTests: XCTestCase {
    private func crop(_ depth: DepthImage, width: Int, height: Int) -> [Float] {
        var out = [Float](repeating: 0, count: width * height)
        for y in 0..<height { for x in 0..<width { out[y * width + x] = depth[x, y] } }
        return out
    }

    func testEightLaneKernelMatchesThePerPixelLoop() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try SequenceLoader.open(root.appendingPathComponent("Sequences/synthetic-room"))
        let f0 = try source.frame(at: 10), f1 = try source.frame(at: 14)
        let d0 = try XCTUnwrap(f0.depth), d1 = try XCTUnwrap(f1.depth)
        let truth = try XCTUnwrap(f0.worldFromCamera).inverse * XCTUnwrap(f1.worldFromCamera)
        var uniform = TrackingParameters()
        uniform.depthNoise = nil
        var compared = 0
        for tracker in [ICPTracker(), ICPTracker(parameters: uniform)] {
        // 224 is the room's width (28 blocks); 221 and 53 leave a short last block.
        for (width, height) in [(224, 168), (221, 163), (53, 41)] {
            var k = source.intrinsics
            k.width = width; k.height = height
            let model = VertexNormalMap(depth: crop(d0, width: width, height: height), intrinsics: k)
            let frame = VertexNormalMap(depth: crop(d1, width: width, height: height), intrinsics: k)
            let nudge = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0.3, 1, 0.2), angle: 0.02),
                                       translation: SIMD3(0.01, -0.02, 0.015))
            for transform in [RigidTransform.identity, truth, nudge * truth] {
                for threads in [1, 2] {
                    let scalar = tracker.accumulate(frame: frame, model: model, transform: transform, threads: threads, vectorised: false)
                    let lanes = tracker.accumulate(frame: frame, model: model, transform: transform, threads: threads)
                    let label = "\(width)x\(height), \(transform), \(threads) threads"
                    // Unfiltered depth: noisy normals leave about a third of the pixels as inliers.
                    XCTAssertGreaterThan(scalar.inliers, width * height / 20, label)
                    XCTAssertLessThan(scalar.inliers, scalar.valid, label)
                    // The same checks on the same Float values: the same pixels count.
                    XCTAssertEqual(lanes.valid, scalar.valid, label)
                    XCTAssertEqual(lanes.inliers, scalar.inliers, label)
                    // Only the order of Float additions differs.
                    let scale = scalar.A.map(abs).max()!
                    for i in 0..<36 { XCTAssertEqual(lanes.A[i], scalar.A[i], accuracy: 1e-5 * scale, "A[\(i)] \(label)") }
                    let bScale = max(scalar.b.map(abs).max()!, 1e-9)
                    for i in 0..<6 { XCTAssertEqual(lanes.b[i], scalar.b[i], accuracy: 1e-4 * bScale, "b[\(i)] \(label)") }
                    XCTAssertEqual(lanes.squaredError, scalar.squaredError, accuracy: 1e-4 * scalar.squaredError, label)
                    compared += 1
                }
            }
        }
        }
        XCTAssertEqual(compared, 36)
    }

    /// With the photometric term, the eight-lane kernel does the geometric part and the per-pixel
    /// loop adds the photometric part alone: the same system as the loop doing both, up to the
    /// order of the geometric Float additions, with the same pixels in each term.
    func testPhotometricTermJoinsTheEightLaneKernel() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try SequenceLoader.open(root.appendingPathComponent("Sequences/synthetic-room"))
        let f0 = try source.frame(at: 10), f1 = try source.frame(at: 14)
        let k = source.intrinsics
        let model = VertexNormalMap(depth: try XCTUnwrap(f0.depth).pixels, intrinsics: k)
        let frame = VertexNormalMap(depth: try XCTUnwrap(f1.depth).pixels, intrinsics: k)
        let live = IntensityMap(width: k.width, height: k.height, intensity: IntensityMap.luma(f1.color))
        let old = IntensityMap(width: k.width, height: k.height, intensity: IntensityMap.luma(f0.color))
        let truth = try XCTUnwrap(f0.worldFromCamera).inverse * XCTUnwrap(f1.worldFromCamera)
        let nudge = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0.3, 1, 0.2), angle: 0.01), translation: SIMD3(0.005, -0.01, 0.01))
        var parameters = TrackingParameters()
        parameters.photometricWeight = 1
        let tracker = ICPTracker(parameters: parameters)
        var colourResidual: [Double] = []
        for transform in [truth, nudge * truth] {
            for threads in [1, 2] {
                let both = tracker.accumulate(frame: frame, model: model, transform: transform, threads: threads,
                                              photometric: (live, old, 5), vectorised: false)
                let split = tracker.accumulate(frame: frame, model: model, transform: transform, threads: threads, photometric: (live, old, 5))
                let geometric = tracker.accumulate(frame: frame, model: model, transform: transform, threads: threads)
                let label = "\(transform), \(threads) threads"
                XCTAssertGreaterThan(both.photometricPixels, k.width * k.height / 10, label)
                XCTAssertEqual(split.photometricPixels, both.photometricPixels, label)
                XCTAssertEqual(split.photometricSquaredError, both.photometricSquaredError, accuracy: 1e-9 * both.photometricSquaredError, label)
                if threads == 1 { colourResidual.append((both.photometricSquaredError / Double(both.photometricPixels)).squareRoot()) }
                XCTAssertEqual(split.valid, both.valid, label)
                XCTAssertEqual(split.inliers, both.inliers, label)
                XCTAssertEqual(split.squaredError, both.squaredError, accuracy: 1e-4 * both.squaredError, label)
                let scale = both.A.map(abs).max()!
                for i in 0..<36 { XCTAssertEqual(split.A[i], both.A[i], accuracy: 1e-5 * scale, "A[\(i)] \(label)") }
                let bScale = both.b.map(abs).max()!
                for i in 0..<6 { XCTAssertEqual(split.b[i], both.b[i], accuracy: 1e-4 * bScale, "b[\(i)] \(label)") }
                // The photometric part is really there: the system differs from geometry alone.
                let difference = zip(split.A, geometric.A).map { abs($0 - $1) }.max()!
                XCTAssertGreaterThan(difference, 1e-3 * scale, label)
            }
        }
        // The intensity residual (`TrackingResult.photometricResidual`) grows when the pose is off.
        XCTAssertGreaterThan(colourResidual[1], 1.2 * colourResidual[0], "\(colourResidual)")
    }

    /// On a plane facing the camera every live point has the same depth, so the depth-noise
    /// weights scale the whole system by one factor, (σ(1 m) / σ(z))², and leave the squared
    /// error (reported unweighted) and the correspondences alone. At 1 m the factor is 1.
    func testDepthNoiseWeightsScaleEachCorrespondenceByItsDepth() {
        let k = Intrinsics(fx: 60, fy: 60, cx: 31.5, cy: 23.5, width: 64, height: 48)
        let noise = AxialDepthNoise.kinect
        var uniform = TrackingParameters()
        uniform.depthNoise = nil
        let nudge = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0.2, 1, 0.1), angle: 0.01),
                                   translation: SIMD3(0.004, -0.003, 0.006))
        for z in [Float(1), 2.5, 0.6] {
            // A plane tilted a little, so the system has a full rank of rotations to scale.
            var depth = [Float](repeating: 0, count: k.width * k.height)
            for y in 0..<k.height { for x in 0..<k.width { depth[y * k.width + x] = z * (1 + 0.0005 * Float(x - 32)) } }
            let frame = VertexNormalMap(depth: depth, intrinsics: k)
            let model = VertexNormalMap(depth: depth.map { $0 + 0.003 }, intrinsics: k)
            for vectorised in [true, false] {
                let plain = ICPTracker(parameters: uniform).accumulate(frame: frame, model: model, transform: nudge, threads: 2, vectorised: vectorised)
                let weighted = ICPTracker().accumulate(frame: frame, model: model, transform: nudge, threads: 2, vectorised: vectorised)
                XCTAssertGreaterThan(plain.inliers, k.width * k.height / 2)
                XCTAssertEqual(weighted.inliers, plain.inliers)
                XCTAssertEqual(weighted.squaredError, plain.squaredError, accuracy: 1e-9 * plain.squaredError)
                // The plane's depth varies by ±1.6 % (±6.5 % in weight at 2.5 m), so the
                // factor holds on average, not exactly.
                let factor = pow(noise.sigma(atDepth: 1) / noise.sigma(atDepth: Double(z)), 2)
                let trace = (0..<6).map { plain.A[$0 * 7] }.reduce(0, +), weightedTrace = (0..<6).map { weighted.A[$0 * 7] }.reduce(0, +)
                XCTAssertEqual(weightedTrace / trace, factor, accuracy: 0.05 * factor, "z = \(z), vectorised \(vectorised)")
                if z == 1 { XCTAssertEqual(weightedTrace / trace, 1, accuracy: 0.01) } else {
                    // Near points count more than far ones, never the reverse.
                    XCTAssertEqual(weightedTrace > trace, z < 1, "z = \(z)")
                }
                // Asked for no weights, the tracker's own call is the uniform system.
                let unweighted = ICPTracker().accumulate(frame: frame, model: model, transform: nudge, threads: 2,
                                                         depthWeights: false, vectorised: vectorised)
                XCTAssertEqual(unweighted.A, plain.A)
                XCTAssertEqual(unweighted.b, plain.b)
            }
        }
    }

    func testEmptyModelGivesNoCorrespondences() {
        let k = Intrinsics(fx: 50, fy: 50, cx: 10, cy: 8, width: 21, height: 17)
        let frame = VertexNormalMap(depth: [Float](repeating: 1, count: 21 * 17), intrinsics: k)
        let model = VertexNormalMap(depth: [Float](repeating: 0, count: 21 * 17), intrinsics: k)
        let s = ICPTracker().accumulate(frame: frame, model: model, transform: .identity, threads: 2)
        XCTAssertEqual(s.inliers, 0)
        XCTAssertEqual(s.valid, 20 * 16) // normals need a right and a lower neighbour
        XCTAssertEqual(s.A, [Double](repeating: 0, count: 36))
    }
}
