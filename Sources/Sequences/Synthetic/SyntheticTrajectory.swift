import Foundation
import Geometry

/// A smooth handheld-like camera path through the synthetic room: a slow loop at about eye
/// height looking across the room, with low-frequency wobble in position and roll.
///
/// At 30 frames/s the default loop takes 30 s: about 0.25 m/s and 12 degrees/s, like a person
/// walking slowly while filming.
public struct SyntheticTrajectory: Sendable {
    public var framesPerLoop: Int = 900
    public var framesPerSecond: Double = 30
    /// Fraction of a loop where frame 0 starts.
    public var phase: Double = 0
    /// Wobble amplitudes.
    public var positionWobble: Double = 0.015
    public var rollWobbleDegrees: Double = 1.5

    public init(framesPerLoop: Int = 900, framesPerSecond: Double = 30, phase: Double = 0) {
        self.framesPerLoop = framesPerLoop; self.framesPerSecond = framesPerSecond; self.phase = phase
    }

    /// Camera-to-world pose of frame `i` (camera x right, y down, z forward).
    public func pose(_ i: Int) -> RigidTransform {
        let t = Double(i) / framesPerSecond
        let theta = 2 * .pi * (Double(i) / Double(framesPerLoop) + phase)
        var eye = SIMD3(1.3 * cos(theta), 0.9 * sin(theta), 1.45 + 0.04 * sin(2.3 * theta))
        let twoPiT: Double = 2 * .pi * t
        let wobble = SIMD3<Double>(sin(0.7 * twoPiT), sin(0.9 * twoPiT + 1), 0.5 * sin(0.6 * twoPiT + 2))
        eye += positionWobble * wobble
        let target = SIMD3(-1.0 * cos(theta + 0.5), -0.9 * sin(theta + 0.5), 0.9 + 0.1 * sin(1.7 * theta))
        let forward = (target - eye).normalized
        var right = forward.cross(SIMD3(0, 0, 1)).normalized
        var down = forward.cross(right)
        let roll: Double = rollWobbleDegrees * .pi / 180 * sin(0.5 * twoPiT)
        (right, down) = (right * cos(roll) + down * sin(roll), down * cos(roll) - right * sin(roll))
        let rotation = Matrix3(rows: SIMD3(right.x, down.x, forward.x), SIMD3(right.y, down.y, forward.y), SIMD3(right.z, down.z, forward.z))
        return RigidTransform(rotation: rotation, translation: eye)
    }
}
