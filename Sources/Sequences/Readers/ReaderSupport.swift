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

    /// Whitespace-separated numbers of a text file, with the line each came from.
    static func numbers(in url: URL) throws -> [(line: Int, values: [Double])] {
        guard fileExists(url) else { throw SequenceError.notFound(path: url.path) }
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw SequenceError.malformed(path: url.path, line: nil, reason: "not readable as UTF-8 text")
        }
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

    static func validated(_ intrinsics: Intrinsics, source: String) throws -> Intrinsics {
        if let problem = intrinsics.validationProblem() { throw SequenceError.invalidIntrinsics(path: source, reason: problem) }
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
                              width: all.count == 6 ? try size(all[4], url.path) : nil, height: all.count == 6 ? try size(all[5], url.path) : nil)
            }
            throw SequenceError.malformed(path: url.path, line: nil,
                                          reason: "expected 'fx fy cx cy [width height]' or a 3x3 matrix, found \(all.count) numbers")
        }
        let parts = argument.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4 || parts.count == 6, parts.allSatisfy({ $0 != nil && $0!.isFinite }) else {
            throw SequenceError.invalidIntrinsics(path: argument, reason: "expected 'fx,fy,cx,cy[,width,height]' or an existing file")
        }
        let v = parts.map { $0! }
        return Values(fx: v[0], fy: v[1], cx: v[2], cy: v[3], width: v.count == 6 ? try size(v[4], argument) : nil,
                      height: v.count == 6 ? try size(v[5], argument) : nil)
    }

    /// An image side: a whole number of pixels within `ImageLimits` (1e300 used to trap in the
    /// conversion to Int).
    static func size(_ value: Double, _ source: String) throws -> Int {
        guard value.rounded() == value, value >= 1, value <= Double(ImageLimits.maxSide) else {
            throw SequenceError.invalidIntrinsics(path: source, reason: "image size \(value) is not a whole number of pixels in 1...\(ImageLimits.maxSide)")
        }
        return Int(value)
    }
}
