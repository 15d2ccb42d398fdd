import Foundation
import Geometry
import Imaging
import Semantics

/// ElasticFusion / SemanticFusion `.klg` logs (ElasticFusion's Tools/RawLogReader.cpp and the
/// loggers that write it; docs/replay-formats.md).
///
/// Little-endian: an `int32` frame count, then per frame an `int64` timestamp (µs), `int32`
/// depth size, `int32` image size, the depth block and the colour block. Depth is uint16
/// millimetres, zlib-compressed, or raw when its size is exactly width x height x 2 (ElasticFusion's
/// own rule, followed for the ambiguous case of a compressed block of exactly that size; the
/// writer never produces one). Colour is JPEG, or raw RGB when its size is exactly width x height
/// x 3, or absent (black) when 0.
///
/// The reader streams: opening reads only the 16-byte frame headers (seeking over the images) to
/// index every frame's offset, and a frame is read with one `pread` of its own bytes. Unlike
/// ElasticFusion's reader, which skips the last frame, every frame is read.
///
/// A log carries no calibration and no poses: intrinsics come from `--intrinsics`, else a sidecar
/// `<name>.intrinsics.txt` next to the log ('fx fy cx cy [width height]' or a 3x3 matrix), else
/// ElasticFusion's defaults; a sidecar `<name>.groundtruth.txt` (TUM format, one pose per frame,
/// matching timestamps) supplies ground truth.
///
/// A log that stops early (a header count larger than the frames present, a frame whose sizes
/// run past the end, a negative size) keeps the frames before the fault readable; reading the
/// frame at the fault throws the error that names it, so a run fuses what is there and then
/// stops with that error.
public final class KLGReader: FrameSource {
    /// Where one frame's blocks are.
    public struct Entry: Equatable, Sendable {
        /// Microseconds, as stored.
        public var timestamp: Int64
        /// Offset of the depth block (the colour block follows it).
        public var offset: Int64
        public var depthSize: Int
        public var imageSize: Int
    }

    /// ElasticFusion's calibration when none is given (its `Intrinsics::getInstance(528, 528, 320, 240)`).
    public static let elasticFusionIntrinsics = Intrinsics(fx: 528, fy: 528, cx: 320, cy: 240, width: 640, height: 480)

    public let file: URL
    public let name: String
    public var layout: String { "klg" }
    public let intrinsics: Intrinsics
    public let capabilities: SequenceCapabilities
    public var classSet: ClassSet? { nil }
    /// The readable frames' offsets, in order.
    public let entries: [Entry]
    /// The frame count the header declares.
    public let declaredCount: Int
    /// Why the frames after `entries` cannot be read (nil: the log is complete).
    public let stopError: SequenceError?
    public private(set) var assumptions: [String] = []
    public private(set) var warnings: [String] = []
    /// Readable frames, plus the faulty one when the log stops early (reading it throws `stopError`).
    public var frameCount: Int { entries.count + (stopError == nil ? 0 : 1) }
    private let data: RandomAccessFile
    private let options: ReaderOptions
    private let depthScale: Double
    private let poses: [RigidTransform]?

    public static func detect(_ url: URL) -> Bool {
        url.pathExtension.lowercased() == "klg" && ReaderSupport.fileExists(url)
    }

    /// Sidecar files of a log: `<folder>/<name>.<suffix>` for `<folder>/<name>.klg`.
    public static func sidecar(of log: URL, _ suffix: String) -> URL {
        log.deletingPathExtension().appendingPathExtension(suffix)
    }

    public init(file: URL, options: ReaderOptions = ReaderOptions()) throws {
        self.file = file
        self.options = options
        name = file.deletingPathExtension().lastPathComponent
        data = try RandomAccessFile(file)
        let path = file.path
        guard data.size >= 4 else {
            throw SequenceError.malformed(path: path, line: nil, reason: "\(data.size) bytes: too short for the 4-byte frame count of a .klg log")
        }
        var header = ByteCursor(try data.read(at: 0, count: 4, what: "frame count"))
        let count = Int(header.int32()!)
        guard count > 0 else {
            throw SequenceError.malformed(path: path, line: nil, reason: count == 0 ? "the frame count is 0" : "the frame count \(count) is negative")
        }
        declaredCount = count
        let index = try Self.index(data, declared: count)
        entries = index.entries
        stopError = index.stop
        guard !entries.isEmpty else { throw index.stop! }
        if let stop = index.stop {
            warnings.append("\(path): the header declares \(count) frames but only the first \(entries.count) can be read; "
                            + "reading stops with an error at frame \(entries.count): \(stop)")
        } else if index.end < data.size {
            warnings.append("\(path): \(data.size - index.end) bytes after the \(count) frames the header declares were ignored")
        }
        depthScale = try ReaderSupport.depthScale(options, default: 1000)
        if options.depthScale == nil {
            assumptions.append("depth scale: assuming millimetres (1000 units per metre), as ElasticFusion's loggers write; pass --depth-scale for other logs")
        }

        // Image size: given, else from the first frame (raw sizes or the JPEG header).
        let size: (width: Int, height: Int)
        if let w = options.intrinsics?.width, let h = options.intrinsics?.height {
            size = (w, h)
        } else {
            let inferred = try Self.inferSize(data, entries[0], path: path)
            size = (inferred.width, inferred.height)
            assumptions.append("image size \(size.width)x\(size.height) inferred from frame 0 (\(inferred.source)); --intrinsics fx,fy,cx,cy,width,height sets it")
        }
        let calibration = Self.sidecar(of: file, "intrinsics.txt")
        var k: Intrinsics
        if let override = options.intrinsics {
            k = override.intrinsics(width: size.width, height: size.height)
        } else if ReaderSupport.fileExists(calibration) {
            k = try IntrinsicsArgument.parse(calibration.path).intrinsics(width: size.width, height: size.height)
            if k.width != size.width || k.height != size.height {
                throw SequenceError.invalidIntrinsics(path: calibration.path,
                                                      reason: "gives a \(k.width)x\(k.height) image, the log's frames are \(size.width)x\(size.height)")
            }
            assumptions.append("intrinsics from \(calibration.lastPathComponent) beside the log")
        } else {
            let ef = Self.elasticFusionIntrinsics
            if size.width == ef.width && size.height == ef.height {
                k = ef
                assumptions.append("no calibration (a .klg has none): assuming ElasticFusion's defaults fx=fy=528, cx=320, cy=240 at 640x480; pass --intrinsics or put \(calibration.lastPathComponent) beside the log")
            } else {
                let f = 528 * Double(size.width) / 640
                k = Intrinsics(fx: f, fy: f, cx: Double(size.width) / 2, cy: Double(size.height) / 2, width: size.width, height: size.height)
                assumptions.append("no calibration (a .klg has none): assuming ElasticFusion's fx=fy=528 scaled to \(size.width) px (\(InputLimits.format(f))) and the principal point at the centre; pass --intrinsics or put \(calibration.lastPathComponent) beside the log")
            }
        }
        intrinsics = try ReaderSupport.validated(k, source: path)

        let truthURL = Self.sidecar(of: file, "groundtruth.txt")
        if ReaderSupport.fileExists(truthURL) {
            let list = try TUMTrajectory.read(truthURL)
            if list.count >= entries.count,
               let bad = Array(zip(list, entries)).firstIndex(where: { abs($0.0.timestamp - Double($0.1.timestamp) / 1e6) > 1e-3 }) {
                warnings.append("\(truthURL.path): pose \(bad) has timestamp \(list[bad].timestamp), frame \(bad) has \(Double(entries[bad].timestamp) / 1e6); ground truth ignored")
                poses = nil
            } else if list.count < entries.count {
                warnings.append("\(truthURL.path): \(list.count) poses for \(entries.count) frames; ground truth ignored")
                poses = nil
            } else {
                poses = list.prefix(entries.count).map(\.pose)
            }
        } else {
            poses = nil
        }
        // ElasticFusion's loggers record with OpenNI's depth-to-colour registration on.
        capabilities = SequenceCapabilities(hasDepth: true, hasPoses: poses != nil, colorRegisteredToDepth: true)
    }

    /// The frame headers, seeking over the images: the offsets of the frames present and, when
    /// the log stops before the declared count, the error naming the first frame that cannot be read.
    static func index(_ data: RandomAccessFile, declared: Int) throws -> (entries: [Entry], stop: SequenceError?, end: Int64) {
        var entries: [Entry] = []
        var offset: Int64 = 4
        let path = data.path
        for i in 0..<declared {
            func stop(_ reason: String) -> SequenceError {
                .malformed(path: path, line: nil, reason: "frame \(i) (offset \(offset)): \(reason)")
            }
            let left = data.size - offset
            if left == 0 {
                return (entries, stop("the file ends after \(i) frames; the header declares \(declared) (a truncated log)"), offset)
            }
            if left < 16 {
                return (entries, stop("the file ends inside the 16-byte frame header (\(left) bytes left; a truncated log)"), offset)
            }
            var cursor = ByteCursor(try data.read(at: offset, count: 16, what: "frame \(i) header"))
            let timestamp = cursor.int64()!, depthSize = Int(cursor.int32()!), imageSize = Int(cursor.int32()!)
            if depthSize < 0 || imageSize < 0 {
                return (entries, stop("negative block size (depth \(depthSize), image \(imageSize) bytes)"), offset)
            }
            if depthSize == 0 {
                return (entries, stop("the depth block is empty (size 0)"), offset)
            }
            let body = Int64(depthSize) + Int64(imageSize)
            if body > left - 16 {
                return (entries, stop("depth \(depthSize) + image \(imageSize) bytes run past the end of the file (\(left - 16) bytes left)"), offset)
            }
            entries.append(Entry(timestamp: timestamp, offset: offset + 16, depthSize: depthSize, imageSize: imageSize))
            offset += 16 + body
        }
        return (entries, nil, offset)
    }

    /// The image size from the first frame: the JPEG header, else raw sizes, else the inflated
    /// depth's pixel count at a 4:3 or 16:9 aspect.
    static func inferSize(_ data: RandomAccessFile, _ entry: Entry, path: String) throws -> (width: Int, height: Int, source: String) {
        let fail = { (reason: String) -> SequenceError in
            .malformed(path: path, line: nil, reason: "frame 0: cannot infer the image size: \(reason); give it as --intrinsics fx,fy,cx,cy,width,height")
        }
        if entry.imageSize > 0 {
            let image = try data.read(at: entry.offset + Int64(entry.depthSize), count: entry.imageSize, what: "frame 0 colour")
            if image.count >= 2, image[0] == 0xFF, image[1] == 0xD8 {
                let decoded = try ReaderSupport.image { try JPEGCodec.decode(Data(image), path: "\(path) frame 0 colour") }
                return (decoded.width, decoded.height, "JPEG colour")
            }
            guard image.count % 3 == 0, let size = aspectSize(pixels: image.count / 3) else {
                throw fail("the colour block (\(image.count) bytes) is neither JPEG nor raw RGB at 4:3 or 16:9")
            }
            return (size.width, size.height, "raw RGB colour")
        }
        let ef = elasticFusionIntrinsics
        if entry.depthSize == ef.width * ef.height * 2 { return (ef.width, ef.height, "raw depth") }
        let block = try data.read(at: entry.offset, count: entry.depthSize, what: "frame 0 depth")
        // Try growing outputs until the stream fits, never beyond what the block can inflate to
        // (zlib's ratio is at most 1032:1) or the image limit.
        let ceiling = min(2 * ImageLimits.maxPixels, Zlib.maxOutput(forInput: entry.depthSize))
        var capacity = min(ef.width * ef.height * 2, ceiling)
        while true {
            switch Zlib.inflate(block[...], expected: capacity) {
            case .success:
                if let size = aspectSize(pixels: capacity / 2) { return (size.width, size.height, "zlib depth") }
                throw fail("the depth inflates to \(capacity) bytes, not 2 bytes per pixel of a 4:3 or 16:9 image")
            case .failure(.tooShort(_, let found)):
                guard found % 2 == 0, let size = aspectSize(pixels: found / 2) else {
                    throw fail("the depth inflates to \(found) bytes, not 2 bytes per pixel of a 4:3 or 16:9 image")
                }
                return (size.width, size.height, "zlib depth")
            case .failure(.tooLong):
                guard capacity < ceiling else { throw fail("the depth block inflates to more than \(capacity) bytes") }
                capacity = min(capacity * 4, ceiling)
            case .failure(let error):
                throw fail("depth block: \(error)")
            }
        }
    }

    /// Width and height of an image of `pixels` pixels at 4:3 or 16:9.
    static func aspectSize(pixels: Int) -> (width: Int, height: Int)? {
        for (a, b) in [(4, 3), (16, 9)] {
            let h = Int((Double(pixels * b) / Double(a)).squareRoot().rounded())
            guard h > 0, h * a % b == 0 else { continue }
            let w = h * a / b
            if w * h == pixels, InputLimits.imageSide.contains(w), InputLimits.imageSide.contains(h) { return (w, h) }
        }
        return nil
    }

    public func frame(at index: Int) throws -> Frame {
        let entry = try self.entry(index)
        let (w, h) = (intrinsics.width, intrinsics.height)
        let path = file.path
        func bad(_ reason: String) -> SequenceError { .malformed(path: path, line: nil, reason: "frame \(index) (offset \(entry.offset - 16)): \(reason)") }
        let bytes = try data.read(at: entry.offset, count: entry.depthSize + entry.imageSize, what: "frame \(index)")
        let depthBlock = bytes[0..<entry.depthSize]
        let raw: [UInt8]
        if entry.depthSize == w * h * 2 {
            raw = Array(depthBlock)
        } else {
            switch Zlib.inflate(depthBlock, expected: w * h * 2) {
            case .success(let out): raw = out
            case .failure(let error):
                throw bad("depth block of \(entry.depthSize) bytes \(error) (\(w)x\(h) uint16 = \(w * h * 2) bytes)")
            }
        }
        let inv = Float(1 / depthScale)
        let lo = options.minDepth, hi = options.maxDepth
        var metres = [Float](repeating: 0, count: w * h)
        for p in 0..<(w * h) {
            let v = UInt16(raw[2 * p]) | UInt16(raw[2 * p + 1]) << 8
            guard v != 0, v != UInt16.max else { continue }
            let z = Float(v) * inv
            if z >= lo && z <= hi { metres[p] = z }
        }
        let colorBlock = bytes[entry.depthSize...]
        let color: ColorImage
        if entry.imageSize == 0 {
            color = ColorImage(width: w, height: h, repeating: .black)
        } else if entry.imageSize == w * h * 3 {
            let base = colorBlock.startIndex
            color = ColorImage(width: w, height: h, pixels: (0..<(w * h)).map {
                RGB8(colorBlock[base + 3 * $0], colorBlock[base + 3 * $0 + 1], colorBlock[base + 3 * $0 + 2])
            })
        } else {
            let decoded = try ReaderSupport.image { try JPEGCodec.decode(Data(colorBlock), path: "\(path) frame \(index) colour") }
            guard decoded.width == w, decoded.height == h else {
                throw bad("the colour JPEG is \(decoded.width)x\(decoded.height), the log's images are \(w)x\(h)")
            }
            color = decoded
        }
        return Frame(index: index, timestamp: Double(entry.timestamp) / 1e6, color: color,
                     depth: DepthImage(width: w, height: h, pixels: metres),
                     worldFromCamera: poses?[index], source: "\(path) frame \(index)")
    }

    public func groundTruth(at index: Int) throws -> (timestamp: Double, pose: RigidTransform?, poseError: SequenceError?) {
        let entry = try self.entry(index)
        return (Double(entry.timestamp) / 1e6, poses?[index], nil)
    }

    private func entry(_ index: Int) throws -> Entry {
        guard index >= 0, index < frameCount else { throw SequenceError.frameOutOfRange(index: index, count: frameCount) }
        if index == entries.count, let stopError { throw stopError }
        return entries[index]
    }
}
