import Foundation
import Geometry

/// Square roots of the depth-noise weights, (σ(1 m) / σ(z)) per live depth z, in Float.
struct DepthNoiseWeights {
    let base: Float, quadratic: Float, offset: Float, reference: Float

    init(_ noise: AxialDepthNoise) {
        base = Float(noise.base); quadratic = Float(noise.quadratic); offset = Float(noise.offset)
        reference = Float(noise.sigma(atDepth: 1))
    }

    @inline(__always)
    func sqrtWeight(depth z: Float) -> Float {
        let d = z - offset
        return reference / (base + quadratic * d * d)
    }

    @inline(__always)
    func sqrtWeight(depth z: SIMD8<Float>) -> SIMD8<Float> {
        let d = z - offset
        return reference / (base + quadratic * d * d)
    }
}

extension TrackingParameters {
    /// The weights' constants, or nil for uniform weights (also when the model is unusable).
    var depthNoiseWeights: DepthNoiseWeights? {
        guard let depthNoise, depthNoise.isUsable else { return nil }
        return DepthNoiseWeights(depthNoise)
    }
}

/// The geometric ICP normal equations eight pixels at a time.
///
/// The per-pixel loop in `ICPTracker.accumulate` handles one correspondence per iteration, with
/// a branch per check and two scalar divisions; at 640x480 it was 30 % of a tracked frame.
/// Here the checks are lane masks, the projection is one vector division, and the 21 distinct
/// entries of JᵀJ (it is symmetric), the 6 of Jᵀe and the squared error are summed per lane
/// along a row in Float, then added to Double totals (as the scalar loop does per row). The
/// model lookups stay per lane: projective association is a gather.
///
/// Same correspondences as the scalar loop (the same Float arithmetic decides each check); the
/// sums differ only in the order of Float additions (a few ulps; `ICPAccumulationTests`).
extension ICPTracker {
    /// Accumulators per lane: 21 of JᵀJ (upper triangle, row by row), 6 of Jᵀe, squared error,
    /// valid pixels, inliers.
    private static let laneSums = 30

    func accumulateGeometric(frame: VertexNormalMap, model: VertexNormalMap, transform: RigidTransform, threads: Int,
                             depthWeights: Bool = true) -> System {
        let k = model.intrinsics
        let w = frame.intrinsics.width, h = frame.intrinsics.height
        let mw = k.width, mh = k.height
        guard w > 0, h > 0, mw > 0, mh > 0, model.vertices.count >= mw * mh, model.normals.count >= mw * mh else {
            return System()
        }
        let R = transform.float
        let camera = (fx: Float(k.fx), fy: Float(k.fy), cx: Float(k.cx), cy: Float(k.cy), width: mw, height: mh)
        let limits = (maxDistance2: parameters.maxDistance * parameters.maxDistance,
                      cosAngle: cos(parameters.maxAngleDegrees * .pi / 180))
        let geometricScale = 1 / (parameters.geometricSigma * parameters.geometricSigma)
        let noise = depthWeights ? parameters.depthNoiseWeights : nil
        let chunks = max(1, threads * 2)
        var partial = [System](repeating: System(), count: chunks)
        frame.withKernelInputs { fv, fn in
        model.withKernelInputs { mv, mn in
        partial.withKernelOutput { out in
            ParallelFor.run(h, chunks: chunks, threads: threads) { c, imageRows in
                var totals = [Double](repeating: 0, count: Self.laneSums)
                withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: Self.laneSums) { acc in
                    // A short last block reads its pixels from here, zero (invalid) past the row.
                    var tailVertices = [SIMD3<Float>](repeating: .zero, count: 8)
                    var tailNormals = [SIMD3<Float>](repeating: .zero, count: 8)
                    for y in imageRows {
                        acc.initialize(repeating: .zero)
                        var x = 0
                        while x + 8 <= w {
                            Self.block(fv.address(y * w + x), fn.address(y * w + x), mv.base, mn.base,
                                       R: R, camera: camera, limits: limits, noise: noise, acc: acc.baseAddress!)
                            x += 8
                        }
                        if x < w {
                            for i in 0..<8 {
                                tailVertices[i] = x + i < w ? fv[y * w + x + i] : .zero
                                tailNormals[i] = x + i < w ? fn[y * w + x + i] : .zero
                            }
                            tailVertices.withUnsafeBufferPointer { tv in
                                tailNormals.withUnsafeBufferPointer { tn in
                                    Self.block(tv.baseAddress!, tn.baseAddress!, mv.base, mn.base,
                                               R: R, camera: camera, limits: limits, noise: noise, acc: acc.baseAddress!)
                                }
                            }
                        }
                        for i in 0..<Self.laneSums {
                            totals[i] += SIMD8<Double>(acc[i]).sum()
                        }
                    }
                }
                var s = System()
                var e = 0
                for i in 0..<6 {
                    for j in i..<6 {
                        s.A[i * 6 + j] = geometricScale * totals[e]
                        s.A[j * 6 + i] = s.A[i * 6 + j]
                        e += 1
                    }
                }
                for i in 0..<6 { s.b[i] = geometricScale * totals[21 + i] }
                s.squaredError = totals[27]
                s.valid = Int(totals[28])
                s.inliers = Int(totals[29])
                out[c] = s
            }
        }}}
        return System.total(of: partial)
    }

    /// Eight consecutive live pixels: transform, project, look up the model, check, add.
    @inline(__always)
    private static func block(_ fv: UnsafePointer<SIMD3<Float>>, _ fn: UnsafePointer<SIMD3<Float>>,
                              _ mv: UnsafePointer<SIMD3<Float>>, _ mn: UnsafePointer<SIMD3<Float>>,
                              R: RigidTransformF,
                              camera: (fx: Float, fy: Float, cx: Float, cy: Float, width: Int, height: Int),
                              limits: (maxDistance2: Float, cosAngle: Float),
                              noise: DepthNoiseWeights?,
                              acc: UnsafeMutablePointer<SIMD8<Float>>) {
        var px = SIMD8<Float>(), py = SIMD8<Float>(), pz = SIMD8<Float>()
        var nx = SIMD8<Float>(), ny = SIMD8<Float>(), nz = SIMD8<Float>()
        for i in 0..<8 {
            let v = fv[i], n = fn[i]
            px[i] = v.x; py[i] = v.y; pz[i] = v.z
            nx[i] = n.x; ny[i] = n.y; nz[i] = n.z
        }
        let zero = SIMD8<Float>()
        let valid = (pz .> zero) .& ((nx .!= zero) .| (ny .!= zero) .| (nz .!= zero))
        if !any(valid) { return }
        // The live point in the model camera.
        let vx = R.r0.x * px + R.r0.y * py + R.r0.z * pz + R.t.x
        let vy = R.r1.x * px + R.r1.y * py + R.r1.z * pz + R.t.y
        let vz = R.r2.x * px + R.r2.y * py + R.r2.z * pz + R.t.z
        // Projected and rounded as the scalar loop does; lanes behind the camera or off the
        // model are masked before anything converts them to an index.
        let uf = camera.fx * vx / vz + camera.cx, vf = camera.fy * vy / vz + camera.cy
        let ur = uf.rounded(.toNearestOrAwayFromZero), tr = vf.rounded(.toNearestOrAwayFromZero)
        let inside = valid .& (vz .> zero) .& (ur .>= zero) .& (tr .>= zero)
            .& (ur .< Float(camera.width)) .& (tr .< Float(camera.height))
        if !any(inside) { acc[28] += zero.replacing(with: 1, where: valid); return }
        let uc = ur.replacing(with: 0, where: .!inside), tc = tr.replacing(with: 0, where: .!inside)
        var mx = SIMD8<Float>(), my = SIMD8<Float>(), mz = SIMD8<Float>()
        var ax = SIMD8<Float>(), ay = SIMD8<Float>(), az = SIMD8<Float>()
        for i in 0..<8 {
            let q = Int(tc[i]) * camera.width + Int(uc[i])
            let m = mv[q], n = mn[q]
            mx[i] = m.x; my[i] = m.y; mz[i] = m.z
            ax[i] = n.x; ay[i] = n.y; az[i] = n.z
        }
        let dx = vx - mx, dy = vy - my, dz = vz - mz
        // The live normal rotated into the model camera, against the model's.
        let rx = R.r0.x * nx + R.r0.y * ny + R.r0.z * nz
        let ry = R.r1.x * nx + R.r1.y * ny + R.r1.z * nz
        let rz = R.r2.x * nx + R.r2.y * ny + R.r2.z * nz
        let inlier = inside .& (mz .> zero) .& ((ax .!= zero) .| (ay .!= zero) .| (az .!= zero))
            .& (dx * dx + dy * dy + dz * dz .<= limits.maxDistance2)
            .& (rx * ax + ry * ay + rz * az .>= limits.cosAngle)
        let outlier = .!inlier
        // Jacobian (n, v × n) and residual n·(v − m), both scaled by the square root of the
        // pixel's weight; zero in lanes that are not inliers. The squared error stays unweighted.
        let rawError = (ax * dx + ay * dy + az * dz).replacing(with: 0, where: outlier)
        var s = SIMD8<Float>(repeating: 1)
        if let noise { s = noise.sqrtWeight(depth: pz) }
        let sx = s * ax, sy = s * ay, sz = s * az
        let j0 = sx.replacing(with: 0, where: outlier)
        let j1 = sy.replacing(with: 0, where: outlier)
        let j2 = sz.replacing(with: 0, where: outlier)
        let j3 = (vy * sz - vz * sy).replacing(with: 0, where: outlier)
        let j4 = (vz * sx - vx * sz).replacing(with: 0, where: outlier)
        let j5 = (vx * sy - vy * sx).replacing(with: 0, where: outlier)
        let e = s * rawError
        acc[0] += j0 * j0; acc[1] += j0 * j1; acc[2] += j0 * j2; acc[3] += j0 * j3; acc[4] += j0 * j4; acc[5] += j0 * j5
        acc[6] += j1 * j1; acc[7] += j1 * j2; acc[8] += j1 * j3; acc[9] += j1 * j4; acc[10] += j1 * j5
        acc[11] += j2 * j2; acc[12] += j2 * j3; acc[13] += j2 * j4; acc[14] += j2 * j5
        acc[15] += j3 * j3; acc[16] += j3 * j4; acc[17] += j3 * j5
        acc[18] += j4 * j4; acc[19] += j4 * j5
        acc[20] += j5 * j5
        acc[21] -= j0 * e; acc[22] -= j1 * e; acc[23] -= j2 * e; acc[24] -= j3 * e; acc[25] -= j4 * e; acc[26] -= j5 * e
        acc[27] += rawError * rawError
        acc[28] += zero.replacing(with: 1, where: valid)
        acc[29] += zero.replacing(with: 1, where: inlier)
    }
}
