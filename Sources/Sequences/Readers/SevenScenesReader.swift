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
    /// What the reader assumed (default intrinsics, depth scale), for the user to see.
    public private(set) var assumptions: [String] = []
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
        depthScale = try ReaderSupport.depthScale(options, default: 1000)
        if options.depthScale == nil {
            assumptions.append("depth scale: assuming 7-Scenes' 1000 units per metre (millimetres); pass --depth-scale for other data")
        }

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
            assumptions.append("no camera-intrinsics.txt: assuming 7-Scenes' Kinect calibration fx=fy=585, cx=320, cy=240 at 640x480")
        }
        intrinsics = try ReaderSupport.validated(k, source: folder.path)
        let hasPoses = ReaderSupport.fileExists(folder.appendingPathComponent(String(format: "frame-%06d.pose.txt", sorted[0])))
        // 7-Scenes ships the Kinect's two cameras' images as recorded: colour not registered to depth.
        capabilities = SequenceCapabilities(hasDepth: true, hasPoses: hasPoses, colorRegisteredToDepth: false)
    }

    public func frame(at index: Int) throws -> Frame {
        guard index >= 0, index < frameNumbers.count else { throw SequenceError.frameOutOfRange(index: index, count: frameNumbers.count) }
        let n = frameNumbers[index]
        let stem = String(format: "frame-%06d", n)
        let colorURL = folder.appendingPathComponent("\(stem).color.\(colorExtension)")
        let color = try ReaderSupport.color(colorURL, frame: n, intrinsics: intrinsics)
        let depth = try ReaderSupport.depth(folder.appendingPathComponent("\(stem).depth.png"), frame: n, scale: depthScale,
                                            intrinsics: intrinsics, options: options)
        var frame = Frame(index: index, timestamp: Double(n), color: color, depth: depth, source: colorURL.path)
        (_, frame.worldFromCamera, frame.poseError, frame.poseDeviation) = pose(number: n)
        return frame
    }

    public func groundTruth(at index: Int) throws -> (timestamp: Double, pose: RigidTransform?, poseError: SequenceError?) {
        guard index >= 0, index < frameNumbers.count else { throw SequenceError.frameOutOfRange(index: index, count: frameNumbers.count) }
        let result = pose(number: frameNumbers[index])
        return (result.timestamp, result.pose, result.error)
    }

    /// The pose of frame number `n`, or why it cannot be used; never throws, so a bad pose file
    /// costs only that frame's ground truth.
    private func pose(number n: Int) -> (timestamp: Double, pose: RigidTransform?, error: SequenceError?, deviation: Double) {
        guard capabilities.hasPoses else { return (Double(n), nil, nil, 0) }
        do {
            let (pose, deviation) = try Self.readPose(folder.appendingPathComponent(String(format: "frame-%06d.pose.txt", n)), frame: n)
            return (Double(n), pose, nil, deviation)
        } catch let error as SequenceError {
            return (Double(n), nil, error, 0)
        } catch {
            return (Double(n), nil, .malformed(path: folder.path, line: nil, reason: "\(error)"), 0)
        }
    }

    /// A 4x4 camera-to-world matrix as 16 whitespace-separated numbers, re-orthonormalised
    /// (see `RigidTransform.rotationTolerance`), with how far its rotation was from orthonormal.
    static func readPose(_ url: URL, frame: Int) throws -> (pose: RigidTransform, deviation: Double) {
        guard ReaderSupport.fileExists(url) else { throw SequenceError.missingFile(path: url.path, frame: frame) }
        let rows = try ReaderSupport.numbers(in: url)
        let values = rows.flatMap(\.values)
        guard values.count == 16 else {
            throw SequenceError.malformed(path: url.path, line: rows.first(where: { $0.values.count != 4 })?.line,
                                          reason: "expected a 4x4 matrix (16 numbers), found \(values.count)")
        }
        let matrix = RigidTransform(matrix4RowMajor: values)
        // The rotation's first row is where a reader of the file starts looking.
        return try ReaderSupport.rigid(rotation: matrix.rotation, translation: matrix.translation, path: url.path, line: rows.first?.line)
    }
}
