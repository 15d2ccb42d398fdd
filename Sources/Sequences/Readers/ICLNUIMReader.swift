import Foundation
import Geometry
import Imaging
import Semantics

/// ICL-NUIM folders as distributed with the living-room sequences: `color/N.png`, `depth/N.png`
/// (5000 per metre) and `pose.txt` with lines `tx ty tz qx qy qz qw` (camera-to-world, line k
/// for frame k+1). Intrinsics (481.2, −480, 319.5, 239.5): the negative fy is real, the renderer's
/// y axis points up, and it is kept signed so points land where the poses expect them.
public final class ICLNUIMReader: FrameSource {
    public let folder: URL
    public let name: String
    public var layout: String { "icl-nuim" }
    public let intrinsics: Intrinsics
    public let capabilities: SequenceCapabilities
    public var classSet: ClassSet? { nil }
    /// Frame numbers (file stems) in order.
    public let frameNumbers: [Int]
    private let poses: [RigidTransform]
    private let options: ReaderOptions
    private let depthScale: Double
    public var frameCount: Int { frameNumbers.count }

    public static func detect(_ folder: URL) -> Bool {
        ReaderSupport.fileExists(folder.appendingPathComponent("pose.txt"))
            && ReaderSupport.directoryExists(folder.appendingPathComponent("color"))
            && ReaderSupport.directoryExists(folder.appendingPathComponent("depth"))
    }

    public init(folder: URL, options: ReaderOptions = ReaderOptions()) throws {
        self.folder = folder
        self.options = options
        name = folder.standardizedFileURL.lastPathComponent
        depthScale = options.depthScale ?? 5000
        let colorFolder = folder.appendingPathComponent("color")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: colorFolder.path)) ?? []
        let numbers = files.compactMap { $0.hasSuffix(".png") ? Int($0.dropLast(4)) : nil }.sorted()
        frameNumbers = numbers
        guard let firstNumber = numbers.first else { throw SequenceError.unknownLayout(path: colorFolder.path, reason: "no N.png colour images") }
        let poseURL = folder.appendingPathComponent("pose.txt")
        var list: [RigidTransform] = []
        for row in try ReaderSupport.numbers(in: poseURL) {
            guard row.values.count == 7 else {
                throw SequenceError.malformed(path: poseURL.path, line: row.line, reason: "expected 7 values 'tx ty tz qx qy qz qw', found \(row.values.count)")
            }
            let v = row.values
            list.append(RigidTransform(translation: SIMD3(v[0], v[1], v[2]), quaternion: SIMD4(v[3], v[4], v[5], v[6])))
        }
        poses = list
        let firstURL = colorFolder.appendingPathComponent("\(firstNumber).png")
        let first = try ReaderSupport.image { try ImageFile.readColor(firstURL) }
        let k = options.intrinsics?.intrinsics(width: first.width, height: first.height)
            ?? Intrinsics(fx: 481.2, fy: -480, cx: 319.5, cy: 239.5, width: 640, height: 480).scaled(toWidth: first.width, height: first.height)
        intrinsics = try ReaderSupport.validated(k, source: folder.path)
        let maxFrame = numbers.last ?? 0
        capabilities = SequenceCapabilities(hasDepth: true, hasPoses: list.count >= maxFrame)
    }

    public func frame(at index: Int) throws -> Frame {
        guard index >= 0, index < frameNumbers.count else { throw SequenceError.frameOutOfRange(index: index, count: frameNumbers.count) }
        let n = frameNumbers[index]
        let colorURL = folder.appendingPathComponent("color/\(n).png")
        let color = try ReaderSupport.color(colorURL, frame: n, intrinsics: intrinsics)
        let depth = try ReaderSupport.depth(folder.appendingPathComponent("depth/\(n).png"), frame: n, scale: depthScale,
                                            intrinsics: intrinsics, options: options)
        let pose = n >= 1 && n <= poses.count ? poses[n - 1] : nil
        return Frame(index: index, timestamp: Double(n), color: color, depth: depth, worldFromCamera: pose, source: colorURL.path)
    }
}
