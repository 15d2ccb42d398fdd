import Foundation
import Geometry
import Imaging
import Semantics

/// TUM RGB-D folders: `rgb.txt` and `depth.txt` (lines `timestamp path`), optional
/// `groundtruth.txt` (`timestamp tx ty tz qx qy qz qw`). Each depth image is paired with the
/// nearest colour image (within `maxColorGap`); its pose is interpolated from the ground truth
/// (linear translation, slerp rotation) when bracketed within `maxPoseGap`. Depth is 5000 per
/// metre. Intrinsics default to freiburg1's; an `intrinsics.txt`/`calibration.txt` with
/// `fx fy cx cy` in the folder, or `--intrinsics`, overrides them.
public final class TUMReader: FrameSource {
    public struct Association: Equatable, Sendable {
        public var timestamp: Double
        public var rgb: String
        public var depth: String
        public var pose: RigidTransform?
    }

    public let folder: URL
    public let name: String
    public var layout: String { "tum" }
    public let intrinsics: Intrinsics
    public let capabilities: SequenceCapabilities
    public var classSet: ClassSet? { nil }
    public let associations: [Association]
    /// What the reader assumed (intrinsics, depth scale), for the user to see.
    public private(set) var assumptions: [String] = []
    private let options: ReaderOptions
    private let depthScale: Double
    public var frameCount: Int { associations.count }

    public static let freiburg1 = (fx: 517.3, fy: 516.5, cx: 318.6, cy: 255.3)

    public static func detect(_ folder: URL) -> Bool {
        ReaderSupport.fileExists(folder.appendingPathComponent("rgb.txt")) && ReaderSupport.fileExists(folder.appendingPathComponent("depth.txt"))
    }

    public init(folder: URL, options: ReaderOptions = ReaderOptions(), maxColorGap: Double = 0.02, maxPoseGap: Double = 0.05) throws {
        self.folder = folder
        self.options = options
        name = folder.standardizedFileURL.lastPathComponent
        depthScale = try ReaderSupport.depthScale(options, default: 5000)
        if options.depthScale == nil { assumptions.append("depth scale: assuming TUM RGB-D's 5000 units per metre") }
        let rgb = try Self.list(folder.appendingPathComponent("rgb.txt"))
        let depth = try Self.list(folder.appendingPathComponent("depth.txt"))
        guard !rgb.isEmpty, !depth.isEmpty else {
            throw SequenceError.malformed(path: folder.appendingPathComponent(rgb.isEmpty ? "rgb.txt" : "depth.txt").path, line: nil, reason: "no entries")
        }
        let gtURL = folder.appendingPathComponent("groundtruth.txt")
        let groundTruth = ReaderSupport.fileExists(gtURL) ? try TUMTrajectory.read(gtURL).sorted { $0.timestamp < $1.timestamp } : []
        let rgbSorted = rgb.sorted { $0.0 < $1.0 }
        var result: [Association] = []
        // One-to-one like TUM's associate.py: a colour image pairs with at most one depth image
        // (the first in time), so no frame is fused twice.
        var usedColor = Set<Int>()
        for (t, path) in depth.sorted(by: { $0.0 < $1.0 }) {
            guard let nearest = Self.nearest(t, in: rgbSorted.map(\.0)), abs(rgbSorted[nearest].0 - t) <= maxColorGap,
                  usedColor.insert(nearest).inserted else { continue }
            let stamp = rgbSorted[nearest].0
            let pose = groundTruth.isEmpty ? nil : Self.interpolate(groundTruth, at: stamp, maxGap: maxPoseGap)
            result.append(Association(timestamp: stamp, rgb: rgbSorted[nearest].1, depth: path, pose: pose))
        }
        guard !result.isEmpty else {
            throw SequenceError.malformed(path: folder.path, line: nil, reason: "no depth image has a colour image within \(maxColorGap) s")
        }
        associations = result
        let firstColor = try ReaderSupport.image { try ImageFile.readColor(folder.appendingPathComponent(result[0].rgb)) }
        var k: Intrinsics
        if let override = options.intrinsics {
            k = override.intrinsics(width: firstColor.width, height: firstColor.height)
        } else if let file = ["intrinsics.txt", "calibration.txt"].map({ folder.appendingPathComponent($0) }).first(where: ReaderSupport.fileExists) {
            k = try IntrinsicsArgument.parse(file.path).intrinsics(width: firstColor.width, height: firstColor.height)
        } else {
            let f = Self.freiburg1
            k = Intrinsics(fx: f.fx, fy: f.fy, cx: f.cx, cy: f.cy, width: 640, height: 480).scaled(toWidth: firstColor.width, height: firstColor.height)
            assumptions.append("no intrinsics.txt: assuming TUM freiburg1 calibration (517.3, 516.5, 318.6, 255.3); pass --intrinsics for other cameras")
        }
        intrinsics = try ReaderSupport.validated(k, source: folder.path)
        // Poses are only "available" when every associated frame has one.
        // The TUM RGB-D benchmark's depth is registered to its colour by the Kinect's driver.
        capabilities = SequenceCapabilities(hasDepth: true, hasPoses: !groundTruth.isEmpty && result.allSatisfy { $0.pose != nil },
                                            colorRegisteredToDepth: true)
    }

    public func frame(at index: Int) throws -> Frame {
        guard index >= 0, index < associations.count else { throw SequenceError.frameOutOfRange(index: index, count: associations.count) }
        let a = associations[index]
        let colorURL = folder.appendingPathComponent(a.rgb)
        let color = try ReaderSupport.color(colorURL, frame: index, intrinsics: intrinsics)
        let depth = try ReaderSupport.depth(folder.appendingPathComponent(a.depth), frame: index, scale: depthScale,
                                            intrinsics: intrinsics, options: options)
        return Frame(index: index, timestamp: a.timestamp, color: color, depth: depth, worldFromCamera: a.pose, source: colorURL.path)
    }

    /// `timestamp path` lines. A timestamp listed twice is an error naming both lines: the
    /// same image would otherwise be fused twice (or two images claim one time).
    static func list(_ url: URL) throws -> [(Double, String)] {
        let text = try ReaderSupport.text(url)
        var out: [(Double, String)] = []
        var seen: [Double: Int] = [:]
        for (k, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let parts = trimmed.split(whereSeparator: \.isWhitespace)
            guard parts.count >= 2, let t = Double(parts[0]), t.isFinite else {
                throw SequenceError.malformed(path: url.path, line: k + 1, reason: "expected 'timestamp path'")
            }
            if let earlier = seen[t] {
                throw SequenceError.malformed(path: url.path, line: k + 1, reason: "timestamp \(parts[0]) is listed twice (also on line \(earlier))")
            }
            seen[t] = k + 1
            out.append((t, String(parts[1])))
        }
        return out
    }

    static func nearest(_ t: Double, in sorted: [Double]) -> Int? {
        guard !sorted.isEmpty else { return nil }
        var lo = 0, hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid] < t { lo = mid + 1 } else { hi = mid }
        }
        if lo == 0 { return 0 }
        if lo == sorted.count { return sorted.count - 1 }
        return abs(sorted[lo] - t) < abs(sorted[lo - 1] - t) ? lo : lo - 1
    }

    /// Pose at `t`: interpolated between the bracketing ground-truth poses when both are within
    /// `maxGap`, else nil.
    static func interpolate(_ poses: [StampedPose], at t: Double, maxGap: Double) -> RigidTransform? {
        let stamps = poses.map(\.timestamp)
        guard let i = nearest(t, in: stamps) else { return nil }
        if abs(stamps[i] - t) < 1e-9 { return poses[i].pose }
        let (a, b) = stamps[i] <= t ? (i, i + 1) : (i - 1, i)
        guard a >= 0, b < poses.count, t - stamps[a] <= maxGap, stamps[b] - t <= maxGap else { return nil }
        let s = (t - stamps[a]) / (stamps[b] - stamps[a])
        let pa = poses[a].pose, pb = poses[b].pose
        let translation = pa.translation + (pb.translation - pa.translation) * s
        let delta = (pa.rotation.transposed * pb.rotation).log
        let rotation = pa.rotation * Matrix3.exp(delta * s)
        return RigidTransform(rotation: rotation, translation: translation)
    }
}
