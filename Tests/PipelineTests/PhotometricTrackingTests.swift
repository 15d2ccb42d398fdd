import Foundation
import Geometry
import Mapping
import Sequences
import XCTest

/// The photometric term on the bundled synthetic room (registered colour and depth, known
/// poses): alone it must recover most of a real inter-frame motion, and joined with ICP it must
/// not be worse than ICP alone.
final class PhotometricTrackingTests: XCTestCase {
    func testPhotometricTermAlignsFrames() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try SequenceLoader.open(root.appendingPathComponent("Sequences/synthetic-room"))
        var icpErrors: [Double] = [], jointErrors: [Double] = []
        for (a, b) in [(0, 2), (10, 13), (40, 44)] {
            let f0 = try source.frame(at: a), f1 = try source.frame(at: b)
            let pose0 = try XCTUnwrap(f0.worldFromCamera), pose1 = try XCTUnwrap(f1.worldFromCamera)
            // The model is the first frame's surfels (drawn from the start by the warm-up), their
            // colours from the disc centred nearest to each pixel.
            let fusion = SurfelFusion(intrinsics: source.intrinsics, classCount: 0)
            let live0 = fusion.liveFrame(depth: try XCTUnwrap(f0.depth))
            try fusion.integrate(depth: f0.depth!, color: f0.color, worldFromCamera: pose0, source: "", filteredDepth: live0.filteredDepth)
            fusion.acceptLiveFrame(live0.pyramid, intensity: fusion.liveIntensity(color: f0.color))
            let live1 = fusion.liveFrame(depth: try XCTUnwrap(f1.depth))
            let model = fusion.predictedModel(from: pose0)
            XCTAssertNotNil(model.intensity)
            let truth = pose0.inverse * pose1
            func error(geometricSigma: Double, photometricWeight: Double) -> Double {
                var p = TrackingParameters()
                p.geometricSigma = geometricSigma
                p.photometricWeight = photometricWeight
                p.minConditioning = 0
                let r = ICPTracker(parameters: p).track(frame: live1.pyramid, model: model.geometry, previousPose: pose0, threads: 1,
                                                        frameIntensity: fusion.liveIntensity(color: f1.color), modelIntensity: model.intensity)
                return ((pose0.inverse * r.pose).inverse * truth).translationNorm
            }
            // Photometric alone: ICP's weight made negligible.
            let photometricOnly = error(geometricSigma: 1000, photometricWeight: 1)
            // Measured: 4.9 of 15.3 mm, 5.7 of 10.9 mm, 4.2 of 15.1 mm left (224x168 JPEG frames).
            XCTAssertLessThan(photometricOnly, 0.6 * truth.translationNorm, "frames \(a)→\(b): photometric alone recovers most of the motion")
            icpErrors.append(error(geometricSigma: 0.01, photometricWeight: 0))
            jointErrors.append(error(geometricSigma: 0.01, photometricWeight: 1))
        }
        // Measured: ICP 0.61 / 1.96 / 0.32 mm, joint 0.33 / 0.57 / 0.22 mm.
        XCTAssertLessThanOrEqual(jointErrors.reduce(0, +), icpErrors.reduce(0, +), "ICP \(icpErrors), joint \(jointErrors)")
    }
}
