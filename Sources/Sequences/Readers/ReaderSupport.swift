import Foundation
import Geometry
import Imaging

/// Shared steps of every reader: loading images with size checks and converting depth.
enum ReaderSupport {
    static func fileExists(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    static func directoryExists(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Runs an image read, turning `ImagingError` into `SequenceError`.
    static func image<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ImagingError {
            if case .fileNotFound(let path) = error { throw SequenceError.notFound(path: path) }
            throw SequenceError.image(error)
        }
    }

    static func checkSize<P>(_ image: Image<P>, _ url: URL, _ intrinsics: Intrinsics) throws {
        guard image.width == intrinsics.width, image.height == intrinsics.height else {
            throw SequenceError.imageSizeMismatch(path: url.path, expected: "\(intrinsics.width)x\(intrinsics.height)",
                                                  found: "\(image.width)x\(image.height)")
        }
    }

    static func color(_ url: URL, frame: Int, intrinsics: Intrinsics) throws -> ColorImage {
        guard fileExists(url) else { throw SequenceError.missingFile(path: url.path, frame: frame) }
        let image = try Self.image { try ImageFile.readColor(url) }
        try checkSize(image, url, intrinsics)
        return image
    }

    /// Reads a 16-bit depth PNG and converts it to metres; values outside the options' range
    /// (and the 65535 "invalid" marker of 7-Scenes) become 0.
    static func depth(_ url: URL, frame: Int, scale: Double, intrinsics: Intrinsics, options: ReaderOptions) throws -> DepthImage {
        guard fileExists(url) else { throw SequenceError.missingFile(path: url.path, frame: frame) }
        let raw = try image { try PNGCodec.readGray16(url) }
        try checkSize(raw, url, intrinsics)
        let inv = Float(1 / scale)
        let lo = options.minDepth, hi = options.maxDepth
        return raw.map { v -> Float in
            guard v != 0, v != UInt16.max else { return 0 }
            let z = Float(v) * inv
            return z >= lo && z <= hi ? z : 0
        }
    }

    static func labels(_ url: URL, frame: Int, intrinsics: Intrinsics) throws -> LabelImage {
        guard fileExists(url) else { throw SequenceError.missingFile(path: url.path, frame: frame) }
        let image = try Self.image { try PNGCodec.readGray8(url) }
        try checkSize(image, url, intrinsics)
        return image
    }

    /// A whole UTF-8 text file, read through `FileData` (so FIFOs and devices are refused with
    /// what they are).
    static func text(_ url: URL) throws -> String {
        guard fileExists(url) else { throw SequenceError.notFound(path: url.path) }
        let data = try image { try FileData.read(url) }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SequenceError.malformed(path: url.path, line: nil, reason: "not readable as UTF-8 text")
        }
        return text
    }

    /// Whitespace-separated numbers of a text file, with the line each came from.
    static func numbers(in url: URL) throws -> [(line: Int, values: [Double])] {
        let text = try self.text(url)
        var rows: [(Int, [Double])] = []
        for (k, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            var values: [Double] = []
            for token in trimmed.split(whereSeparator: { $0.isWhitespace || $0 == "," }) {
                guard let v = Double(token), v.isFinite else {
                    throw SequenceError.malformed(path: url.path, line: k + 1, reason: "'\(token)' is not a finite number")
                }
                values.append(v)
            }
            rows.append((k + 1, values))
        }
        return rows
    }

    /// A stored rotation and translation as a rigid transform, re-orthonormalised when within
    /// `RigidTransform.rotationTolerance`, else `SequenceError.malformed` naming file and line.
    static func rigid(rotation: Matrix3, translation: SIMD3<Double>, path: String, line: Int?) throws -> (pose: RigidTransform, deviation: Double) {
        switch RigidTransform.checked(rotation: rotation, translation: translation) {
        case .success(let result): return (result.transform, result.deviation)
        case .failure(let problem): throw SequenceError.malformed(path: path, line: line, reason: problem.description)
        }
    }

    /// A pose stored as translation and quaternion (x, y, z, w). Quaternions are normalised (files
    /// store them to 6-9 digits); a zero or non-finite one names the file and line.
    static func quaternionPose(translation: SIMD3<Double>, quaternion q: SIMD4<Double>, path: String, line: Int) throws -> RigidTransform {
        let norm = (q * q).sum().squareRoot()
        guard norm.isFinite, norm > 1e-6 else { throw SequenceError.malformed(path: path, line: line, reason: "zero quaternion") }
        return RigidTransform(translation: translation, quaternion: q)
    }

    /// The depth scale to use: the option's (checked, for callers other than the command line)
    /// or the layout's default.
    static func depthScale(_ options: ReaderOptions, default value: Double) throws -> Double {
        guard let given = options.depthScale else { return value }
        if let problem = InputLimits.depthScale(given) { throw SequenceError.invalidValue(problem) }
        return given
    }

    static func validated(_ intrinsics: Intrinsics, source: String) throws -> Intrinsics {
        if let problem = InputLimits.intrinsics(intrinsics) { throw SequenceError.invalidIntrinsics(path: source, reason: problem) }
        return intrinsics
    }
}

/// Parses `--intrinsics`: either "fx,fy,cx,cy" or a file holding one line `fx fy cx cy
/// [width height]` or a 3x3 camera matrix. The image size comes from the sequence when absent.
public enum IntrinsicsArgument {
    public struct Values: Equatable, Sendable {
        public var fx, fy, cx, cy: Double
        public var width: Int?
        public var height: Int?
        public func intrinsics(width w: Int, height h: Int) -> Intrinsics {
            Intrinsics(fx: fx, fy: fy, cx: cx, cy: cy, width: width ?? w, height: height ?? h)
        }
    }

    public static func parse(_ argument: String) throws -> Values {
        let url = URL(fileURLWithPath: argument)
        if ReaderSupport.fileExists(url) {
            let rows = try ReaderSupport.numbers(in: url)
            let all = rows.flatMap(\.values)
            if rows.count == 3, rows.allSatisfy({ $0.values.count == 3 }) {
                return Values(fx: all[0], fy: all[4], cx: all[2], cy: all[5])
            }
            if all.count == 4 || all.count == 6 {
                return Values(fx: all[0], fy: all[1], cx: all[2], cy: all[3],
                              width: try all.count == 6 ? side(all[4], "width", url.path) : nil,
                              height: try all.count == 6 ? side(all[5], "height", url.path) : nil)
            }
            throw SequenceError.malformed(path: url.path, line: nil,
                                          reason: "expected 'fx fy cx cy [width height]' or a 3x3 matrix, found \(all.count) numbers")
        }
        let parts = argument.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4 || parts.count == 6, parts.allSatisfy({ $0 != nil && $0!.isFinite }) else {
            throw SequenceError.invalidIntrinsics(path: argument, reason: "expected 'fx,fy,cx,cy[,width,height]' or an existing file")
        }
        let v = parts.map { $0! }
        return Values(fx: v[0], fy: v[1], cx: v[2], cy: v[3], width: try v.count == 6 ? side(v[4], "width", argument) : nil,
                      height: try v.count == 6 ? side(v[5], "height", argument) : nil)
    }

    /// An image side given as a number: a whole number in `InputLimits.imageSide` (converting
    /// 1e300 to Int would trap).
    static func side(_ value: Double, _ name: String, _ source: String) throws -> Int {
        guard let n = Int(exactly: value), InputLimits.imageSide.contains(n) else {
            throw SequenceError.invalidIntrinsics(path: source, reason: "\(name) \(value) is not a whole number of pixels in \(InputLimits.imageSide)")
        }
        return n
    }
}
