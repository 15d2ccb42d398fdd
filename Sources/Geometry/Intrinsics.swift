/// Pinhole camera intrinsics in pixels, with the image size they belong to.
///
/// `fy` may be negative: ICL-NUIM's renderer uses a y-up image convention and its published
/// calibration is (481.2, −480, 319.5, 239.5). Projection and back-projection simply use the
/// signed value, so such data lands in the right place without special cases. Which values
/// are accepted from users and files (a negative fx is not) is `InputLimits.intrinsics`.
public struct Intrinsics: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var fx: Double
    public var fy: Double
    public var cx: Double
    public var cy: Double
    public var width: Int
    public var height: Int

    public init(fx: Double, fy: Double, cx: Double, cy: Double, width: Int, height: Int) {
        self.fx = fx; self.fy = fy; self.cx = cx; self.cy = cy
        self.width = width; self.height = height
    }

    /// Mean absolute focal length, the f̄ of ElasticFusion's surfel radius.
    public var meanFocal: Double { (abs(fx) + abs(fy)) / 2 }

    /// Intrinsics for the same camera at another resolution (pixel-centre convention).
    public func scaled(toWidth newWidth: Int, height newHeight: Int) -> Intrinsics {
        let sx = Double(newWidth) / Double(width)
        let sy = Double(newHeight) / Double(height)
        return Intrinsics(fx: fx * sx, fy: fy * sy,
                          cx: (cx + 0.5) * sx - 0.5, cy: (cy + 0.5) * sy - 0.5,
                          width: newWidth, height: newHeight)
    }

    /// Camera-frame point at pixel (u, v) with depth z (metres along the optical axis).
    @inlinable
    public func backProject(u: Float, v: Float, depth z: Float) -> SIMD3<Float> {
        SIMD3((u - Float(cx)) * z / Float(fx), (v - Float(cy)) * z / Float(fy), z)
    }

    /// Continuous pixel coordinates of a camera-frame point (z must be positive).
    @inlinable
    public func project(_ p: SIMD3<Float>) -> SIMD2<Float> {
        SIMD2(Float(fx) * p.x / p.z + Float(cx), Float(fy) * p.y / p.z + Float(cy))
    }

    public var description: String {
        "fx=\(fx) fy=\(fy) cx=\(cx) cy=\(cy) (\(width)x\(height))"
    }
}
