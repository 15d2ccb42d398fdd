import Foundation

/// A rigid-body transform (SE(3)) in double precision.
///
/// Name values after the frames they map between, `worldFromCamera * pointInCamera`, so
/// compositions read right to left like the maths.
public struct RigidTransform: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rotation: Matrix3
    public var translation: SIMD3<Double>

    public init(rotation: Matrix3 = .identity, translation: SIMD3<Double> = .zero) {
        self.rotation = rotation
        self.translation = translation
    }

    public static let identity = RigidTransform()

    /// From a row-major 4x4 matrix (16 values); the last row is ignored.
    public init(matrix4RowMajor m: [Double]) {
        precondition(m.count >= 12)
        rotation = Matrix3(rows: SIMD3(m[0], m[1], m[2]), SIMD3(m[4], m[5], m[6]), SIMD3(m[8], m[9], m[10]))
        translation = SIMD3(m[3], m[7], m[11])
    }

    public var matrix4RowMajor: [Double] {
        [rotation.r0.x, rotation.r0.y, rotation.r0.z, translation.x,
         rotation.r1.x, rotation.r1.y, rotation.r1.z, translation.y,
         rotation.r2.x, rotation.r2.y, rotation.r2.z, translation.z,
         0, 0, 0, 1]
    }

    /// From a translation and a unit quaternion (x, y, z, w) as in TUM trajectory files.
    /// The quaternion is normalised; a zero quaternion gives identity rotation.
    public init(translation t: SIMD3<Double>, quaternion q: SIMD4<Double>) {
        let n = (q * q).sum().squareRoot()
        let u = n > 0 ? q / n : SIMD4(0, 0, 0, 1)
        let (x, y, z, w) = (u.x, u.y, u.z, u.w)
        rotation = Matrix3(
            rows: SIMD3(1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
            SIMD3(2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
            SIMD3(2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)))
        translation = t
    }

    /// Unit quaternion (x, y, z, w) of the rotation, with w >= 0.
    public var quaternion: SIMD4<Double> {
        let m = rotation
        let tr = m.trace
        var q: SIMD4<Double>
        if tr > 0 {
            let s = (tr + 1).squareRoot() * 2
            q = SIMD4((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
        } else if m[0, 0] > m[1, 1] && m[0, 0] > m[2, 2] {
            let s = (1 + m[0, 0] - m[1, 1] - m[2, 2]).squareRoot() * 2
            q = SIMD4(0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
        } else if m[1, 1] > m[2, 2] {
            let s = (1 + m[1, 1] - m[0, 0] - m[2, 2]).squareRoot() * 2
            q = SIMD4((m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
        } else {
            let s = (1 + m[2, 2] - m[0, 0] - m[1, 1]).squareRoot() * 2
            q = SIMD4((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s)
        }
        let n = (q * q).sum().squareRoot()
        q /= n
        return q.w < 0 ? -q : q
    }

    public var inverse: RigidTransform {
        let rt = rotation.transposed
        return RigidTransform(rotation: rt, translation: -(rt * translation))
    }

    public static func * (a: RigidTransform, b: RigidTransform) -> RigidTransform {
        RigidTransform(rotation: a.rotation * b.rotation, translation: a.rotation * b.translation + a.translation)
    }

    @inlinable
    public static func * (a: RigidTransform, p: SIMD3<Double>) -> SIMD3<Double> {
        a.rotation * p + a.translation
    }

    /// The SE(3) exponential of a twist (translation part `rho`, rotation vector `omega`).
    public static func exp(rho: SIMD3<Double>, omega: SIMD3<Double>) -> RigidTransform {
        let theta = (omega * omega).sum().squareRoot()
        let R = Matrix3.exp(omega)
        if theta < 1e-10 { return RigidTransform(rotation: R, translation: rho) }
        let k = omega / theta
        let K = Matrix3(rows: SIMD3(0, -k.z, k.y), SIMD3(k.z, 0, -k.x), SIMD3(-k.y, k.x, 0))
        let K2 = K * K
        let a = (1 - cos(theta)) / theta, b = (theta - sin(theta)) / theta
        var V = Matrix3.identity
        V.r0 += a * K.r0 + b * K2.r0
        V.r1 += a * K.r1 + b * K2.r1
        V.r2 += a * K.r2 + b * K2.r2
        return RigidTransform(rotation: R, translation: V * rho)
    }

    /// Rotation angle in radians (robust for small angles, see `Matrix3.rotationAngle`).
    public var rotationAngle: Double { rotation.rotationAngle }

    /// The fraction `t` of this motion from the identity: the rotation's angle about the same
    /// axis and the translation, both times `t` (0 gives the identity, 1 the motion itself).
    public func fraction(_ t: Double) -> RigidTransform {
        RigidTransform(rotation: Matrix3.exp(rotation.log * t), translation: translation * t)
    }

    /// How far a stored rotation may be from orthonormal (`‖R − nearest rotation‖_F`) and still
    /// be read as a rigid transform, then re-orthonormalised.
    ///
    /// Measured on the shared data: 7-Scenes redkitchen frames 0-499 are off by up to 1.9e-4
    /// (every one of them: the poses were written by a tracker in single precision), and
    /// frames 500-999 of the same sequence by about 1e-3 (136 poses, issue 9). 1e-2 leaves a
    /// margin of 10 over the worst real pose, while a 1 % scale (0.017), a mm/m mix-up or a
    /// visible shear are still far outside and rejected.
    public static let rotationTolerance = 1e-2

    /// Why a matrix read from a file is not accepted as a rigid transform.
    public enum RigidityProblem: Error, Equatable, CustomStringConvertible {
        case nonFinite
        /// det ≤ 0: a reflection (or a singular matrix), never a camera pose.
        case notARotation(determinant: Double)
        /// Scaled or sheared beyond `rotationTolerance`.
        case notOrthonormal(deviation: Double, tolerance: Double)

        public var description: String {
            switch self {
            case .nonFinite: return "not a rigid transform: a value is NaN or infinite"
            case .notARotation(let d):
                return String(format: "not a rigid transform: the rotation's determinant is %.3g (a reflection or singular matrix, not a rotation)", d)
            case .notOrthonormal(let d, let t):
                return String(format: "not a rigid transform: the rotation is %.2g from the nearest rotation (scaled or sheared; accepted up to %.0e)", d, t)
            }
        }
    }

    /// A rigid transform from a stored rotation and translation: re-orthonormalised (nearest
    /// rotation) when within `tolerance` of one, with the deviation found, or the problem.
    public static func checked(rotation: Matrix3, translation: SIMD3<Double>,
                               tolerance: Double = rotationTolerance) -> Result<(transform: RigidTransform, deviation: Double), RigidityProblem> {
        guard (rotation.rowMajor + [translation.x, translation.y, translation.z]).allSatisfy({ $0.isFinite }) else {
            return .failure(.nonFinite)
        }
        guard let nearest = rotation.nearestRotation else { return .failure(.notARotation(determinant: rotation.determinant)) }
        guard nearest.deviation <= tolerance else {
            return .failure(.notOrthonormal(deviation: nearest.deviation, tolerance: tolerance))
        }
        return .success((RigidTransform(rotation: nearest.rotation, translation: translation), nearest.deviation))
    }

    public var translationNorm: Double { (translation * translation).sum().squareRoot() }

    /// Returns false when any entry is NaN/inf or the rotation is far from orthonormal.
    public var isValid: Bool {
        let all = rotation.rowMajor + [translation.x, translation.y, translation.z]
        guard all.allSatisfy({ $0.isFinite }) else { return false }
        let rrt = rotation * rotation.transposed
        let err = abs(rrt[0, 0] - 1) + abs(rrt[1, 1] - 1) + abs(rrt[2, 2] - 1) + abs(rrt[0, 1]) + abs(rrt[0, 2]) + abs(rrt[1, 2])
        return err < 1e-3 && rotation.determinant > 0
    }

    /// A single-precision copy for per-point work (rows of R, then t).
    public var float: RigidTransformF {
        RigidTransformF(r0: SIMD3<Float>(rotation.r0), r1: SIMD3<Float>(rotation.r1), r2: SIMD3<Float>(rotation.r2),
                        t: SIMD3<Float>(translation))
    }

    public var description: String {
        let q = quaternion
        return String(format: "t=(%.4f, %.4f, %.4f) q=(%.4f, %.4f, %.4f, %.4f)",
                      translation.x, translation.y, translation.z, q.x, q.y, q.z, q.w)
    }
}

/// Single-precision rigid transform used in per-point loops.
public struct RigidTransformF: Sendable {
    public var r0: SIMD3<Float>
    public var r1: SIMD3<Float>
    public var r2: SIMD3<Float>
    public var t: SIMD3<Float>

    @inlinable
    public init(r0: SIMD3<Float>, r1: SIMD3<Float>, r2: SIMD3<Float>, t: SIMD3<Float>) {
        self.r0 = r0; self.r1 = r1; self.r2 = r2; self.t = t
    }

    @inlinable @inline(__always)
    public func apply(_ p: SIMD3<Float>) -> SIMD3<Float> {
        SIMD3((r0 * p).sum(), (r1 * p).sum(), (r2 * p).sum()) + t
    }

    @inlinable @inline(__always)
    public func rotate(_ v: SIMD3<Float>) -> SIMD3<Float> {
        SIMD3((r0 * v).sum(), (r1 * v).sum(), (r2 * v).sum())
    }
}
