import Foundation

/// A 3x3 matrix of doubles stored by rows; enough linear algebra for rigid transforms.
public struct Matrix3: Equatable, Hashable, Sendable {
    public var r0: SIMD3<Double>
    public var r1: SIMD3<Double>
    public var r2: SIMD3<Double>

    public init(rows r0: SIMD3<Double>, _ r1: SIMD3<Double>, _ r2: SIMD3<Double>) {
        self.r0 = r0; self.r1 = r1; self.r2 = r2
    }

    public static let identity = Matrix3(rows: SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1))

    public init(rowMajor m: [Double]) {
        precondition(m.count == 9)
        self.init(rows: SIMD3(m[0], m[1], m[2]), SIMD3(m[3], m[4], m[5]), SIMD3(m[6], m[7], m[8]))
    }

    public var rowMajor: [Double] { [r0.x, r0.y, r0.z, r1.x, r1.y, r1.z, r2.x, r2.y, r2.z] }

    public subscript(row: Int, column: Int) -> Double {
        get {
            switch row { case 0: return r0[column]; case 1: return r1[column]; default: return r2[column] }
        }
        set {
            switch row { case 0: r0[column] = newValue; case 1: r1[column] = newValue; default: r2[column] = newValue }
        }
    }

    public init(columns c0: SIMD3<Double>, _ c1: SIMD3<Double>, _ c2: SIMD3<Double>) {
        self.init(rows: SIMD3(c0.x, c1.x, c2.x), SIMD3(c0.y, c1.y, c2.y), SIMD3(c0.z, c1.z, c2.z))
    }

    public func column(_ j: Int) -> SIMD3<Double> { SIMD3(r0[j], r1[j], r2[j]) }

    public static func + (a: Matrix3, b: Matrix3) -> Matrix3 { Matrix3(rows: a.r0 + b.r0, a.r1 + b.r1, a.r2 + b.r2) }

    public func scaled(_ s: Double) -> Matrix3 { Matrix3(rows: r0 * s, r1 * s, r2 * s) }

    /// (A⁻¹)ᵀ, which maps normals under A; the identity's for a singular A.
    public var inverseTranspose: Matrix3 { inverse?.transposed ?? .identity }

    public var transposed: Matrix3 {
        Matrix3(rows: SIMD3(r0.x, r1.x, r2.x), SIMD3(r0.y, r1.y, r2.y), SIMD3(r0.z, r1.z, r2.z))
    }

    public var determinant: Double {
        r0.x * (r1.y * r2.z - r1.z * r2.y) - r0.y * (r1.x * r2.z - r1.z * r2.x) + r0.z * (r1.x * r2.y - r1.y * r2.x)
    }

    public var trace: Double { r0.x + r1.y + r2.z }

    @inlinable
    public static func * (m: Matrix3, v: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3((m.r0 * v).sum(), (m.r1 * v).sum(), (m.r2 * v).sum())
    }

    public static func * (a: Matrix3, b: Matrix3) -> Matrix3 {
        let bt = b.transposed
        return Matrix3(rows: SIMD3((a.r0 * bt.r0).sum(), (a.r0 * bt.r1).sum(), (a.r0 * bt.r2).sum()),
                       SIMD3((a.r1 * bt.r0).sum(), (a.r1 * bt.r1).sum(), (a.r1 * bt.r2).sum()),
                       SIMD3((a.r2 * bt.r0).sum(), (a.r2 * bt.r1).sum(), (a.r2 * bt.r2).sum()))
    }

    /// Rotation by `angle` radians about the unit `axis` (Rodrigues).
    public static func rotation(axis: SIMD3<Double>, angle: Double) -> Matrix3 {
        let n = (axis * axis).sum().squareRoot()
        guard n > 0, angle != 0 else { return .identity }
        let k = axis / n
        let c = cos(angle), s = sin(angle), t = 1 - c
        return Matrix3(
            rows: SIMD3(t * k.x * k.x + c, t * k.x * k.y - s * k.z, t * k.x * k.z + s * k.y),
            SIMD3(t * k.x * k.y + s * k.z, t * k.y * k.y + c, t * k.y * k.z - s * k.x),
            SIMD3(t * k.x * k.z - s * k.y, t * k.y * k.z + s * k.x, t * k.z * k.z + c))
    }

    /// Rotation from a rotation vector (axis times angle), the exponential map of so(3).
    public static func exp(_ omega: SIMD3<Double>) -> Matrix3 {
        let angle = (omega * omega).sum().squareRoot()
        return angle < 1e-15 ? .identity : rotation(axis: omega, angle: angle)
    }

    /// Twice the axis part of the rotation, (R − Rᵀ)∨; its length is 2 sin θ for a rotation.
    var antisymmetricPart: SIMD3<Double> { SIMD3(r2.y - r1.z, r0.z - r2.x, r1.x - r0.y) }

    /// Rotation angle in radians, in [0, π], as `atan2(|(R − Rᵀ)∨|, trace − 1)`.
    ///
    /// `acos((trace − 1) / 2)` loses half the digits near 0: a rotation stored to 1e-4 (7-Scenes'
    /// ground truth is) moves the trace by ~1e-4 and the acos angle by ~1 degree. The atan2 form
    /// takes the sine from the antisymmetric part, which such errors barely touch, so small
    /// angles stay exact to the data's precision (issue 9: RPE 1.24 vs evo's 0.09 deg/frame).
    public var rotationAngle: Double {
        atan2(antisymmetricPart.length, trace - 1)
    }

    /// Rotation vector of a rotation matrix, the logarithm map of SO(3).
    public var log: SIMD3<Double> {
        let w = antisymmetricPart
        let angle = atan2(w.length, trace - 1)
        if angle < 1e-12 { return .zero }
        if angle > .pi - 1e-6 {
            // Near pi the antisymmetric part vanishes; take the axis from the symmetric part.
            let d = SIMD3(r0.x, r1.y, r2.z)
            var axis = ((d + 1) / 2).replacing(with: 0, where: (d + 1) .< 0)
            axis = SIMD3(axis.x.squareRoot(), axis.y.squareRoot(), axis.z.squareRoot())
            if r0.y + r1.x < 0 { axis.y = -axis.y }
            if r0.z + r2.x < 0 { axis.z = -axis.z }
            let n = (axis * axis).sum().squareRoot()
            return n > 0 ? axis / n * angle : .zero
        }
        return w * (angle / (2 * sin(angle)))
    }

    /// The inverse, or nil when the matrix is singular or not finite.
    public var inverse: Matrix3? {
        let d = determinant
        guard d != 0, d.isFinite else { return nil }
        // Columns of the inverse are the row cross products over the determinant.
        let c0 = r1.cross(r2), c1 = r2.cross(r0), c2 = r0.cross(r1)
        return Matrix3(rows: c0 / d, c1 / d, c2 / d).transposed
    }

    /// The nearest rotation in the Frobenius norm (the orthonormal polar factor) and how far the
    /// matrix is from it (`‖M − R‖_F`, 0 for an exact rotation); nil when the determinant is not
    /// positive (a reflection or a singular matrix has no nearest *rotation* worth the name).
    ///
    /// Newton's iteration `X ← (X + X⁻ᵀ) / 2` converges quadratically to the polar factor from
    /// any non-singular start; from the nearly orthonormal matrices real datasets store it
    /// reaches double precision in 3-4 steps (30 is a safety bound, never reached in practice).
    public var nearestRotation: (rotation: Matrix3, deviation: Double)? {
        guard rowMajor.allSatisfy({ $0.isFinite }), determinant > 0 else { return nil }
        var x = self
        for _ in 0..<30 {
            guard let inv = x.inverse else { return nil }
            let it = inv.transposed
            let next = Matrix3(rows: (x.r0 + it.r0) / 2, (x.r1 + it.r1) / 2, (x.r2 + it.r2) / 2)
            let change = (next.r0 - x.r0).length + (next.r1 - x.r1).length + (next.r2 - x.r2).length
            x = next
            if change < 1e-15 { break }
        }
        let d0 = r0 - x.r0, d1 = r1 - x.r1, d2 = r2 - x.r2
        let deviation = ((d0 * d0).sum() + (d1 * d1).sum() + (d2 * d2).sum()).squareRoot()
        return (x, deviation)
    }
}
