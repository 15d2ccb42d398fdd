import Imaging

extension ClassSet {
    /// Colours a label image with the class palette; ignore/unknown ids become black.
    public func colorize(_ labels: LabelImage) -> ColorImage {
        labels.map { $0 == ClassSet.ignoreLabel ? RGB8.black : color(of: Int($0)) }
    }
}

/// A perceptual colour ramp for depth previews (turbo-like, piecewise linear).
public enum ColorRamp {
    private static let stops: [(Float, Float, Float)] = [
        (0.19, 0.07, 0.23), (0.16, 0.47, 0.93), (0.10, 0.81, 0.72), (0.60, 0.98, 0.23),
        (0.98, 0.75, 0.17), (0.89, 0.28, 0.05), (0.48, 0.02, 0.01),
    ]

    /// Colour for t in [0, 1].
    public static func color(_ t: Float) -> RGB8 {
        let c = max(0, min(1, t.isFinite ? t : 0)) * Float(stops.count - 1)
        let i = min(stops.count - 2, Int(c))
        let f = c - Float(i)
        let a = stops[i], b = stops[i + 1]
        func ch(_ x: Float, _ y: Float) -> UInt8 { UInt8(max(0, min(255, ((1 - f) * x + f * y) * 255 + 0.5))) }
        return RGB8(ch(a.0, b.0), ch(a.1, b.1), ch(a.2, b.2))
    }

    /// Colour-maps a depth image between `near` and `far` metres; missing depth is black.
    public static func colorize(depth: DepthImage, near: Float, far: Float) -> ColorImage {
        depth.map { z in z > 0 && z.isFinite ? color((z - near) / max(1e-6, far - near)) : .black }
    }
}
