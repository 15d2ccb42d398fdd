import EigenBridge
import Geometry

/// The rigid transform between two sets of matched 3D points, robust to wrong matches: RANSAC
/// over minimal samples of three matches (each fitted by Umeyama's least squares), the largest
/// consensus refitted on all its inliers.
public enum RigidRANSAC {
    public struct Parameters: Sendable, Equatable {
        public var iterations = 500
        /// A match is an inlier when the transformed point lands this close (metres).
        public var inlierDistance: Float = 0.03
        /// Fewer inliers than this is no registration.
        public var minimumInliers = 15
        /// Sample points closer than this to each other make a degenerate (ill-conditioned) fit.
        public var minimumSpread: Float = 0.05
        public var seed: UInt64 = 0x5A4C_5AC0
        public init() {}
    }

    public struct Result: Sendable {
        /// Maps `source` points onto `target` points.
        public var targetFromSource: RigidTransform
        public var inliers: Int
        /// Root-mean-square distance of the inliers after the refit (metres).
        public var rmse: Double
    }

    /// Least-squares rigid fit of `source[i]` onto `target[i]` (nil when degenerate).
    public static func fit(_ source: [SIMD3<Float>], _ target: [SIMD3<Float>]) -> RigidTransform? {
        guard source.count >= 3, source.count == target.count else { return nil }
        var a: [Double] = [], b: [Double] = []
        a.reserveCapacity(3 * source.count); b.reserveCapacity(3 * source.count)
        for i in source.indices {
            a += [Double(source[i].x), Double(source[i].y), Double(source[i].z)]
            b += [Double(target[i].x), Double(target[i].y), Double(target[i].z)]
        }
        var m = [Double](repeating: 0, count: 16)
        guard eb_umeyama_rigid(Int32(source.count), a, b, &m) == 0 else { return nil }
        let t = RigidTransform(matrix4RowMajor: m)
        return t.isValid ? t : nil
    }

    public static func estimate(source: [SIMD3<Float>], target: [SIMD3<Float>], parameters: Parameters = Parameters()) -> Result? {
        let n = source.count
        guard n >= max(3, parameters.minimumInliers), n == target.count else { return nil }
        var random = SplitMix64(seed: parameters.seed)
        let limit2 = parameters.inlierDistance * parameters.inlierDistance
        func inliers(of t: RigidTransform) -> [Int] {
            let f = t.float
            return (0..<n).filter { i in
                let d = f.apply(source[i]) - target[i]
                return (d * d).sum() <= limit2
            }
        }
        func spread(_ p: SIMD3<Float>, _ q: SIMD3<Float>) -> Bool {
            let d = p - q
            return (d * d).sum() >= parameters.minimumSpread * parameters.minimumSpread
        }
        var bestInliers: [Int] = []
        for _ in 0..<parameters.iterations {
            let i = Int.random(in: 0..<n, using: &random), j = Int.random(in: 0..<n, using: &random), k = Int.random(in: 0..<n, using: &random)
            guard i != j, j != k, i != k else { continue }
            guard spread(source[i], source[j]), spread(source[j], source[k]), spread(source[i], source[k]) else { continue }
            // A rigid motion keeps distances: reject samples whose matches cannot all be right.
            func keeps(_ a: Int, _ b: Int) -> Bool {
                let ds = source[a] - source[b], dt = target[a] - target[b]
                return abs((ds * ds).sum().squareRoot() - (dt * dt).sum().squareRoot()) <= 2 * parameters.inlierDistance
            }
            guard keeps(i, j), keeps(j, k), keeps(i, k) else { continue }
            guard let t = fit([source[i], source[j], source[k]], [target[i], target[j], target[k]]) else { continue }
            let found = inliers(of: t)
            if found.count > bestInliers.count { bestInliers = found }
        }
        guard bestInliers.count >= parameters.minimumInliers else { return nil }
        // Refit on the consensus, then once more on the refit's own inliers.
        guard var t = fit(bestInliers.map { source[$0] }, bestInliers.map { target[$0] }) else { return nil }
        let refined = inliers(of: t)
        if refined.count >= parameters.minimumInliers, let again = fit(refined.map { source[$0] }, refined.map { target[$0] }) { t = again }
        let final = inliers(of: t)
        guard final.count >= parameters.minimumInliers else { return nil }
        let f = t.float
        let squared = final.map { i -> Float in let d = f.apply(source[i]) - target[i]; return (d * d).sum() }
        return Result(targetFromSource: t, inliers: final.count, rmse: Double(squared.reduce(0, +) / Float(final.count)).squareRoot())
    }
}
