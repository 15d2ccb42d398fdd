import XCTest
import EigenBridge
@testable import Geometry

final class RigidTransformTests: XCTestCase {
    private func randomPose(_ seed: Double) -> RigidTransform {
        RigidTransform.exp(rho: SIMD3(sin(seed), cos(2 * seed), 0.3 * seed),
                           omega: SIMD3(0.7 * sin(3 * seed), 0.4 * cos(seed), 1.1 * sin(seed + 1)))
    }

    func testQuaternionRoundTrip() {
        for k in 0..<50 {
            let T = randomPose(Double(k) * 0.37)
            let back = RigidTransform(translation: T.translation, quaternion: T.quaternion)
            for (a, b) in zip(T.rotation.rowMajor, back.rotation.rowMajor) { XCTAssertEqual(a, b, accuracy: 1e-12) }
            XCTAssertGreaterThanOrEqual(T.quaternion.w, 0)
        }
        // 180-degree rotations are the delicate case of the conversion.
        for axis in [SIMD3<Double>(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1), SIMD3(1, 1, 0)] {
            let R = Matrix3.rotation(axis: axis, angle: .pi)
            let back = RigidTransform(translation: .zero, quaternion: RigidTransform(rotation: R).quaternion)
            for (a, b) in zip(R.rowMajor, back.rotation.rowMajor) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        }
    }

    func testInverseAndComposition() {
        let a = randomPose(0.5), b = randomPose(1.7)
        let p = SIMD3<Double>(0.3, -1.2, 2.5)
        let ab = a * b
        let q1 = ab * p, q2 = a * (b * p)
        XCTAssertEqual((q1 - q2).length, 0, accuracy: 1e-12)
        XCTAssertEqual(((a.inverse * a) * p - p).length, 0, accuracy: 1e-12)
    }

    func testLogIsInverseOfExp() {
        for k in 0..<30 {
            let w = SIMD3<Double>(sin(Double(k)), cos(Double(k) * 1.3), 0.5) * (Double(k) / 10)
            guard w.length < .pi - 1e-3 else { continue }
            XCTAssertEqual((Matrix3.exp(w).log - w).length, 0, accuracy: 1e-9)
        }
        let nearPi = SIMD3<Double>(0, 0, .pi)
        XCTAssertEqual(Matrix3.exp(nearPi).log.length, .pi, accuracy: 1e-6)
    }

    func testFractionOfAMotion() {
        for k in 1..<8 {
            let a = randomPose(Double(k) * 0.37)
            XCTAssertEqual((a.fraction(0).matrix4RowMajor.enumerated().map { abs($1 - RigidTransform.identity.matrix4RowMajor[$0]) }.max())!, 0, accuracy: 1e-12)
            let whole = a.fraction(1), half = a.fraction(0.5)
            for (x, y) in zip(whole.matrix4RowMajor, a.matrix4RowMajor) { XCTAssertEqual(x, y, accuracy: 1e-9) }
            // Half the rotation twice is the rotation; the translation is scaled, not screwed.
            XCTAssertEqual((half.rotation * half.rotation).log.length, a.rotation.log.length, accuracy: 1e-9)
            XCTAssertEqual(half.rotationAngle, a.rotationAngle / 2, accuracy: 1e-9)
            XCTAssertEqual((half.translation - a.translation / 2).length, 0, accuracy: 1e-12)
            XCTAssertEqual((half.rotation.log - a.rotation.log / 2).length, 0, accuracy: 1e-9)
        }
    }

    func testValidity() {
        XCTAssertTrue(RigidTransform.identity.isValid)
        var bad = RigidTransform.identity
        bad.translation.y = .nan
        XCTAssertFalse(bad.isValid)
        bad = RigidTransform(rotation: Matrix3(rowMajor: [1, 0, 0, 0, 1, 0, 0, 0, -1]))
        XCTAssertFalse(bad.isValid, "a reflection is not a rotation")
    }

    func testIntrinsicsProjectionWithNegativeFocal() {
        let k = Intrinsics(fx: 481.2, fy: -480, cx: 319.5, cy: 239.5, width: 640, height: 480)
        let p = k.backProject(u: 100, v: 50, depth: 2)
        let uv = k.project(p)
        XCTAssertEqual(uv.x, 100, accuracy: 1e-3)
        XCTAssertEqual(uv.y, 50, accuracy: 1e-3)
        XCTAssertGreaterThan(p.y, 0, "with negative fy, rows above the centre map to +y")
        let half = k.scaled(toWidth: 320, height: 240)
        XCTAssertEqual(half.fx, 240.6, accuracy: 1e-9)
        XCTAssertEqual(half.cx, 159.5, accuracy: 1e-9)
    }

    func testEigenBridgeSolvesAndAligns() {
        // 6x6 SPD system.
        var A = [Double](repeating: 0, count: 36)
        for i in 0..<6 { for j in 0..<6 { A[i * 6 + j] = i == j ? 10 + Double(i) : 1 / Double(1 + i + j) } }
        let xTrue: [Double] = [1, -2, 3, 0.5, -0.25, 4]
        var b = [Double](repeating: 0, count: 6)
        for i in 0..<6 { for j in 0..<6 { b[i] += A[i * 6 + j] * xTrue[j] } }
        var x = [Double](repeating: 0, count: 6)
        var rcond = 0.0
        XCTAssertEqual(eb_solve_ldlt(6, A, b, &x, &rcond), 0)
        for i in 0..<6 { XCTAssertEqual(x[i], xTrue[i], accuracy: 1e-10) }
        XCTAssertGreaterThan(rcond, 0.1)
        XCTAssertNotEqual(eb_solve_ldlt(6, [Double](repeating: 0, count: 36), b, &x, &rcond), 0, "singular must fail")

        let T = randomPose(0.9)
        var src = [Double](), dst = [Double]()
        for k in 0..<20 {
            let p = SIMD3<Double>(sin(Double(k)), cos(Double(k) * 0.7), Double(k) * 0.1)
            let q = T * p
            src += [p.x, p.y, p.z]; dst += [q.x, q.y, q.z]
        }
        var M = [Double](repeating: 0, count: 16)
        XCTAssertEqual(eb_umeyama_rigid(20, src, dst, &M), 0)
        for (a, b) in zip(M, T.matrix4RowMajor) { XCTAssertEqual(a, b, accuracy: 1e-9) }
    }
}
