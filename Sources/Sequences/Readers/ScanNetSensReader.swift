import Foundation
import Geometry
import Imaging
import Semantics

/// ScanNet `.sens` scans, version 4 (ScanNet's SensReader/c++/src/sensorData.h; docs/replay-formats.md).
///
/// Little-endian: `uint32` version (4), `uint64` length + sensor name, four row-major float32 4x4
/// matrices (colour intrinsics, colour extrinsics, depth intrinsics, depth extrinsics), `int32`
/// colour compression (-1 unknown, 0 raw, 1 png, 2 jpeg) and depth compression (-1 unknown,
/// 0 raw_ushort, 1 zlib_ushort, 2 occi_ushort), `uint32` colour and depth width and height, float
/// depth shift (units per metre), `uint64` frame count; then per frame a float32 4x4
/// camera-to-world pose, `uint64` colour and depth timestamps, `uint64` colour and depth sizes,
/// and the two blocks. IMU records may follow the frames; they are not read.
///
/// Frames come at the depth resolution with the depth intrinsics: the colour (1296x968 in
/// ScanNet) is registered to the depth image through both intrinsics (each depth pixel samples
/// the colour pixel on the same ray, bilinearly), which is what resizing colour to the depth size
/// does when the two cameras share an optical centre, as ScanNet's tools assume; the
/// colour-to-depth extrinsics are not applied.
///
/// Poses ScanNet could not compute are stored as -inf: such a frame has no ground truth
/// (`poseError` says why), is left out of the tracking score and never fused as ground truth.
/// The scan counts as posed (`hasPoses`) only when every frame's pose is valid; otherwise runs
/// track and score against the valid ones. Streaming as `KLGReader`: the frame index is built
/// from the frame headers on open, a frame is one `pread`.
public final class ScanNetSensReader: FrameSource {
    public enum ColorCompression: Int32, Sendable { case raw = 0, png = 1, jpeg = 2 }
    public enum DepthCompression: Int32, Sendable { case raw = 0, zlib = 1 }

    public struct Entry {
        /// Offset of the colour block (the depth block follows it).
        public var offset: Int64
        public var colorSize: Int
        public var depthSize: Int
        public var timestamp: UInt64
        /// Camera-to-world, or why it cannot be used.
        public var pose: Result<RigidTransform, SequenceError>
    }

    public let file: URL
    public let name: String
    public var layout: String { "scannet" }
    public let sensorName: String
    /// Depth intrinsics at the depth resolution (the frames').
    public let intrinsics: Intrinsics
    public let colorIntrinsics: Intrinsics
    public let colorCompression: ColorCompression
    public let depthCompression: DepthCompression
    public let capabilities: SequenceCapabilities
    public var classSet: ClassSet? { nil }
    public let entries: [Entry]
    public let declaredCount: Int
    public let stopError: SequenceError?
    public private(set) var assumptions: [String] = []
    public private(set) var warnings: [String] = []
    public var frameCount: Int { entries.count + (stopError == nil ? 0 : 1) }
    private let data: RandomAccessFile
    private let options: ReaderOptions
    private let depthScale: Double
    private let useTimestamps: Bool
    /// For each depth column and row, the colour coordinate on the same ray.
    private let columnMap: [Float], rowMap: [Float]

    public static let version: UInt32 = 4
    /// Longest sensor name accepted (ScanNet's are under 100 characters).
    static let maxNameLength: UInt64 = 4096
    static let frameHeaderSize = 16 * 4 + 4 * 8

    public static func detect(_ url: URL) -> Bool {
        url.pathExtension.lowercased() == "sens" && ReaderSupport.fileExists(url)
    }

    public init(file: URL, options: ReaderOptions = ReaderOptions()) throws {
        self.file = file
        self.options = options
        name = file.deletingPathExtension().lastPathComponent
        data = try RandomAccessFile(file)
        let path = file.path
        func bad(_ reason: String) -> SequenceError { .malformed(path: path, line: nil, reason: reason) }
        guard data.size >= 12 else { throw bad("\(data.size) bytes: too short for a .sens header") }
        var head = ByteCursor(try data.read(at: 0, count: 12, what: "header"))
        let version = head.uint32()!
        guard version == Self.version else {
            throw bad("version \(version); only ScanNet .sens version \(Self.version) is supported")
        }
        let nameLength = head.uint64()!
        let fixed = 4 * 64 + 4 * 2 + 4 * 4 + 4 + 8
        guard nameLength <= Self.maxNameLength, Int64(nameLength) + 12 + Int64(fixed) <= data.size else {
            throw bad("the sensor name is \(nameLength) bytes long; at most \(Self.maxNameLength) and within the \(data.size)-byte file")
        }
        var cursor = ByteCursor(try data.read(at: 12, count: Int(nameLength) + fixed, what: "header"))
        sensorName = String(decoding: cursor.take(Int(nameLength))!, as: UTF8.self)
        let matrices = (0..<4).map { _ in (0..<16).map { _ in Double(cursor.float32()!) } }
        let colorType = cursor.int32()!, depthType = cursor.int32()!
        let colorWidth = Int(cursor.uint32()!), colorHeight = Int(cursor.uint32()!)
        let depthWidth = Int(cursor.uint32()!), depthHeight = Int(cursor.uint32()!)
        let shift = Double(cursor.float32()!)
        let count = cursor.uint64()!
        let colorNames = [-1: "unknown", 1: "png"], depthNames = [-1: "unknown", 2: "occi_ushort"]
        guard let colorKind = ColorCompression(rawValue: colorType) else {
            throw bad("colour compression type \(colorType) (\(colorNames[Int(colorType)] ?? "not a defined type")) is not supported; raw (0), png (1) and jpeg (2) are")
        }
        guard let depthKind = DepthCompression(rawValue: depthType) else {
            throw bad("depth compression type \(depthType) (\(depthNames[Int(depthType)] ?? "not a defined type")) is not supported; raw_ushort (0) and zlib_ushort (1) are")
        }
        colorCompression = colorKind
        depthCompression = depthKind
        for (value, field) in [(colorWidth, "colour width"), (colorHeight, "colour height"), (depthWidth, "depth width"), (depthHeight, "depth height")] {
            if let problem = InputLimits.check(value, field, in: InputLimits.imageSide) { throw bad(problem) }
        }
        if let problem = InputLimits.depthScale(shift, "depth shift") { throw bad(problem) }
        guard count > 0 else { throw bad("the frame count is 0") }
        declaredCount = count > UInt64(Int32.max) ? Int(Int32.max) : Int(count)
        depthScale = try ReaderSupport.depthScale(options, default: shift)

        func intrinsicsOf(_ m: [Double], width: Int, height: Int) -> Intrinsics {
            Intrinsics(fx: m[0], fy: m[5], cx: m[2], cy: m[6], width: width, height: height)
        }
        let depthK = options.intrinsics?.intrinsics(width: depthWidth, height: depthHeight) ?? intrinsicsOf(matrices[2], width: depthWidth, height: depthHeight)
        if let w = options.intrinsics?.width, let h = options.intrinsics?.height, w != depthWidth || h != depthHeight {
            throw SequenceError.invalidIntrinsics(path: path, reason: "--intrinsics gives \(w)x\(h); the scan's depth images are \(depthWidth)x\(depthHeight)")
        }
        let d = try ReaderSupport.validated(depthK, source: "\(path) (depth intrinsics)")
        let c = try ReaderSupport.validated(intrinsicsOf(matrices[0], width: colorWidth, height: colorHeight), source: "\(path) (colour intrinsics)")
        intrinsics = d
        colorIntrinsics = c
        columnMap = (0..<depthWidth).map { u in Float(c.fx * (Double(u) - d.cx) / d.fx + c.cx) }
        rowMap = (0..<depthHeight).map { v in Float(c.fy * (Double(v) - d.cy) / d.fy + c.cy) }
        if colorWidth != depthWidth || colorHeight != depthHeight {
            assumptions.append("colour \(colorWidth)x\(colorHeight) registered to the \(depthWidth)x\(depthHeight) depth through both intrinsics (same optical centre, as ScanNet's tools assume)")
        }

        let headerEnd = 12 + Int64(nameLength) + Int64(fixed)
        let index = try Self.index(data, from: headerEnd, declared: declaredCount)
        entries = index.entries
        stopError = index.stop
        guard !entries.isEmpty else { throw index.stop! }
        if let stop = index.stop {
            warnings.append("\(path): the header declares \(count) frames but only the first \(entries.count) can be read; "
                            + "reading stops with an error at frame \(entries.count): \(stop)")
        }
        let invalid = entries.enumerated().filter { if case .failure = $0.element.pose { return true } else { return false } }
        if let first = invalid.first {
            warnings.append("\(path): \(invalid.count) of \(entries.count) frames have no valid pose (first: frame \(first.offset)); "
                            + "they are left out of the tracking score and the scan is tracked, not fused with ground truth")
        }
        let stamps = entries.map(\.timestamp)
        useTimestamps = zip(stamps, stamps.dropFirst()).allSatisfy { $0 < $1 }
        if !useTimestamps { assumptions.append("timestamps: the scan's are not increasing (ScanNet often stores 0); frame numbers are used") }
        // The resampling above ignores the cameras' offset, so colour is near, not on, the depth.
        capabilities = SequenceCapabilities(hasDepth: true, hasPoses: invalid.isEmpty, colorRegisteredToDepth: false)
    }

    /// Frame headers, seeking over the images; stops at the first frame that cannot be read.
    static func index(_ data: RandomAccessFile, from start: Int64, declared: Int) throws -> (entries: [Entry], stop: SequenceError?) {
        var entries: [Entry] = []
        var offset = start
        let path = data.path
        for i in 0..<declared {
            func stop(_ reason: String) -> SequenceError {
                .malformed(path: path, line: nil, reason: "frame \(i) (offset \(offset)): \(reason)")
            }
            let left = data.size - offset
            if left == 0 { return (entries, stop("the file ends after \(i) frames; the header declares \(declared) (a truncated scan)")) }
            if left < Int64(frameHeaderSize) {
                return (entries, stop("the file ends inside the \(frameHeaderSize)-byte frame header (\(left) bytes left; a truncated scan)"))
            }
            var cursor = ByteCursor(try data.read(at: offset, count: frameHeaderSize, what: "frame \(i) header"))
            let m = (0..<16).map { _ in Double(cursor.float32()!) }
            let colorTime = cursor.uint64()!, depthTime = cursor.uint64()!
            let colorSize = cursor.uint64()!, depthSize = cursor.uint64()!
            let body = left - Int64(frameHeaderSize)
            guard colorSize <= UInt64(body), depthSize <= UInt64(body) - colorSize else {
                return (entries, stop("colour \(colorSize) + depth \(depthSize) bytes run past the end of the file (\(body) bytes left)"))
            }
            if depthSize == 0 { return (entries, stop("the depth block is empty")) }
            let pose: Result<RigidTransform, SequenceError>
            if !m.allSatisfy(\.isFinite) {
                pose = .failure(stop("the pose is invalid (non-finite values; ScanNet marks frames it could not register with -inf)"))
            } else {
                let matrix = RigidTransform(matrix4RowMajor: m)
                do {
                    pose = .success(try ReaderSupport.rigid(rotation: matrix.rotation, translation: matrix.translation, path: "\(path) frame \(i)", line: nil).pose)
                } catch let error as SequenceError {
                    pose = .failure(error)
                }
            }
            entries.append(Entry(offset: offset + Int64(frameHeaderSize), colorSize: Int(colorSize), depthSize: Int(depthSize),
                                 timestamp: depthTime != 0 ? depthTime : colorTime, pose: pose))
            offset += Int64(frameHeaderSize) + Int64(colorSize) + Int64(depthSize)
        }
        return (entries, nil)
    }

    public func frame(at index: Int) throws -> Frame {
        let entry = try self.entry(index)
        let (w, h) = (intrinsics.width, intrinsics.height)
        let path = file.path
        func bad(_ reason: String) -> SequenceError { .malformed(path: path, line: nil, reason: "frame \(index) (offset \(entry.offset)): \(reason)") }
        let bytes = try data.read(at: entry.offset, count: entry.colorSize + entry.depthSize, what: "frame \(index)")
        let depthBlock = bytes[entry.colorSize...]
        let raw: [UInt8]
        switch depthCompression {
        case .raw:
            guard depthBlock.count == w * h * 2 else { throw bad("raw depth of \(depthBlock.count) bytes, expected \(w)x\(h)x2 = \(w * h * 2)") }
            raw = Array(depthBlock)
        case .zlib:
            switch Zlib.inflate(depthBlock, expected: w * h * 2) {
            case .success(let out): raw = out
            case .failure(let error): throw bad("depth block of \(depthBlock.count) bytes \(error) (\(w)x\(h) uint16 = \(w * h * 2) bytes)")
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
        let colorBlock = bytes[0..<entry.colorSize]
        let cw = colorIntrinsics.width, ch = colorIntrinsics.height
        let color: ColorImage
        switch colorCompression {
        case .raw:
            guard colorBlock.count == cw * ch * 3 else { throw bad("raw colour of \(colorBlock.count) bytes, expected \(cw)x\(ch)x3 = \(cw * ch * 3)") }
            color = ColorImage(width: cw, height: ch, pixels: (0..<(cw * ch)).map { RGB8(colorBlock[3 * $0], colorBlock[3 * $0 + 1], colorBlock[3 * $0 + 2]) })
        case .jpeg:
            color = try ReaderSupport.image { try JPEGCodec.decode(Data(colorBlock), path: "\(path) frame \(index) colour") }
        case .png:
            color = try ReaderSupport.image { try PNGCodec.readRGB(data: Data(colorBlock), path: "\(path) frame \(index) colour") }
        }
        guard color.width == cw, color.height == ch else {
            throw bad("the colour image is \(color.width)x\(color.height), the header says \(cw)x\(ch)")
        }
        var frame = Frame(index: index, timestamp: timestamp(index, entry), color: register(color),
                          depth: DepthImage(width: w, height: h, pixels: metres), source: "\(path) frame \(index)")
        switch entry.pose {
        case .success(let pose): frame.worldFromCamera = pose
        case .failure(let error): frame.poseError = error
        }
        return frame
    }

    public func groundTruth(at index: Int) throws -> (timestamp: Double, pose: RigidTransform?, poseError: SequenceError?) {
        let entry = try self.entry(index)
        switch entry.pose {
        case .success(let pose): return (timestamp(index, entry), pose, nil)
        case .failure(let error): return (timestamp(index, entry), nil, error)
        }
    }

    private func timestamp(_ index: Int, _ entry: Entry) -> Double {
        useTimestamps ? Double(entry.timestamp) / 1e6 : Double(index)
    }

    /// The colour on each depth pixel's ray, bilinearly (identity when the cameras match).
    func register(_ color: ColorImage) -> ColorImage {
        let w = intrinsics.width, h = intrinsics.height
        if color.width == w && color.height == h && colorIntrinsics == intrinsics { return color }
        let cw = color.width, ch = color.height
        var out = [RGB8](repeating: .black, count: w * h)
        for y in 0..<h {
            let sy = rowMap[y]
            guard sy >= 0, sy <= Float(ch - 1) else { continue }
            let y0 = min(Int(sy), ch - 1), y1 = min(y0 + 1, ch - 1)
            let fy = sy - Float(y0)
            for x in 0..<w {
                let sx = columnMap[x]
                guard sx >= 0, sx <= Float(cw - 1) else { continue }
                let x0 = min(Int(sx), cw - 1), x1 = min(x0 + 1, cw - 1)
                let fx = sx - Float(x0)
                let a = color.pixels[y0 * cw + x0], b = color.pixels[y0 * cw + x1]
                let c = color.pixels[y1 * cw + x0], d = color.pixels[y1 * cw + x1]
                func mix(_ p: UInt8, _ q: UInt8, _ r: UInt8, _ s: UInt8) -> UInt8 {
                    let top = Float(p) + (Float(q) - Float(p)) * fx
                    let bottom = Float(r) + (Float(s) - Float(r)) * fx
                    return UInt8(max(0, min(255, (top + (bottom - top) * fy).rounded())))
                }
                out[y * w + x] = RGB8(mix(a.r, b.r, c.r, d.r), mix(a.g, b.g, c.g, d.g), mix(a.b, b.b, c.b, d.b))
            }
        }
        return ColorImage(width: w, height: h, pixels: out)
    }

    private func entry(_ index: Int) throws -> Entry {
        guard index >= 0, index < frameCount else { throw SequenceError.frameOutOfRange(index: index, count: frameCount) }
        if index == entries.count, let stopError { throw stopError }
        return entries[index]
    }
}
