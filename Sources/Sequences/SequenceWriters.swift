import Foundation
import Geometry
import Imaging
import Semantics

/// A writable sequence layout, for `semfuse convert`.
public enum SequenceFormat: String, CaseIterable, Sendable {
    /// The project's own folders (sequence.json); the only layout holding labels and probabilities.
    case semfuse
    /// TUM RGB-D folders (rgb.txt, depth.txt at 5000 per metre, groundtruth.txt, intrinsics.txt).
    case tum
    /// 7-Scenes folders (frame-NNNNNN.color.png / .depth.png in mm / .pose.txt, camera-intrinsics.txt).
    case sevenScenes = "7scenes"
    /// ElasticFusion .klg logs (JPEG colour, zlib depth in mm), with .intrinsics.txt and
    /// .groundtruth.txt sidecars.
    case klg

    /// Whether the layout stores per-pixel labels and class probabilities.
    public var holdsSemantics: Bool { self == .semfuse }

    /// The layout implied by an output path: `.klg` is a log, anything else a folder (semfuse
    /// unless given).
    public static func implied(by url: URL) -> SequenceFormat? {
        url.pathExtension.lowercased() == "klg" ? .klg : nil
    }
}

/// Writes frames one at a time into some layout; `finish` makes the result complete (manifests,
/// trajectories and frame counts are written last, so an interrupted write never looks complete).
public protocol SequenceWriting: AnyObject {
    func append(_ frame: Frame) throws
    func complete() throws
}

extension SemfuseSequenceWriter: SequenceWriting {
    public func complete() throws { try finish() }
}

public enum SequenceWriters {
    /// A writer for `format` at `output`. `depthScale` is used where the layout lets the writer
    /// choose (semfuse); the others have their layout's fixed unit. `colorRegisteredToDepth` is
    /// recorded where the layout can say it (semfuse); the others imply it
    /// (`layoutImpliesRegisteredColor`). So is `depthRendered` (the others imply measured depth).
    public static func make(_ format: SequenceFormat, output: URL, name: String, intrinsics: Intrinsics,
                            classSet: ClassSet?, depthScale: Double = 1000, colorRegisteredToDepth: Bool? = nil,
                            depthRendered: Bool? = nil) throws -> SequenceWriting {
        switch format {
        case .semfuse:
            return try SemfuseSequenceWriter(folder: output, name: name, intrinsics: intrinsics, depthScale: depthScale, classSet: classSet,
                                             colorRegisteredToDepth: colorRegisteredToDepth, depthRendered: depthRendered)
        case .tum: return try TUMSequenceWriter(folder: output, intrinsics: intrinsics)
        case .sevenScenes: return try SevenScenesWriter(folder: output, intrinsics: intrinsics)
        case .klg: return try KLGWriter(file: output, intrinsics: intrinsics)
        }
    }

    /// What a reader of `format` will take `SequenceCapabilities.colorRegisteredToDepth` to be,
    /// or nil when the layout records it.
    public static func layoutImpliesRegisteredColor(_ format: SequenceFormat) -> Bool? {
        switch format {
        case .semfuse: return nil
        case .tum, .klg: return true
        case .sevenScenes: return false
        }
    }

    @discardableResult
    static func write<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ImagingError {
            if case .writeFailed(let path, let reason) = error { throw SequenceError.writeFailed(path: path, reason: reason) }
            throw SequenceError.image(error)
        }
    }

    /// The frame's depth, checked to be there and to have the sequence's size with its colour;
    /// `target` names the layout in the error ("a TUM folder").
    static func checkedDepth(_ frame: Frame, _ k: Intrinsics, output: String, target: String) throws -> DepthImage {
        guard let depth = frame.depth else {
            throw SequenceError.writeFailed(path: output, reason: "frame \(frame.index) (\(frame.source)) has no depth; \(target) needs depth in every frame")
        }
        try checkSize(frame, k, output: output)
        return depth
    }

    static func checkSize(_ frame: Frame, _ k: Intrinsics, output: String) throws {
        let sizes = [(frame.color.width, frame.color.height)] + (frame.depth.map { [($0.width, $0.height)] } ?? [])
        for (w, h) in sizes where w != k.width || h != k.height {
            throw SequenceError.writeFailed(path: output, reason: "frame \(frame.index) (\(frame.source)) is \(w)x\(h), the sequence is \(k.width)x\(k.height)")
        }
    }

    /// Depth in metres as integer units (0 = missing; beyond 65534 units also missing: a 16-bit
    /// image cannot hold it, and clamping would invent a surface).
    static func quantise(_ depth: DepthImage, scale: Double) -> [UInt16] {
        let s = Float(scale)
        return depth.pixels.map { z in
            guard z.isFinite, z > 0 else { return 0 }
            let v = (z * s).rounded()
            return v >= 1 && v <= 65534 ? UInt16(v) : 0
        }
    }

    static func writeText(_ text: String, to url: URL) throws {
        try write { try FileData.writeAtomically(Data(text.utf8), to: url) }
    }

    /// `fx fy cx cy width height`, the one-line form `--intrinsics` and the readers' sidecars accept.
    static func intrinsicsLine(_ k: Intrinsics) -> String {
        "\(k.fx) \(k.fy) \(k.cx) \(k.cy) \(k.width) \(k.height)\n"
    }
}

/// ElasticFusion `.klg` logs, as its loggers write them: frame count, then per frame the µs
/// timestamp, the sizes, zlib depth (uint16 mm; `Z_BEST_SPEED`) and JPEG colour (quality 90).
///
/// Depth is stored raw whenever zlib does not make it smaller: readers (ElasticFusion's too)
/// take a block of exactly width x height x 2 bytes as raw, so a compressed block of that size
/// would be misread; storing such frames raw avoids the ambiguity. The log is written to a
/// temporary file beside the output and renamed when `complete` has patched the frame count;
/// `<name>.intrinsics.txt` and (when every frame has a pose) `<name>.groundtruth.txt` are written
/// beside it, which `KLGReader` reads back.
public final class KLGWriter: SequenceWriting {
    public let file: URL
    public let intrinsics: Intrinsics
    /// JPEG quality of the colour; nil stores raw RGB.
    public let jpegQuality: Int?
    private let temporary: URL
    private let handle: FileHandle
    private var count: Int32 = 0
    private var poses: [StampedPose] = []
    private var allHavePoses = true
    private var finished = false

    public init(file: URL, intrinsics: Intrinsics, jpegQuality: Int? = 90) throws {
        self.file = file
        self.intrinsics = intrinsics
        self.jpegQuality = jpegQuality
        let target = try SequenceWriters.write { try FileData.checkOutputFile(file) }
        try SequenceWriters.write { try FileData.prepareFolder(file.deletingLastPathComponent(), for: file.path) }
        temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).partial-\(getpid())")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data([0, 0, 0, 0])),
              let handle = try? FileHandle(forWritingTo: temporary) else {
            throw SequenceError.writeFailed(path: file.path, reason: "cannot create \(temporary.path)")
        }
        self.handle = handle
        // Frames follow the 4-byte count placeholder, which `complete` fills in. Thrown after
        // every property is set, so `deinit` closes and removes the temporary file.
        do { try handle.seekToEnd() } catch {
            throw SequenceError.writeFailed(path: file.path, reason: "cannot append to \(temporary.path): \(error.localizedDescription)")
        }
    }

    deinit {
        if !finished {
            try? handle.close()
            try? FileManager.default.removeItem(at: temporary)
        }
    }

    /// The bytes of one frame record.
    public static func record(_ frame: Frame, intrinsics k: Intrinsics, jpegQuality: Int?, path: String) throws -> [UInt8] {
        let depth = try SequenceWriters.checkedDepth(frame, k, output: path, target: "a .klg log")
        guard frame.timestamp.isFinite, abs(frame.timestamp) < 9e12 else {
            throw SequenceError.writeFailed(path: path, reason: "frame \(frame.index) has timestamp \(frame.timestamp), not storable in microseconds")
        }
        var raw: [UInt8] = []
        raw.reserveCapacity(k.width * k.height * 2)
        for v in SequenceWriters.quantise(depth, scale: 1000) { raw.appendLittleEndian(v) }
        let compressed = Zlib.compress(raw, level: 1)
        let depthBlock = compressed.flatMap { $0.count < raw.count ? $0 : nil } ?? raw
        let colorBlock: [UInt8]
        if let jpegQuality {
            colorBlock = [UInt8](try JPEGCodec.encode(frame.color, quality: jpegQuality, path: path))
        } else {
            colorBlock = frame.color.pixels.flatMap { [$0.r, $0.g, $0.b] }
        }
        var out: [UInt8] = []
        out.reserveCapacity(16 + depthBlock.count + colorBlock.count)
        out.appendLittleEndian(Int64((frame.timestamp * 1e6).rounded()))
        out.appendLittleEndian(Int32(depthBlock.count))
        out.appendLittleEndian(Int32(colorBlock.count))
        out += depthBlock
        out += colorBlock
        return out
    }

    public func append(_ frame: Frame) throws {
        guard count < Int32.max else { throw SequenceError.writeFailed(path: file.path, reason: "a .klg log holds at most \(Int32.max) frames") }
        let bytes = try SequenceWriters.write { try Self.record(frame, intrinsics: intrinsics, jpegQuality: jpegQuality, path: file.path) }
        do { try handle.write(contentsOf: Data(bytes)) } catch {
            throw SequenceError.writeFailed(path: file.path, reason: error.localizedDescription)
        }
        count += 1
        if let pose = frame.worldFromCamera { poses.append(StampedPose(timestamp: frame.timestamp, pose: pose)) } else { allHavePoses = false }
    }

    public func complete() throws {
        guard count > 0 else { throw SequenceError.writeFailed(path: file.path, reason: "no frames to write") }
        var header: [UInt8] = []
        header.appendLittleEndian(count)
        do {
            try handle.seek(toOffset: 0)
            try handle.write(contentsOf: Data(header))
            try handle.synchronize()
            try handle.close()
        } catch {
            throw SequenceError.writeFailed(path: file.path, reason: error.localizedDescription)
        }
        try SequenceWriters.writeText(SequenceWriters.intrinsicsLine(intrinsics), to: KLGReader.sidecar(of: file, "intrinsics.txt"))
        if allHavePoses && !poses.isEmpty {
            try SequenceWriters.write {
                try TUMTrajectory.write(poses, to: KLGReader.sidecar(of: file, "groundtruth.txt"),
                                        comment: "ground truth of \(file.lastPathComponent): timestamp tx ty tz qx qy qz qw (camera-to-world)")
            }
        }
        let target = try SequenceWriters.write { try FileData.checkOutputFile(file) }
        guard rename(temporary.path, target.path) == 0 else {
            throw SequenceError.writeFailed(path: file.path, reason: String(cString: strerror(errno)))
        }
        finished = true
    }
}

/// TUM RGB-D folders: `rgb/`, `depth/` (16-bit PNG, 5000 per metre), `rgb.txt`, `depth.txt`,
/// `groundtruth.txt` (when every frame has a pose) and `intrinsics.txt`, which `TUMReader` reads.
public final class TUMSequenceWriter: SequenceWriting {
    public let folder: URL
    public let intrinsics: Intrinsics
    private var rgb: [String] = [], depth: [String] = []
    private var poses: [StampedPose] = []
    private var allHavePoses = true
    private var lastTimestamp = -Double.infinity

    public init(folder: URL, intrinsics: Intrinsics) throws {
        self.folder = folder
        self.intrinsics = intrinsics
        try SequenceWriters.write { try FileData.prepareFolder(folder) }
    }

    public func append(_ frame: Frame) throws {
        let depthImage = try SequenceWriters.checkedDepth(frame, intrinsics, output: folder.path, target: "a TUM folder")
        // TUM pairs colour and depth by timestamp: times must increase or frames would be
        // paired with the wrong image (or merged).
        guard frame.timestamp.isFinite, frame.timestamp > lastTimestamp else {
            throw SequenceError.writeFailed(path: folder.path, reason: "frame \(frame.index) has timestamp \(frame.timestamp), not after the previous frame's \(lastTimestamp); TUM folders pair images by increasing timestamps")
        }
        lastTimestamp = frame.timestamp
        let stamp = String(format: "%.6f", frame.timestamp)
        let n = rgb.count
        let colorPath = String(format: "rgb/%06d.png", n), depthPath = String(format: "depth/%06d.png", n)
        try SequenceWriters.write { try PNGCodec.writeRGB(frame.color, to: folder.appendingPathComponent(colorPath)) }
        let units = Image(width: depthImage.width, height: depthImage.height, pixels: SequenceWriters.quantise(depthImage, scale: 5000))
        try SequenceWriters.write { try PNGCodec.writeGray16(units, to: folder.appendingPathComponent(depthPath)) }
        rgb.append("\(stamp) \(colorPath)")
        depth.append("\(stamp) \(depthPath)")
        if let pose = frame.worldFromCamera { poses.append(StampedPose(timestamp: frame.timestamp, pose: pose)) } else { allHavePoses = false }
    }

    public func complete() throws {
        guard !rgb.isEmpty else { throw SequenceError.writeFailed(path: folder.path, reason: "no frames to write") }
        try SequenceWriters.writeText(SequenceWriters.intrinsicsLine(intrinsics), to: folder.appendingPathComponent("intrinsics.txt"))
        if allHavePoses {
            try SequenceWriters.write {
                try TUMTrajectory.write(poses, to: folder.appendingPathComponent("groundtruth.txt"), comment: "timestamp tx ty tz qx qy qz qw")
            }
        }
        try SequenceWriters.writeText("# depth maps (5000 per metre)\n" + depth.joined(separator: "\n") + "\n", to: folder.appendingPathComponent("depth.txt"))
        // rgb.txt last: with depth.txt it marks the folder as a TUM sequence.
        try SequenceWriters.writeText("# color images\n" + rgb.joined(separator: "\n") + "\n", to: folder.appendingPathComponent("rgb.txt"))
    }
}

/// 7-Scenes folders: `frame-NNNNNN.color.png`, `frame-NNNNNN.depth.png` (uint16 mm, 0 = missing),
/// `frame-NNNNNN.pose.txt` (4x4 camera-to-world) and `camera-intrinsics.txt` (3x3). Timestamps are
/// not stored: the layout's frame numbers are its timestamps.
public final class SevenScenesWriter: SequenceWriting {
    public let folder: URL
    public let intrinsics: Intrinsics
    private var count = 0

    public init(folder: URL, intrinsics: Intrinsics) throws {
        self.folder = folder
        self.intrinsics = intrinsics
        try SequenceWriters.write { try FileData.prepareFolder(folder) }
    }

    public func append(_ frame: Frame) throws {
        let depthImage = try SequenceWriters.checkedDepth(frame, intrinsics, output: folder.path, target: "a 7-Scenes folder")
        let stem = String(format: "frame-%06d", count)
        try SequenceWriters.write { try PNGCodec.writeRGB(frame.color, to: folder.appendingPathComponent("\(stem).color.png")) }
        let units = Image(width: depthImage.width, height: depthImage.height, pixels: SequenceWriters.quantise(depthImage, scale: 1000))
        try SequenceWriters.write { try PNGCodec.writeGray16(units, to: folder.appendingPathComponent("\(stem).depth.png")) }
        // Poses are per frame: a frame without one (a ScanNet -inf pose) gets no pose file, which
        // the reader reports as that frame's missing ground truth.
        if let pose = frame.worldFromCamera {
            let m = pose.matrix4RowMajor
            var text = ""
            for r in 0..<4 { text += (0..<4).map { String(format: "%.9g", m[4 * r + $0]) }.joined(separator: " ") + "\n" }
            try SequenceWriters.writeText(text, to: folder.appendingPathComponent("\(stem).pose.txt"))
        }
        count += 1
    }

    public func complete() throws {
        guard count > 0 else { throw SequenceError.writeFailed(path: folder.path, reason: "no frames to write") }
        let k = intrinsics
        try SequenceWriters.writeText("\(k.fx) 0 \(k.cx)\n0 \(k.fy) \(k.cy)\n0 0 1\n", to: folder.appendingPathComponent("camera-intrinsics.txt"))
    }
}
