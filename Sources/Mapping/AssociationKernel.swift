import Foundation
import Geometry

/// What ElasticFusion's association takes from one depth pixel before it looks for a surfel:
/// the normal from the filtered depth of the four neighbours, the vertex from the raw depth, the
/// new surfel's radius, and the viewing ray the candidates are ranked along.
///
/// `lanes` measures eight pixels of a row at once with the operations of `pixel`, in the same
/// order, so both give the same bits (`AssociationKernelTests`); the candidate search after it
/// stays per pixel, since its loads go to random surfels.
struct AssociationMeasurement {
    let fx: Float, fy: Float, cx: Float, cy: Float, meanFocal: Float
    let width: Int, height: Int

    init(intrinsics: Intrinsics) {
        fx = Float(intrinsics.fx); fy = Float(intrinsics.fy)
        cx = Float(intrinsics.cx); cy = Float(intrinsics.cy)
        meanFocal = Float(intrinsics.meanFocal)
        width = intrinsics.width; height = intrinsics.height
    }

    struct Pixel {
        /// Unit normal facing the camera, and the camera-frame vertex.
        var normal: SIMD3<Float>
        var vertex: SIMD3<Float>
        var radius: Float
        /// The unit viewing ray, and the length of (x/z, y/z, 1) it was scaled from.
        var ray: SIMD3<Float>
        var rayScale: Float
    }

    /// Eight measurements; a lane whose `valid` is false measured nothing (its values are
    /// unspecified).
    struct Lanes {
        var valid: SIMDMask<SIMD8<Int32>>
        var nx: SIMD8<Float>, ny: SIMD8<Float>, nz: SIMD8<Float>
        var vx: SIMD8<Float>, vy: SIMD8<Float>, vz: SIMD8<Float>
        var radius: SIMD8<Float>
        var rx: SIMD8<Float>, ry: SIMD8<Float>, rz: SIMD8<Float>
        var rayScale: SIMD8<Float>

        @inline(__always) subscript(k: Int) -> Pixel {
            Pixel(normal: SIMD3(nx[k], ny[k], nz[k]), vertex: SIMD3(vx[k], vy[k], vz[k]), radius: radius[k],
                  ray: SIMD3(rx[k], ry[k], rz[k]), rayScale: rayScale[k])
        }
    }

    private static let sqrt2 = Float(2).squareRoot()

    /// Pixel (x, y), or nil where it measures nothing: on the image border, raw depth missing
    /// at it or at a 4-neighbour, filtered depth missing at any of the five, or no normal.
    /// Missing depth is 0.
    @inline(__always)
    func pixel(raw: UnsafePointer<Float>, filtered: UnsafePointer<Float>, x: Int, y: Int) -> Pixel? {
        let w = width, h = height, p = y * w + x
        let z = raw[p]
        guard z > 0, x > 0, y > 0, x < w - 1, y < h - 1,
              raw[p - 1] > 0, raw[p + 1] > 0, raw[p - w] > 0, raw[p + w] > 0 else { return nil }
        let zf = filtered[p], zl = filtered[p - 1], zr = filtered[p + 1], zu = filtered[p - w], zd = filtered[p + w]
        guard zf > 0, zl > 0, zr > 0, zu > 0, zd > 0 else { return nil }
        let xf = Float(x), yf = Float(y)
        let vl = SIMD3((xf - 1 - cx) * zl / fx, (yf - cy) * zl / fy, zl)
        let vr = SIMD3((xf + 1 - cx) * zr / fx, (yf - cy) * zr / fy, zr)
        let vu = SIMD3((xf - cx) * zu / fx, (yf - 1 - cy) * zu / fy, zu)
        let vd = SIMD3((xf - cx) * zd / fx, (yf + 1 - cy) * zd / fy, zd)
        var nc = (vr - vl).cross(vd - vu)
        let len = nc.length
        guard len > 0, len.isFinite else { return nil }
        nc /= len
        let xh = (xf - cx) / fx, yh = (yf - cy) / fy
        let vc = SIMD3(xh * z, yh * z, z)
        if nc.dot(vc) > 0 { nc = -nc }
        let r0 = Self.sqrt2 * zf / meanFocal
        let radius = min(2 * r0, r0 / max(abs(nc.z), 1e-6))
        let rayScale = (xh * xh + yh * yh + 1).squareRoot()
        return Pixel(normal: nc, vertex: vc, radius: radius, ray: SIMD3(xh, yh, 1) / rayScale, rayScale: rayScale)
    }

    /// Pixels x0, x0 + step, …, x0 + 7·step of row y, for step 1 or 2. Needs 1 ≤ y ≤ height − 2,
    /// x0 ≥ 1 and x0 + 8·step ≤ width − 1 (every lane off the border; the loads stay in the row).
    @inline(__always)
    func lanes(raw: UnsafePointer<Float>, filtered: UnsafePointer<Float>, x0: Int, y: Int, step: Int) -> Lanes {
        precondition(step == 1 || step == 2)
        let w = width, p0 = y * w + x0
        typealias V = SIMD8<Float>
        // The pixel and its four neighbours, eight lanes each. With step 2 one 16-wide load
        // holds the lanes' pixels and their left neighbours (odd and even halves).
        func five(_ base: UnsafePointer<Float>) -> (c: V, l: V, r: V, u: V, d: V) {
            let at = { (q: Int) in UnsafeRawPointer(base + q) }
            if step == 1 {
                return (at(p0).loadUnaligned(as: V.self), at(p0 - 1).loadUnaligned(as: V.self), at(p0 + 1).loadUnaligned(as: V.self),
                        at(p0 - w).loadUnaligned(as: V.self), at(p0 + w).loadUnaligned(as: V.self))
            }
            let row = at(p0 - 1).loadUnaligned(as: SIMD16<Float>.self)
            return (row.oddHalf, row.evenHalf, at(p0 + 1).loadUnaligned(as: SIMD16<Float>.self).evenHalf,
                    at(p0 - w).loadUnaligned(as: SIMD16<Float>.self).evenHalf, at(p0 + w).loadUnaligned(as: SIMD16<Float>.self).evenHalf)
        }
        let r = five(raw), f = five(filtered)
        let zero = V(repeating: 0)
        var valid = (r.c .> zero) .& (r.l .> zero) .& (r.r .> zero) .& (r.u .> zero) .& (r.d .> zero)
        valid = valid .& (f.c .> zero) .& (f.l .> zero) .& (f.r .> zero) .& (f.u .> zero) .& (f.d .> zero)

        let xf = V(repeating: Float(x0)) + V(0, 1, 2, 3, 4, 5, 6, 7) * Float(step)   // exact: integers
        let yf = V(repeating: Float(y))
        let z = r.c, zf = f.c, zl = f.l, zr = f.r, zu = f.u, zd = f.d
        let vlx = (xf - 1 - cx) * zl / fx, vly = (yf - cy) * zl / fy
        let vrx = (xf + 1 - cx) * zr / fx, vry = (yf - cy) * zr / fy
        let vux = (xf - cx) * zu / fx, vuy = (yf - 1 - cy) * zu / fy
        let vdx = (xf - cx) * zd / fx, vdy = (yf + 1 - cy) * zd / fy
        // (vr − vl) × (vd − vu), as SIMD3.cross.
        let ax = vrx - vlx, ay = vry - vly, az = zr - zl
        let bx = vdx - vux, by = vdy - vuy, bz = zd - zu
        var nx = ay * bz - az * by, ny = az * bx - ax * bz, nz = ax * by - ay * bx
        // SIMD3.length sums x², y², z² in that order.
        let len = (nx * nx + ny * ny + nz * nz).squareRoot()
        valid = valid .& (len .> zero) .& (len .< V(repeating: .infinity))
        nx /= len; ny /= len; nz /= len
        let xh = (xf - cx) / fx, yh = (yf - cy) / fy
        let vx = xh * z, vy = yh * z
        let facingAway = nx * vx + ny * vy + nz * z .> zero
        nx.replace(with: -nx, where: facingAway)
        ny.replace(with: -ny, where: facingAway)
        nz.replace(with: -nz, where: facingAway)
        let r0 = Self.sqrt2 * zf / meanFocal
        // Swift's max(a, b) is b >= a ? b : a, and min(a, b) is b < a ? b : a.
        let floor = V(repeating: 1e-6), absZ = nz.replacing(with: -nz, where: nz .< zero)   // |nz| (−0 stays −0; it compares as 0)
        let tilt = absZ.replacing(with: floor, where: floor .>= absZ)
        let twice = 2 * r0, slanted = r0 / tilt
        let radius = twice.replacing(with: slanted, where: slanted .< twice)
        let rayScale = (xh * xh + yh * yh + 1).squareRoot()
        return Lanes(valid: valid, nx: nx, ny: ny, nz: nz, vx: vx, vy: vy, vz: z, radius: radius,
                     rx: xh / rayScale, ry: yh / rayScale, rz: 1 / rayScale, rayScale: rayScale)
    }

    /// Per pixel, ElasticFusion's confidence weight before the velocity factor:
    /// exp(−(r / maxRadialDistance)² / 2σ²), r the distance from the principal point in pixels at
    /// 640 wide. It depends only on where the pixel is, so it is made once per image size.
    func radialWeights(maxRadialDistance: Float, twoSigmaSquared: Float) -> [Float] {
        let w = width, h = height
        let radialScale = 1 / (maxRadialDistance * Float(w) / 640)
        var weights = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let xf = Float(x), yf = Float(y)
                let rho = ((xf - cx) * (xf - cx) + (yf - cy) * (yf - cy)).squareRoot() * radialScale
                weights[y * w + x] = Foundation.exp(-(rho * rho) / twoSigmaSquared)
            }
        }
        return weights
    }
}
