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
    /// Weight of the photometric term (0: geometric ICP only). Each term is normalised by its
    /// noise (`geometricSigma`, `intensitySigma`) before this relative weight applies.
    /// 0 here; the reconstruction job uses `registeredColorPhotometricWeight` on sequences whose
    /// colour is registered to their depth. On 7-Scenes (colour not registered) weight 1 made
    /// the 500-frame ATE worse (46 vs 37 mm) and tracking 1.5x slower. See docs/results.md.
    public var photometricWeight = 0.0
    /// The photometric weight for sequences whose colour is registered to their depth.
    ///
    /// Point-to-plane ICP alone slides where the geometry leaves a direction free (a wall, a
    /// floor and a low sofa, seen sideways): on three synthetic sequences of `semfuse synth`
    /// (224x168 and 320x240, 240-300 frames) its ATE was 98-106 mm, and 3.6-6.8 mm with this
    /// weight, the best worst case of 0.3, 1 and 2; on the bundled room 7.6 → 6.1 mm (depth-noise
    /// ICP weights). ElasticFusion tracks with both terms for the same reason. See
    /// docs/results.md, "The photometric term where colour is registered".
    public static let registeredColorPhotometricWeight = 1.0

    /// The photometric weight a sequence gets unless the user sets one.
    public static func photometricWeight(colorRegisteredToDepth: Bool) -> Double {
        colorRegisteredToDepth ? registeredColorPhotometricWeight : 0
    }

    /// The depth-noise model for ICP's weights a sequence gets unless the user sets one: none
    /// (uniform weights) for rendered depth, whose far range is as good as its near, else
    /// `sensor`. See `depthNoise`.
    public static func depthNoise(depthIsRendered: Bool, sensor: AxialDepthNoise? = .kinect) -> AxialDepthNoise? {
        depthIsRendered ? nil : sensor
    }
    /// Expected point-to-plane noise, metres.
    public var geometricSigma = 0.01
    /// Expected intensity noise (0-255 units); residuals beyond it get a Huber weight.
    public var intensitySigma: Float = 10
    /// Photometric pixels need a live gradient of at least this (intensity/pixel), per level,
    /// finest first (ElasticFusion's 5, 3, 1).
    public var minGradient: [Float] = [5, 3, 1]
    /// A level stops iterating once an update is smaller than this (metres / radians combined).
    /// 5e-5 (50 µm / 50 µrad) cut the iterations per frame from 16 to 11 on 7-Scenes with the same
    /// ATE (22.6 vs 22.7 mm on frames 0-149) as 1e-6.
    public var convergence = 5e-5
    /// Photometric pixels need the warped depth within this of the model's (ElasticFusion: 7 cm).
    public var maxDepthDifference: Float = 0.07
    /// At the finest pyramid level, each geometric correspondence is weighted by
    /// (σ(1 m) / σ(z))², z the live point's depth, under this sensor noise; nil weights all alike,
    /// as ElasticFusion's ICP does.
    ///
    /// The weights are relative to 1 m, so the normal equations keep their scale there (and the
    /// photometric term its balance). The coarse levels stay uniform: weighted there too, ICP
    /// pulled a camera across a 44 cm gap in the kitchen onto a wrong pose that passed every
    /// check, where uniform coarse levels see the jump and reject it. The failure checks use
    /// unweighted statistics. On the 7-Scenes kitchen (Kinect v1), frames 0-499, the tracked ATE
    /// went from 37.0 to 27.0 mm at 320x240: a Kinect's far depth carries more than noise. On the
    /// synthetic room, whose simulated noise is unbiased and whose surfaces lie mostly beyond
    /// 2.3 m, it went from 5.2 to 7.6 mm, so the reconstruction job weights rendered depth
    /// uniformly (`ReconstructionRequest.automaticICPWeights`). See docs/results.md,
    /// "Depth-noise weights" and "ICP weights for rendered depth".
    /// A model that is not `isUsable` weights uniformly; `ReconstructionRequest` refuses one.
    public var depthNoise: AxialDepthNoise? = .kinect
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
    /// RMS intensity difference of the photometric term's pixels at the final pose (each
    /// clipped at the term's Huber threshold), when the term ran and had pixels.
    public var photometricResidual: Double? = nil
    /// Why the estimate was rejected, or nil when it is good.
    public var failure: String?
    /// Gauss-Newton iterations over all levels.
    public var iterations = 0
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
    ///   - initial: where the search starts, previousCamera ← currentCamera (identity: at the
    ///     previous pose). A loop closure restarts a registration from part-way along its own
    ///     answer to see whether ICP comes back to it.
    public func track(frame: [VertexNormalMap], model: [VertexNormalMap], previousPose: RigidTransform,
                      threads: Int = defaultThreadCount,
                      frameIntensity: [IntensityMap]? = nil, modelIntensity: [IntensityMap]? = nil,
                      initial: RigidTransform = .identity) -> TrackingResult {
        // Incremental transform previousCamera <- currentCamera.
        var T = initial
        var iterationsRun = 0
        let levels = min(frame.count, model.count, parameters.iterations.count)
        for level in stride(from: levels - 1, through: 0, by: -1) {
            for _ in 0..<parameters.iterations[level] {
                var photometric: (live: IntensityMap, model: IntensityMap, minGradient: Float)?
                if parameters.photometricWeight > 0, let fi = frameIntensity, let mi = modelIntensity, level < fi.count, level < mi.count {
                    photometric = (fi[level], mi[level], parameters.minGradient[min(level, parameters.minGradient.count - 1)])
                }
                // Depth-noise weights refine at the finest level only; the coarse levels, which
                // decide where ICP converges, weight all points alike (see `depthNoise`).
                let system = accumulate(frame: frame[level], model: model[level], transform: T, threads: threads,
                                        photometric: photometric, depthWeights: level == 0)
                guard system.inliers >= 6 else { break }
                var x = [Double](repeating: 0, count: 6)
                var rcond = 0.0
                let status = eb_solve_ldlt(6, system.A, system.b, &x, &rcond)
                guard status == 0 else { break }
                let delta = RigidTransform.exp(rho: SIMD3(x[0], x[1], x[2]), omega: SIMD3(x[3], x[4], x[5]))
                T = delta * T
                iterationsRun += 1
                if (x.map { $0 * $0 }.reduce(0, +)).squareRoot() < parameters.convergence { break }
            }
        }
        // Final statistics at the finest level.
        var finalPhotometric: (live: IntensityMap, model: IntensityMap, minGradient: Float)?
        if parameters.photometricWeight > 0, let fi = frameIntensity?.first, let mi = modelIntensity?.first {
            finalPhotometric = (fi, mi, parameters.minGradient.first ?? 0)
        }
        // Conditioning of the system both terms build (texture can constrain what geometry alone
        // does not). Unweighted, so the failure checks judge every point as they always have.
        let final = accumulate(frame: frame[0], model: model[0], transform: T, threads: threads, photometric: finalPhotometric,
                               depthWeights: false)
        var xs = [Double](repeating: 0, count: 6), rcond = 0.0
        _ = eb_solve_ldlt(6, final.A, final.b, &xs, &rcond)
        let pose = previousPose * T
        var failure: String?
        if final.valid == 0 {
            failure = "no pixel has usable depth (a covered or blinded sensor, or everything outside the depth range)"
        } else if Double(final.inliers) < parameters.minInlierFraction * Double(final.valid) {
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
                              residual: final.residual, conditioning: rcond,
                              photometricResidual: final.photometricPixels > 0 ? (final.photometricSquaredError / Double(final.photometricPixels)).squareRoot() : nil,
                              failure: failure, iterations: iterationsRun)
    }

    struct System {
        /// Combined normal equations (noise-normalised geometric + weighted photometric).
        var A = [Double](repeating: 0, count: 36)
        var b = [Double](repeating: 0, count: 6)
        var photometricPixels = 0
        /// Sum of the photometric term's squared intensity differences (each clipped at the
        /// Huber threshold, as the term weighs them), over `photometricPixels`.
        var photometricSquaredError = 0.0
        var inliers = 0
        var valid = 0
        var squaredError = 0.0
        var residual: Double { inliers > 0 ? (squaredError / Double(inliers)).squareRoot() : .infinity }

        /// The worker chunks' systems added in chunk order, so the sum does not depend on timing.
        static func total(of partial: [System]) -> System {
            var total = System()
            for s in partial {
                for i in 0..<36 { total.A[i] += s.A[i] }
                for i in 0..<6 { total.b[i] += s.b[i] }
                total.inliers += s.inliers; total.valid += s.valid; total.squaredError += s.squaredError
                total.photometricPixels += s.photometricPixels
                total.photometricSquaredError += s.photometricSquaredError
            }
            return total
        }
    }

    /// Point-to-plane normal equations for the current estimate (rows chunked across threads,
    /// partial sums added in chunk order so results do not depend on timing).
    /// The eight-lane kernel (`accumulateGeometric`) does the geometric term; a photometric term
    /// is added by this per-pixel loop run for it alone (`geometric: false`). `vectorised: false`
    /// runs both terms in this loop, which tests compare the kernel against.
    func accumulate(frame: VertexNormalMap, model: VertexNormalMap, transform: RigidTransform, threads: Int,
                    photometric: (live: IntensityMap, model: IntensityMap, minGradient: Float)? = nil,
                    depthWeights: Bool = true, vectorised: Bool = true, geometric: Bool = true) -> System {
        let k = model.intrinsics
        let w = frame.intrinsics.width, h = frame.intrinsics.height
        let mw = k.width, mh = k.height
        let R = transform.float
        let fx = Float(k.fx), fy = Float(k.fy), cx = Float(k.cx), cy = Float(k.cy)
        let maxDistance2 = parameters.maxDistance * parameters.maxDistance
        let cosAngle = cos(parameters.maxAngleDegrees * .pi / 180)
        let chunks = max(1, threads * 2)
        let geometricScale = 1 / (parameters.geometricSigma * parameters.geometricSigma)
        let photometricScale = parameters.photometricWeight / Double(parameters.intensitySigma * parameters.intensitySigma)
        let huber = parameters.intensitySigma
        let maxDepthDifference = parameters.maxDepthDifference
        let emptyMap = IntensityMap(width: 0, height: 0, intensity: [])
        let liveI = photometric?.live ?? emptyMap, modelI = photometric?.model ?? emptyMap
        let usePhotometric = photometric != nil && liveI.width == w && liveI.height == h && modelI.width == mw && modelI.height == mh
        if vectorised && geometric {
            var system = accumulateGeometric(frame: frame, model: model, transform: transform, threads: threads, depthWeights: depthWeights)
            guard usePhotometric else { return system }
            let colour = accumulate(frame: frame, model: model, transform: transform, threads: threads, photometric: photometric,
                                    depthWeights: depthWeights, vectorised: false, geometric: false)
            for i in 0..<36 { system.A[i] += colour.A[i] }
            for i in 0..<6 { system.b[i] += colour.b[i] }
            system.photometricPixels = colour.photometricPixels
            system.photometricSquaredError = colour.photometricSquaredError
            return system
        }
        let minGradient2 = (photometric?.minGradient ?? 0) * (photometric?.minGradient ?? 0)
        let noise = depthWeights ? parameters.depthNoiseWeights : nil
        var partial = [System](repeating: System(), count: chunks)
        frame.withKernelInputs { fv, fn in
        model.withKernelInputs { mv, mn in
        liveI.withKernelInputs { li, lgx, lgy in
        modelI.withKernelInputs { mi, mgx, mgy in
        partial.withKernelOutput { out in
            ParallelFor.run(h, chunks: chunks, threads: threads) { c, imageRows in
                var s = System()
                // Rows of JᵀJ and Jᵀe: summed in Float along one image row (a few hundred
                // terms), then added to the Double totals, so the per-pixel work is 8-wide Float.
                var rows = [SIMD8<Double>](repeating: .zero, count: 6)
                var b = SIMD8<Double>.zero
                var photoRows = [SIMD8<Double>](repeating: .zero, count: 6)
                var photoB = SIMD8<Double>.zero
                for y in imageRows {
                    var r0 = SIMD8<Float>(), r1 = SIMD8<Float>(), r2 = SIMD8<Float>()
                    var r3 = SIMD8<Float>(), r4 = SIMD8<Float>(), r5 = SIMD8<Float>(), bf = SIMD8<Float>()
                    var p0 = SIMD8<Float>(), p1 = SIMD8<Float>(), p2 = SIMD8<Float>()
                    var p3 = SIMD8<Float>(), p4 = SIMD8<Float>(), p5 = SIMD8<Float>(), pb = SIMD8<Float>()
                    defer {
                        rows[0] += SIMD8<Double>(r0); rows[1] += SIMD8<Double>(r1); rows[2] += SIMD8<Double>(r2)
                        rows[3] += SIMD8<Double>(r3); rows[4] += SIMD8<Double>(r4); rows[5] += SIMD8<Double>(r5)
                        b += SIMD8<Double>(bf)
                        photoRows[0] += SIMD8<Double>(p0); photoRows[1] += SIMD8<Double>(p1); photoRows[2] += SIMD8<Double>(p2)
                        photoRows[3] += SIMD8<Double>(p3); photoRows[4] += SIMD8<Double>(p4); photoRows[5] += SIMD8<Double>(p5)
                        photoB += SIMD8<Double>(pb)
                    }
                    for x in 0..<w {
                        let p = y * w + x
                        let vc = fv[p]
                        guard vc.z > 0, fn[p] != .zero else { continue }
                        if geometric { s.valid += 1 }
                        let v = R.apply(vc)
                        guard v.z > 0 else { continue }
                        let uf = fx * v.x / v.z + cx, vf = fy * v.y / v.z + cy
                        // Range-checked before converting: a point just in front of the camera
                        // projects arbitrarily far out (or to NaN), which Int() would trap on.
                        let ur = uf.rounded(), tr = vf.rounded()
                        guard ur >= 0, tr >= 0, ur < Float(mw), tr < Float(mh) else { continue }
                        let u = Int(ur), t = Int(tr)
                        let q = t * mw + u
                        let vm = mv[q], nm = mn[q]
                        // Photometric term: the live pixel's intensity against the model's at the
                        // warped position (bilinear), Jacobian through the model's gradient.
                        if usePhotometric, vm.z > 0, abs(v.z - vm.z) <= maxDepthDifference,
                           lgx[p] * lgx[p] + lgy[p] * lgy[p] >= minGradient2, uf >= 0, vf >= 0,
                           uf < Float(mw - 1), vf < Float(mh - 1) {
                            let x0 = Int(uf), y0 = Int(vf), ax = uf - Float(x0), ay = vf - Float(y0)
                            let q00 = y0 * mw + x0, q10 = q00 + 1, q01 = q00 + mw, q11 = q01 + 1
                            if mi[q00] > 0, mi[q10] > 0, mi[q01] > 0, mi[q11] > 0 {
                                let w00 = (1 - ax) * (1 - ay), w10 = ax * (1 - ay), w01 = (1 - ax) * ay, w11 = ax * ay
                                let im = w00 * mi[q00] + w10 * mi[q10] + w01 * mi[q01] + w11 * mi[q11]
                                let gx = w00 * mgx[q00] + w10 * mgx[q10] + w01 * mgx[q01] + w11 * mgx[q11]
                                let gy = w00 * mgy[q00] + w10 * mgy[q10] + w01 * mgy[q01] + w11 * mgy[q11]
                                let r = im - li[p]
                                let iz = 1 / v.z
                                let a = SIMD3<Float>(gx * fx * iz, gy * fy * iz, -(gx * fx * v.x + gy * fy * v.y) * iz * iz)
                                let ca = v.cross(a)
                                let J = SIMD8<Float>(a.x, a.y, a.z, ca.x, ca.y, ca.z, 0, 0)
                                let weight = abs(r) <= huber ? 1 : huber / abs(r)
                                let wJ = weight * J
                                p0 += wJ[0] * J; p1 += wJ[1] * J; p2 += wJ[2] * J
                                p3 += wJ[3] * J; p4 += wJ[4] * J; p5 += wJ[5] * J
                                pb -= wJ * r
                                s.photometricPixels += 1
                                s.photometricSquaredError += Double(min(abs(r), huber) * min(abs(r), huber))
                            }
                        }
                        guard geometric, vm.z > 0, nm != .zero else { continue }
                        let d = v - vm
                        guard d.dot(d) <= maxDistance2, R.rotate(fn[p]).dot(nm) >= cosAngle else { continue }
                        let e = nm.dot(d)
                        // Jacobian and residual scaled by the square root of the depth weight.
                        let sw = noise?.sqrtWeight(depth: vc.z) ?? 1
                        let sn = sw * nm
                        let cr = v.cross(sn)
                        let J = SIMD8<Float>(sn.x, sn.y, sn.z, cr.x, cr.y, cr.z, 0, 0)
                        r0 += J[0] * J; r1 += J[1] * J; r2 += J[2] * J
                        r3 += J[3] * J; r4 += J[4] * J; r5 += J[5] * J
                        bf -= J * (sw * e)
                        s.inliers += 1
                        s.squaredError += Double(e * e)
                    }
                }
                for i in 0..<6 {
                    for j in 0..<6 { s.A[i * 6 + j] = geometricScale * rows[i][j] + photometricScale * photoRows[i][j] }
                    s.b[i] = geometricScale * b[i] + photometricScale * photoB[i]
                }
                out[c] = s
            }
        }}}}}
        return System.total(of: partial)
    }
}
