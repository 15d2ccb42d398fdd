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

    /// What the reader assumed (intrinsics, depth scale), for the user to see.
    public private(set) var assumptions: [String] = []
    public private(set) var warnings: [String] = []
    private let poseURL: URL

    public init(folder: URL, options: ReaderOptions = ReaderOptions()) throws {
        self.folder = folder
        self.options = options
        name = folder.standardizedFileURL.lastPathComponent
        depthScale = try ReaderSupport.depthScale(options, default: 5000)
        if options.depthScale == nil { assumptions.append("depth scale: assuming ICL-NUIM's 5000 units per metre") }
        let colorFolder = folder.appendingPathComponent("color")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: colorFolder.path)) ?? []
        let numbers = files.compactMap { $0.hasSuffix(".png") ? Int($0.dropLast(4)) : nil }.sorted()
        frameNumbers = numbers
        guard let firstNumber = numbers.first else { throw SequenceError.unknownLayout(path: colorFolder.path, reason: "no N.png colour images") }
        poseURL = folder.appendingPathComponent("pose.txt")
        var list: [RigidTransform] = []
        for row in try ReaderSupport.numbers(in: poseURL) {
            guard row.values.count == 7 else {
                throw SequenceError.malformed(path: poseURL.path, line: row.line, reason: "expected 7 values 'tx ty tz qx qy qz qw', found \(row.values.count)")
            }
            let v = row.values
            list.append(try ReaderSupport.quaternionPose(translation: SIMD3(v[0], v[1], v[2]), quaternion: SIMD4(v[3], v[4], v[5], v[6]),
                                                         path: poseURL.path, line: row.line))
        }
        poses = list
        let firstURL = colorFolder.appendingPathComponent("\(firstNumber).png")
        let first = try ReaderSupport.image { try ImageFile.readColor(firstURL) }
        var k: Intrinsics
        if let override = options.intrinsics {
            k = override.intrinsics(width: first.width, height: first.height)
        } else {
            k = Intrinsics(fx: 481.2, fy: -480, cx: 319.5, cy: 239.5, width: 640, height: 480).scaled(toWidth: first.width, height: first.height)
            assumptions.append("intrinsics: ICL-NUIM folders carry no calibration; assuming the living-room renderer's fx=481.2, fy=-480 (y up), cx=319.5, cy=239.5 at 640x480; pass --intrinsics for other data")
        }
        intrinsics = try ReaderSupport.validated(k, source: folder.path)
        // A pose.txt shorter than the frame list is truncated or belongs to another sequence:
        // the frames it does not cover get no ground truth (a run fusing ground-truth poses stops
        // there with an error naming this file; tracking leaves them out of the score), and the
        // user is told now rather than after a silent fallback to tracking.
        let uncovered = numbers.filter { $0 < 1 || $0 > list.count }
        if !uncovered.isEmpty {
            warnings.append("\(poseURL.path): \(list.count) poses (line k is frame k) for \(numbers.count) frames numbered \(firstNumber)-\(numbers.last!): "
                            + "\(uncovered.count) frames have no ground-truth pose (\(Self.list(uncovered)))")
        }
        // Colour and depth are rendered from one camera (POV-Ray, with simulated Kinect noise).
        capabilities = SequenceCapabilities(hasDepth: true, hasPoses: !list.isEmpty, colorRegisteredToDepth: true, depthIsRendered: true)
    }

    static func list(_ numbers: [Int]) -> String {
        numbers.prefix(5).map(String.init).joined(separator: ", ") + (numbers.count > 5 ? ", ..." : "")
    }

    public func frame(at index: Int) throws -> Frame {
        guard index >= 0, index < frameNumbers.count else { throw SequenceError.frameOutOfRange(index: index, count: frameNumbers.count) }
        let n = frameNumbers[index]
        let colorURL = folder.appendingPathComponent("color/\(n).png")
        let color = try ReaderSupport.color(colorURL, frame: n, intrinsics: intrinsics)
        let depth = try ReaderSupport.depth(folder.appendingPathComponent("depth/\(n).png"), frame: n, scale: depthScale,
                                            intrinsics: intrinsics, options: options)
        let truth = try groundTruth(at: index)
        return Frame(index: index, timestamp: truth.timestamp, color: color, depth: depth, worldFromCamera: truth.pose,
                     source: colorURL.path, poseError: truth.poseError)
    }

    public func groundTruth(at index: Int) throws -> (timestamp: Double, pose: RigidTransform?, poseError: SequenceError?) {
        guard index >= 0, index < frameNumbers.count else { throw SequenceError.frameOutOfRange(index: index, count: frameNumbers.count) }
        let n = frameNumbers[index]
        guard !poses.isEmpty else { return (Double(n), nil, nil) }
        guard n >= 1, n <= poses.count else {
            return (Double(n), nil, .malformed(path: poseURL.path, line: nil,
                                               reason: "no pose for frame \(n): the file has \(poses.count) poses (line k is frame k) for \(frameNumbers.count) frames"))
        }
        return (Double(n), poses[n - 1], nil)
    }
}
