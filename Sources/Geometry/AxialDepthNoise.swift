/// How noisy a depth sensor's reading is along the ray, as a function of the depth:
/// σ(z) = base + quadratic · (z − offset)² metres.
///
/// The defaults are Nguyen, Izadi and Lovell's fit to a Kinect v1 (3DIMPVT 2012), which the
/// structured-light sensors of the usual RGB-D datasets (7-Scenes, TUM, NYUv2, ICL-NUIM's
/// simulated noise) follow. The same model serves the synthetic scenes' simulated noise and the
/// tracker's per-correspondence weights, so both assume the same sensor.
public struct AxialDepthNoise: Sendable, Equatable, Hashable {
    /// Noise at the offset depth, metres.
    public var base: Double
    /// Growth with the squared distance from the offset depth, metres per square metre.
    public var quadratic: Double
    /// Depth of the least noise, metres.
    public var offset: Double

    public init(base: Double = 0.0012, quadratic: Double = 0.0019, offset: Double = 0.4) {
        self.base = base; self.quadratic = quadratic; self.offset = offset
    }

    /// Kinect v1 (Nguyen et al. 2012): 1.2 mm at 0.4 m, 1.9 mm at 1 m, 6.1 mm at 2 m, 14 mm at 3 m.
    public static let kinect = AxialDepthNoise()

    /// σ at depth `z`, metres.
    @inlinable
    public func sigma(atDepth z: Double) -> Double {
        base + quadratic * (z - offset) * (z - offset)
    }

    /// Whether every coefficient is finite, the noise positive at every depth, and the offset
    /// inside a sensor's range (what the tracker needs to divide by it).
    public var isUsable: Bool {
        base.isFinite && quadratic.isFinite && offset.isFinite && base > 0 && quadratic >= 0 && offset >= 0 && offset < 100
    }
}
