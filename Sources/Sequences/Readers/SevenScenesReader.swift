import Foundation
import Geometry
import Imaging
import Semantics

/// Microsoft 7-Scenes / 3DMatch layout: `frame-NNNNNN.color.{png,jpg}`, `frame-NNNNNN.depth.png`
/// (uint16 millimetres; 0 and 65535 = missing), optional `frame-NNNNNN.pose.txt` (4x4
/// camera-to-world) and `camera-intrinsics.txt` (3x3). Frame numbers may have gaps; timestamps
/// are the frame numbers.
public final class SevenScenesReader: FrameSource {
    public let folder: URL
    public let name: String
    public var layout: String { "7scenes" }
    public let intrinsics: Intrinsics
    public let capabilities: SequenceCapabilities
    public var classSet: ClassSet? { nil }
    /// Frame numbers found, sorted.
    public let frameNumbers: [Int]
    /// What the reader assumed (e.g. default intrinsics), for the user to see.
    public private(set) var notes: [String] = []
    private let colorExtension: String
    private let options: ReaderOptions
    private let depthScale: Double

    public var frameCount: Int { frameNumbers.count }

    /// True if `folder` looks like this layout.
    public static func detect(_ folder: URL) -> Bool {
        (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.contains {
            $0.hasPrefix("frame-") && $0.hasSuffix(".depth.png")
        } ?? false
    }

    public init(folder: URL, options: ReaderOptions = ReaderOptions()) throws {
        self.folder = folder
        self.options = options
        name = folder.standardizedFileURL.lastPathComponent
        guard ReaderSupport.directoryExists(folder) else { throw SequenceError.notFound(path: folder.path) }
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        var numbers = Set<Int>()
        var extensions = Set<String>()
        for file in files where file.hasPrefix("frame-") {
            let parts = file.split(separator: ".")
            guard parts.count == 3, let n = Int(parts[0].dropFirst("frame-".count)) else { continue }
            if parts[1] == "color" { numbers.insert(n); extensions.insert(String(parts[2])) }
        }
        guard !numbers.isEmpty else {
            throw SequenceError.unknownLayout(path: folder.path, reason: "no frame-NNNNNN.color.png/jpg files")
        }
        let sorted = numbers.sorted()
        let ext = extensions.contains("png") ? "png" : (extensions.first ?? "png")
        frameNumbers = sorted
        colorExtension = ext
        depthScale = options.depthScale ?? 1000

        // Image size from the first colour frame.
        let firstURL = folder.appendingPathComponent(String(format: "frame-%06d.color.%@", sorted[0], ext))
        let first = try ReaderSupport.image { try ImageFile.readColor(firstURL) }
        let calibration = folder.appendingPathComponent("camera-intrinsics.txt")
        var k: Intrinsics
        if let override = options.intrinsics {
            k = override.intrinsics(width: first.width, height: first.height)
        } else if ReaderSupport.fileExists(calibration) {
            let rows = try ReaderSupport.numbers(in: calibration)
            guard rows.count == 3, rows.allSatisfy({ $0.values.count == 3 }) else {
                throw SequenceError.malformed(path: calibration.path, line: nil, reason: "expected a 3x3 camera matrix")
            }
            k = Intrinsics(fx: rows[0].values[0], fy: rows[1].values[1], cx: rows[0].values[2], cy: rows[1].values[2],
                           width: first.width, height: first.height)
        } else {
            k = Intrinsics(fx: 585, fy: 585, cx: 320, cy: 240, width: 640, height: 480)
                .scaled(toWidth: first.width, height: first.height)
            notes.append("no camera-intrinsics.txt: assuming 7-Scenes' Kinect calibration fx=fy=585, cx=320, cy=240 at 640x480")
        }
        intrinsics = try ReaderSupport.validated(k, source: folder.path)
        let hasPoses = ReaderSupport.fileExists(folder.appendingPathComponent(String(format: "frame-%06d.pose.txt", sorted[0])))
        capabilities = SequenceCapabilities(hasDepth: true, hasPoses: hasPoses)
    }

    public func frame(at index: Int) throws -> Frame {
        guard index >= 0, index < frameNumbers.count else { throw SequenceError.frameOutOfRange(index: index, count: frameNumbers.count) }
        let n = frameNumbers[index]
        let stem = String(format: "frame-%06d", n)
        let colorURL = folder.appendingPathComponent("\(stem).color.\(colorExtension)")
        let color = try ReaderSupport.color(colorURL, frame: n, intrinsics: intrinsics)
        let depth = try ReaderSupport.depth(folder.appendingPathComponent("\(stem).depth.png"), frame: n, scale: depthScale,
                                            intrinsics: intrinsics, options: options)
        var pose: RigidTransform?
        if capabilities.hasPoses {
            pose = try Self.readPose(folder.appendingPathComponent("\(stem).pose.txt"), frame: n)
        }
        return Frame(index: index, timestamp: Double(n), color: color, depth: depth, worldFromCamera: pose, source: colorURL.path)
    }

    /// A 4x4 camera-to-world matrix as 16 whitespace-separated numbers.
    static func readPose(_ url: URL, frame: Int) throws -> RigidTransform {
        guard ReaderSupport.fileExists(url) else { throw SequenceError.missingFile(path: url.path, frame: frame) }
        let rows = try ReaderSupport.numbers(in: url)
        let values = rows.flatMap(\.values)
        guard values.count == 16 else {
            throw SequenceError.malformed(path: url.path, line: rows.first(where: { $0.values.count != 4 })?.line,
                                          reason: "expected a 4x4 matrix (16 numbers), found \(values.count)")
        }
        let pose = RigidTransform(matrix4RowMajor: values)
        guard pose.isValid else {
            throw SequenceError.malformed(path: url.path, line: nil, reason: "not a rigid transform (rotation not orthonormal)")
        }
        return pose
    }
}
