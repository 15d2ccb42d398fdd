import Foundation
import Geometry
import Imaging
import Semantics

/// Writes frames into the project's own sequence format as they come, then the manifest and
/// poses last (atomically), so an interrupted write never looks like a complete sequence.
public final class SemfuseSequenceWriter {
    public let folder: URL
    private var manifest: SequenceManifest
    private var poses: [StampedPose] = []
    private var allHavePoses = true
    private let classSet: ClassSet?
    private let jpegQuality: Int?

    /// - Parameters:
    ///   - jpegQuality: store colour as JPEG of this quality (compact, lossy) instead of PNG.
    ///   - colorRegisteredToDepth: recorded in the manifest (`color_registered_to_depth`) so
    ///     tracking knows whether it may compare colours; nil leaves it unstated.
    ///   - depthRendered: recorded as `depth_rendered` (how tracking weights its points); nil
    ///     leaves it unstated.
    public init(folder: URL, name: String, intrinsics: Intrinsics, depthScale: Double = 5000, classSet: ClassSet?,
                jpegQuality: Int? = nil, colorRegisteredToDepth: Bool? = nil, depthRendered: Bool? = nil) throws {
        self.folder = folder
        self.classSet = classSet
        self.jpegQuality = jpegQuality
        manifest = SequenceManifest(
            name: name,
            intrinsics: .init(fx: intrinsics.fx, fy: intrinsics.fy, cx: intrinsics.cx, cy: intrinsics.cy,
                              width: intrinsics.width, height: intrinsics.height),
            depthScale: depthScale, classSet: classSet?.name, colorRegisteredToDepth: colorRegisteredToDepth,
            depthRendered: depthRendered, frames: [])
        try write { try FileData.prepareFolder(folder) }
    }

    private func write(_ body: () throws -> Void) throws {
        do { try body() } catch let error as ImagingError {
            if case .writeFailed(let path, let reason) = error { throw SequenceError.writeFailed(path: path, reason: reason) }
            throw SequenceError.image(error)
        }
    }

    /// Writes one frame's images (PNG; depth quantised to `depthScale`, 0 = missing) and, when
    /// present, labels and probabilities ([C, h, w] float16 .npy).
    public func append(_ frame: Frame) throws {
        let k = manifest.frames.count
        let stem = String(format: "%06d", k)
        var entry = SequenceManifest.FrameEntry(timestamp: frame.timestamp, rgb: "rgb/\(stem).\(jpegQuality == nil ? "png" : "jpg")")
        let colorURL = folder.appendingPathComponent(entry.rgb)
        if let jpegQuality {
            try write { try FileData.writeAtomically(JPEGCodec.encode(frame.color, quality: jpegQuality, path: colorURL.path), to: colorURL) }
        } else {
            try write { try PNGCodec.writeRGB(frame.color, to: colorURL) }
        }
        if let depth = frame.depth {
            let scale = Float(manifest.depthScale)
            let quantised = depth.map { z -> UInt16 in
                guard z.isFinite, z > 0 else { return 0 }
                return UInt16(max(0, min(65534, (z * scale).rounded())))
            }
            entry.depth = "depth/\(stem).png"
            try write { try PNGCodec.writeGray16(quantised, to: folder.appendingPathComponent(entry.depth!)) }
        }
        if let labels = frame.labels {
            entry.labels = "labels/\(stem).png"
            try write { try PNGCodec.writeGray8(labels, to: folder.appendingPathComponent(entry.labels!)) }
        }
        if let probabilities = frame.probabilities {
            let (w, h, c) = (probabilities.width, probabilities.height, probabilities.classCount)
            var chw = [Float](repeating: 0, count: c * h * w)
            for p in 0..<(w * h) { for j in 0..<c { chw[j * h * w + p] = probabilities.values[p * c + j] } }
            entry.probabilities = "probabilities/\(stem).npy"
            try write { try NPY.write(NPYArray(shape: [c, h, w], values: chw), to: folder.appendingPathComponent(entry.probabilities!), dtype: .float16) }
        }
        if let pose = frame.worldFromCamera { poses.append(StampedPose(timestamp: frame.timestamp, pose: pose)) } else { allHavePoses = false }
        manifest.frames.append(entry)
    }

    /// Writes `poses.txt` (when every frame had a pose) and `sequence.json`.
    public func finish(notes: [String]? = nil, generator: [String: String]? = nil) throws {
        manifest.notes = notes
        manifest.generator = generator
        if allHavePoses && !poses.isEmpty {
            manifest.poses = "poses.txt"
            try TUMTrajectory.write(poses, to: folder.appendingPathComponent("poses.txt"),
                                    comment: "timestamp tx ty tz qx qy qz qw (camera-to-world)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(manifest) } catch {
            throw SequenceError.writeFailed(path: folder.appendingPathComponent("sequence.json").path, reason: error.localizedDescription)
        }
        try write { try FileData.writeAtomically(data, to: folder.appendingPathComponent("sequence.json")) }
    }
}
