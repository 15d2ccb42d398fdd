import Foundation
import Geometry
import XCTest
import TestSupport
@testable import Pipeline
@testable import Sequences

/// `semfuse evaluate`'s trajectory errors against evo's on real poses (issue 9).
///
/// Fixture (Tests/Fixtures/evo-7scenes): `tracked-0-499.txt`, the trajectory `semfuse reconstruct
/// ../shared/data/7scenes-redkitchen --poses track --frames 0:500` wrote, and `evo-reference.json`,
/// evo 1.38.1's numbers for it against the shared ground truth (`tools/dev/evo_reference.py`; the
/// ground truth itself is read from ../shared). Before the robust angle, `evaluate` reported an RPE
/// rotation of 1.24 deg/frame here, where evo reports 0.090.
final class EvoReferenceTests: XCTestCase {
    private var fixtures: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/evo-7scenes")
    }

    func testTrajectoryErrorsMatchEvoOnRealSevenScenesPoses() throws {
        let source = try SequenceLoader.open(try SharedData.require("7scenes-redkitchen"))
        let reference = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("evo-reference.json"))) as? [String: Any])
        func number(_ key: String) throws -> Double { try XCTUnwrap(reference[key] as? Double, key) }
        let estimated = try TUMTrajectory.read(fixtures.appendingPathComponent("tracked-0-499.txt"))
        let evaluation = try Evaluation.trajectory(estimated, source: source)
        XCTAssertEqual(evaluation.trajectoryFrames, try XCTUnwrap(reference["frames"] as? Int))
        XCTAssertTrue(evaluation.leftOut.isEmpty)

        // Tolerances: 1e-7 m and 1e-5 degrees, far below what is printed (0.1 mm, 0.01 deg). Both
        // sides take the nearest rotation of each stored matrix and compute the same quantities;
        // what is left is floating-point order (measured: below 1e-15).
        let ate = try XCTUnwrap(evaluation.ate)
        XCTAssertEqual(ate.rmse, try number("ate_rmse_m"), accuracy: 1e-7)
        XCTAssertEqual(ate.median, try number("ate_median_m"), accuracy: 1e-7)
        XCTAssertEqual(ate.max, try number("ate_max_m"), accuracy: 1e-7)
        let rpe = try XCTUnwrap(evaluation.rpe)
        XCTAssertEqual(rpe.pairs, try XCTUnwrap(reference["rpe_pairs"] as? Int))
        XCTAssertEqual(rpe.translationRMSE, try number("rpe_translation_rmse_m"), accuracy: 1e-7)
        XCTAssertEqual(rpe.rotationMeanDegrees, try number("rpe_rotation_mean_deg"), accuracy: 1e-5)

        // The ground truth's own turn per frame (its RPE against a camera standing still).
        let truth = try (0..<source.frameCount).map { try XCTUnwrap(source.groundTruth(at: $0).pose) }
        let still = RelativePoseError(estimated: [RigidTransform](repeating: .identity, count: truth.count), groundTruth: truth)
        XCTAssertEqual(try XCTUnwrap(still).rotationMeanDegrees, try number("ground_truth_turn_mean_deg"), accuracy: 1e-5)
    }

    /// Small angles from matrices stored to 1e-4, as real ground truth is: the angle must not
    /// pick up the storage error (acos((trace − 1) / 2) turned 1e-4 into about a degree).
    func testSmallAnglesOfImpreciseMatricesStayExact() {
        for angle in [0.0, 1e-4, 1e-3, 0.01, 0.5, 3.0] {
            let exact = Matrix3.rotation(axis: SIMD3(0.3, -0.5, 0.8), angle: angle)
            // A symmetric storage error of 1e-4, like a rotation written in single precision.
            var stored = exact
            stored.r0 += SIMD3(-1e-4, 0.5e-4, 0); stored.r1 += SIMD3(0.5e-4, -0.8e-4, 0.3e-4); stored.r2 += SIMD3(0, 0.3e-4, -1.2e-4)
            XCTAssertEqual(stored.rotationAngle, angle, accuracy: 2e-4 * max(angle, 1e-3) + 1e-12, "angle \(angle)")
            XCTAssertEqual(RigidTransform(rotation: exact).rotationAngle, angle, accuracy: 1e-12)
            XCTAssertEqual(exact.log.length, angle, accuracy: 1e-12)
            let nearest = stored.nearestRotation!
            XCTAssertEqual(nearest.rotation.rotationAngle, angle, accuracy: 1e-4 * max(angle, 1e-3))
            XCTAssertEqual(nearest.deviation, 1.9e-4, accuracy: 0.1e-4, "numpy: 1.87e-4 to 1.94e-4")
        }
        // The old formula on the same kind of matrix, for the record: about a degree at angle 0.
        var stored = Matrix3.identity
        stored.r0.x -= 1e-4; stored.r1.y -= 0.8e-4; stored.r2.z -= 1.2e-4
        XCTAssertGreaterThan(acos((stored.trace - 1) / 2) * 180 / .pi, 0.9)
        XCTAssertEqual(stored.rotationAngle, 0, accuracy: 1e-15)
    }

    func testCheckedRigidTransforms() {
        let r = Matrix3.rotation(axis: SIMD3(1, 2, 3), angle: 0.7)
        func scaled(_ m: Matrix3, _ s: SIMD3<Double>) -> Matrix3 { Matrix3(rows: m.r0 * s, m.r1 * s, m.r2 * s) }
        guard case .success(let ok) = RigidTransform.checked(rotation: scaled(r, SIMD3(1.001, 0.999, 1)), translation: SIMD3(1, 2, 3)) else {
            return XCTFail("a 1e-3 error is real-data precision")
        }
        XCTAssertEqual(ok.deviation, 1.414e-3, accuracy: 0.01e-3)
        XCTAssertEqual(ok.transform.rotation.nearestRotation!.deviation, 0, accuracy: 1e-14)
        XCTAssertEqual(ok.transform.translation, SIMD3(1, 2, 3))
        XCTAssertEqual(RigidTransform.checked(rotation: scaled(r, SIMD3(1.02, 1.02, 1.02)), translation: .zero).failureDescription?
            .contains("0.035 from the nearest rotation"), true)
        XCTAssertEqual(RigidTransform.checked(rotation: scaled(r, SIMD3(1, 1, -1)), translation: .zero).failureDescription?
            .contains("determinant is -1"), true)
        XCTAssertEqual(RigidTransform.checked(rotation: r, translation: SIMD3(.nan, 0, 0)).failureDescription?.contains("NaN"), true)
    }
}

private extension Result {
    var failureDescription: String? {
        if case .failure(let error) = self { return "\(error)" }
        return nil
    }
}
