import Foundation
import Geometry
import Imaging

/// A camera pose with its timestamp, as in TUM trajectory files.
public struct StampedPose: Equatable, Sendable {
    public var timestamp: Double
    /// Camera-to-world.
    public var pose: RigidTransform
    public init(timestamp: Double, pose: RigidTransform) { self.timestamp = timestamp; self.pose = pose }
}

/// TUM RGB-D trajectory files: one line `timestamp tx ty tz qx qy qz qw` per pose
/// (camera-to-world), `#` comments allowed. Readable by the usual SLAM evaluation tools.
public enum TUMTrajectory {
    public static func read(_ url: URL) throws -> [StampedPose] {
        try ReaderSupport.numbers(in: url).map { row in
            guard row.values.count == 8 else {
                throw SequenceError.malformed(path: url.path, line: row.line,
                                              reason: "expected 8 values 'timestamp tx ty tz qx qy qz qw', found \(row.values.count)")
            }
            let v = row.values
            return StampedPose(timestamp: v[0], pose: try ReaderSupport.quaternionPose(translation: SIMD3(v[1], v[2], v[3]), quaternion: SIMD4(v[4], v[5], v[6], v[7]),
                                                                                      path: url.path, line: row.line))
        }
    }

    public static func encode(_ poses: [StampedPose], comment: String? = nil) -> String {
        var text = ""
        if let comment {
            for line in comment.split(separator: "\n") { text += "# \(line)\n" }
        }
        for p in poses {
            let t = p.pose.translation, q = p.pose.quaternion
            text += String(format: "%.6f %.7f %.7f %.7f %.9f %.9f %.9f %.9f\n", p.timestamp, t.x, t.y, t.z, q.x, q.y, q.z, q.w)
        }
        return text
    }

    public static func write(_ poses: [StampedPose], to url: URL, comment: String? = nil) throws {
        do {
            try FileData.writeAtomically(Data(encode(poses, comment: comment).utf8), to: url)
        } catch let error as ImagingError {
            if case .writeFailed(_, let reason) = error { throw SequenceError.writeFailed(path: url.path, reason: reason) }
            throw SequenceError.image(error)
        }
    }
}
