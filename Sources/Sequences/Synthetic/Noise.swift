import Foundation

/// Deterministic hashing and noise for the synthetic scene: the same seed always gives the
/// same images, on every machine.
public enum SyntheticNoise {
    /// SplitMix64 finaliser over combined keys.
    @inline(__always)
    public static func hash(_ a: UInt64, _ b: UInt64 = 0, _ c: UInt64 = 0, _ d: UInt64 = 0) -> UInt64 {
        var z = a &* 0x9E3779B97F4A7C15 ^ b &* 0xC2B2AE3D27D4EB4F ^ c &* 0x165667B19E3779F9 ^ d &* 0x27D4EB2F165667C5
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    @inline(__always)
    public static func uniform(_ a: UInt64, _ b: UInt64 = 0, _ c: UInt64 = 0, _ d: UInt64 = 0) -> Double {
        Double(hash(a, b, c, d) >> 11) / Double(1 << 53)
    }

    /// Standard normal (Box-Muller on two hashed uniforms).
    @inline(__always)
    public static func gaussian(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64 = 0) -> Double {
        let u1 = max(1e-12, uniform(a, b, c, d &* 2 &+ 1))
        let u2 = uniform(a, b, c, d &* 2 &+ 2)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    /// Smooth value noise in [0, 1] on a 2D lattice of spacing 1 (bilinear with smoothstep).
    public static func value(_ x: Double, _ y: Double, seed: UInt64) -> Double {
        let x0 = floor(x), y0 = floor(y)
        let fx = x - x0, fy = y - y0
        let sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy)
        let ix = UInt64(bitPattern: Int64(x0)), iy = UInt64(bitPattern: Int64(y0))
        let a = uniform(seed, ix, iy), b = uniform(seed, ix &+ 1, iy)
        let c = uniform(seed, ix, iy &+ 1), d = uniform(seed, ix &+ 1, iy &+ 1)
        return (a * (1 - sx) + b * sx) * (1 - sy) + (c * (1 - sx) + d * sx) * sy
    }

    /// Two octaves of value noise in [0, 1].
    public static func fractal(_ x: Double, _ y: Double, seed: UInt64) -> Double {
        (value(x, y, seed: seed) * 2 + value(x * 2.7, y * 2.7, seed: seed &+ 17)) / 3
    }
}
