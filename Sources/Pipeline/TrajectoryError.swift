import EigenBridge
import Foundation
import Geometry

/// Absolute trajectory error: camera positions compared after the least-squares rigid
/// alignment (Umeyama, no scale) of the estimate onto the ground truth, frames paired by index.
public struct AbsoluteTrajectoryError: Sendable, CustomStringConvertible {
    public var rmse: Double
    public var median: Double
    public var max: Double
    public var count: Int

    public init?(estimated: [RigidTransform], groundTruth: [RigidTransform]) {
        let n = Swift.min(estimated.count, groundTruth.count)
        guard n >= 3 else { return nil }
        var source = [Double](), target = [Double]()
        for i in 0..<n {
            let a = estimated[i].translation, b = groundTruth[i].translation
            source += [a.x, a.y, a.z]; target += [b.x, b.y, b.z]
        }
        var m = [Double](repeating: 0, count: 16)
        let aligned: RigidTransform
        if eb_umeyama_rigid(Int32(n), source, target, &m) == 0 {
            aligned = RigidTransform(matrix4RowMajor: m)
        } else {
            aligned = .identity     // degenerate (e.g. all positions equal): compare unaligned
        }
        var errors = (0..<n).map { (aligned * estimated[$0].translation - groundTruth[$0].translation).length }
        rmse = (errors.map { $0 * $0 }.reduce(0, +) / Double(n)).squareRoot()
        errors.sort()
        // The usual median (mean of the middle two for an even count), as evo and numpy report it.
        median = n % 2 == 1 ? errors[n / 2] : (errors[n / 2 - 1] + errors[n / 2]) / 2
        max = errors[n - 1]
        count = n
    }

    public var description: String {
        String(format: "ATE RMSE %.1f mm, median %.1f mm, max %.1f mm over %d frames", rmse * 1000, median * 1000, max * 1000, count)
    }
}
