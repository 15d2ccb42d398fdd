import EigenBridge
import Foundation
import Geometry
import Imaging

/// Parameters of frame-to-model ICP (ElasticFusion's geometric term, reference §3).
public struct TrackingParameters: Sendable, Equatable {
    /// Iterations per pyramid level, finest first (ElasticFusion: 10, 5, 4).
    public var iterations = [10, 5, 4]
    /// Correspondences further apart than this are rejected.
    public var maxDistance: Float = 0.1
    /// Correspondences whose normals differ by more than this (degrees) are rejected.
    public var maxAngleDegrees: Float = 20
    /// Failure: fewer inliers than this fraction of the valid pixels at the finest level.
    public var minInlierFraction = 0.1
    /// Failure: RMS point-to-plane residual above this (metres).
    public var maxResidual = 0.03
    /// Failure: a jump larger than this between consecutive frames (metres / degrees).
    public var maxTranslation = 0.3
    public var maxRotationDegrees = 30.0
    /// Failure: normal equations worse conditioned than this (min/max pivot of LDLT).
    public var minConditioning = 1e-7
    public init() {}
}

/// Outcome of tracking one frame.
public struct TrackingResult: Sendable {
    /// Estimated camera-to-world pose (the previous pose when tracking failed).
    public var pose: RigidTransform
    public var inliers: Int
    public var validPixels: Int
    /// RMS point-to-plane residual at the finest level, metres.
    public var residual: Double
    public var conditioning: Double
    /// Why the estimate was rejected, or nil when it is good.
    public var failure: String?
    public var succeeded: Bool { failure == nil }
}

/// Frame-to-model point-to-plane ICP with projective association, coarse to fine over a
/// 3-level pyramid, 6x6 normal equations solved by LDLT through Eigen.
public struct ICPTracker: Sendable {
    public var parameters: TrackingParameters
    public init(parameters: TrackingParameters = TrackingParameters()) { self.parameters = parameters }

    /// Aligns the live frame to the model prediction rendered from `previousPose`.
    /// - Parameters:
    ///   - frame: live vertex/normal pyramid (camera frame), finest first.
    ///   - model: predicted vertex/normal pyramid in the previous camera frame, finest first.
    public func track(frame: [VertexNormalMap], model: [VertexNormalMap], previousPose: RigidTransform,
                      threads: Int = defaultThreadCount) -> TrackingResult {
        // Incremental transform previousCamera <- currentCamera, starting at identity.
        var T = RigidTransform.identity
        var last = (inliers: 0, valid: 0, residual: 0.0, conditioning: 0.0)
        let levels = min(frame.count, model.count, parameters.iterations.count)
        for level in stride(from: levels - 1, through: 0, by: -1) {
            for _ in 0..<parameters.iterations[level] {
                let system = accumulate(frame: frame[level], model: model[level], transform: T, threads: threads)
                last = (system.inliers, system.valid, system.residual, 0)
                guard system.inliers >= 6 else { break }
                var x = [Double](repeating: 0, count: 6)
                var rcond = 0.0
                let status = eb_solve_ldlt(6, system.A, system.b, &x, &rcond)
                last.conditioning = rcond
                guard status == 0 else { break }
                let delta = RigidTransform.exp(rho: SIMD3(x[0], x[1], x[2]), omega: SIMD3(x[3], x[4], x[5]))
                T = delta * T
                if (x.map { $0 * $0 }.reduce(0, +)).squareRoot() < 1e-6 { break }   // converged (~µm / µrad)
            }
        }
        // Final statistics at the finest level.
        let final = accumulate(frame: frame[0], model: model[0], transform: T, threads: threads)
        var xs = [Double](repeating: 0, count: 6), rcond = 0.0
        _ = eb_solve_ldlt(6, final.A, final.b, &xs, &rcond)
        let pose = previousPose * T
        var failure: String?
        if final.valid == 0 || Double(final.inliers) < parameters.minInlierFraction * Double(final.valid) {
            failure = "only \(final.inliers) of \(final.valid) pixels matched the model"
        } else if final.residual > parameters.maxResidual {
            failure = String(format: "residual %.1f mm too large", final.residual * 1000)
        } else if rcond < parameters.minConditioning {
            failure = String(format: "geometry does not constrain the pose (conditioning %.1e)", rcond)
        } else if T.translationNorm > parameters.maxTranslation || T.rotationAngle * 180 / .pi > parameters.maxRotationDegrees {
            failure = String(format: "implausible jump (%.2f m, %.1f deg)", T.translationNorm, T.rotationAngle * 180 / .pi)
        } else if !pose.isValid {
            failure = "non-finite pose"
        }
        return TrackingResult(pose: failure == nil ? pose : previousPose, inliers: final.inliers, validPixels: final.valid,
                              residual: final.residual, conditioning: rcond, failure: failure)
    }

    struct System {
        var A = [Double](repeating: 0, count: 36)
        var b = [Double](repeating: 0, count: 6)
        var inliers = 0
        var valid = 0
        var squaredError = 0.0
        var residual: Double { inliers > 0 ? (squaredError / Double(inliers)).squareRoot() : .infinity }
    }

    /// Point-to-plane normal equations for the current estimate (rows chunked across threads,
    /// partial sums added in chunk order so results do not depend on timing).
    func accumulate(frame: VertexNormalMap, model: VertexNormalMap, transform: RigidTransform, threads: Int) -> System {
        let k = model.intrinsics
        let w = frame.intrinsics.width, h = frame.intrinsics.height
        let mw = k.width, mh = k.height
        let R = transform.float
        let fx = Float(k.fx), fy = Float(k.fy), cx = Float(k.cx), cy = Float(k.cy)
        let maxDistance2 = parameters.maxDistance * parameters.maxDistance
        let cosAngle = cos(parameters.maxAngleDegrees * .pi / 180)
        let chunks = max(1, threads * 2)
        var partial = [System](repeating: System(), count: chunks)
        frame.vertices.withUnsafeBufferPointer { fv in
        frame.normals.withUnsafeBufferPointer { fn in
        model.vertices.withUnsafeBufferPointer { mv in
        model.normals.withUnsafeBufferPointer { mn in
        partial.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let fv = fv, fn = fn, mv = mv, mn = mn, out = out
            DispatchQueueRunner.run(chunks, threads: threads) { c in
                var s = System()
                // Rows of JᵀJ and Jᵀe: summed in Float along one image row (a few hundred
                // terms), then added to the Double totals, so the per-pixel work is 8-wide Float.
                var rows = [SIMD8<Double>](repeating: .zero, count: 6)
                var b = SIMD8<Double>.zero
                for y in (h * c / chunks)..<(h * (c + 1) / chunks) {
                    var r0 = SIMD8<Float>(), r1 = SIMD8<Float>(), r2 = SIMD8<Float>()
                    var r3 = SIMD8<Float>(), r4 = SIMD8<Float>(), r5 = SIMD8<Float>(), bf = SIMD8<Float>()
                    defer {
                        rows[0] += SIMD8<Double>(r0); rows[1] += SIMD8<Double>(r1); rows[2] += SIMD8<Double>(r2)
                        rows[3] += SIMD8<Double>(r3); rows[4] += SIMD8<Double>(r4); rows[5] += SIMD8<Double>(r5)
                        b += SIMD8<Double>(bf)
                    }
                    for x in 0..<w {
                        let p = y * w + x
                        let vc = fv[p]
                        guard vc.z > 0, fn[p] != .zero else { continue }
                        s.valid += 1
                        let v = R.apply(vc)
                        guard v.z > 0 else { continue }
                        let u = Int((fx * v.x / v.z + cx).rounded()), t = Int((fy * v.y / v.z + cy).rounded())
                        guard u >= 0, t >= 0, u < mw, t < mh else { continue }
                        let q = t * mw + u
                        let vm = mv[q], nm = mn[q]
                        guard vm.z > 0, nm != .zero else { continue }
                        let d = v - vm
                        guard d.dot(d) <= maxDistance2, R.rotate(fn[p]).dot(nm) >= cosAngle else { continue }
                        let e = nm.dot(d)
                        let cr = v.cross(nm)
                        let J = SIMD8<Float>(nm.x, nm.y, nm.z, cr.x, cr.y, cr.z, 0, 0)
                        r0 += J[0] * J; r1 += J[1] * J; r2 += J[2] * J
                        r3 += J[3] * J; r4 += J[4] * J; r5 += J[5] * J
                        bf -= J * e
                        s.inliers += 1
                        s.squaredError += Double(e * e)
                    }
                }
                for i in 0..<6 {
                    for j in 0..<6 { s.A[i * 6 + j] = rows[i][j] }
                    s.b[i] = b[i]
                }
                out[c] = s
            }
        }}}}}
        var total = System()
        for s in partial {
            for i in 0..<36 { total.A[i] += s.A[i] }
            for i in 0..<6 { total.b[i] += s.b[i] }
            total.inliers += s.inliers; total.valid += s.valid; total.squaredError += s.squaredError
        }
        return total
    }
}
