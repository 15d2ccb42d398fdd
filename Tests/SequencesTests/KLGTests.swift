import Foundation
import XCTest
import Geometry
import Imaging
import TestSupport
@testable import Sequences

/// Issue 13: ElasticFusion .klg logs: round trips, the raw/compressed rules, defaults, streaming,
/// and every bad input named by file and frame.
final class KLGTests: XCTestCase {
    /// A small synthetic frame: a colour gradient and a depth ramp with holes.
    static func frame(_ n: Int, width w: Int = 32, height h: Int = 24) -> Frame {
        let color = ColorImage(width: w, height: h, pixels: (0..<(w * h)).map { p in
            RGB8(UInt8((p % w) * 255 / w), UInt8((p / w) * 255 / h), UInt8((n * 37) % 256))
        })
        let depth = DepthImage(width: w, height: h, pixels: (0..<(w * h)).map { p in
            p % 7 == 3 ? 0 : Float(500 + (p * 13 + n * 101) % 3000) / 1000
        })
        var f = Frame(index: n, timestamp: 1000 + Double(n) / 30, color: color, depth: depth)
        f.worldFromCamera = RigidTransform(translation: SIMD3(0.01 * Double(n), 0, 0), quaternion: SIMD4(0, 0, 0, 1))
        return f
    }

    static func intrinsics(_ w: Int = 32, _ h: Int = 24) -> Intrinsics {
        Intrinsics(fx: 30, fy: 30, cx: Double(w) / 2, cy: Double(h) / 2, width: w, height: h)
    }

    /// Writes `count` synthetic frames as a log.
    @discardableResult
    static func writeLog(_ url: URL, count: Int, jpegQuality: Int? = nil, width: Int = 32, height: Int = 24) throws -> [Frame] {
        let writer = try KLGWriter(file: url, intrinsics: intrinsics(width, height), jpegQuality: jpegQuality)
        let frames = (0..<count).map { frame($0, width: width, height: height) }
        for f in frames { try writer.append(f) }
        try writer.complete()
        return frames
    }

    /// The reader's options for exact comparisons: no near/far cut.
    static let keepAll = ReaderOptions(maxDepth: 100, minDepth: 0)

    private func sequenceError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        var text = ""
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is SequenceError, "\(type(of: error)): \(error)", file: file, line: line)
            text = "\(error)"
        }
        return text
    }

    /// A log from hand-made records: (timestamp, depth block, image block), with a declared count.
    static func rawLog(_ url: URL, declared: Int32, records: [(Int64, [UInt8], [UInt8])], sizes: [(Int32, Int32)]? = nil) throws {
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(declared)
        for (k, (t, depth, image)) in records.enumerated() {
            bytes.appendLittleEndian(t)
            bytes.appendLittleEndian(sizes?[k].0 ?? Int32(depth.count))
            bytes.appendLittleEndian(sizes?[k].1 ?? Int32(image.count))
            bytes += depth
            bytes += image
        }
        try Data(bytes).write(to: url)
    }

    static func depthBytes(_ values: [UInt16]) -> [UInt8] {
        var out: [UInt8] = []
        for v in values { out.appendLittleEndian(v) }
        return out
    }

    // MARK: round trips

    func testSyntheticRoundTripIsExactWithRawColour() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("synthetic.klg")
        let frames = try Self.writeLog(url, count: 5)
        let reader = try KLGReader(file: url, options: Self.keepAll)
        XCTAssertEqual(reader.frameCount, 5)
        XCTAssertNil(reader.stopError)
        XCTAssertEqual(reader.intrinsics, Self.intrinsics(), "intrinsics from the sidecar")
        XCTAssertTrue(reader.capabilities.hasPoses, "ground truth from the sidecar")
        XCTAssertTrue(reader.capabilities.colorRegisteredToDepth, "ElasticFusion's loggers register depth to colour")
        // Synthetic depth compresses: every block is zlib, and colour is raw RGB.
        XCTAssertTrue(reader.entries.allSatisfy { $0.depthSize < 32 * 24 * 2 && $0.imageSize == 32 * 24 * 3 })
        for (k, original) in frames.enumerated() {
            let read = try reader.frame(at: k)
            XCTAssertEqual(read.color.pixels, original.color.pixels)
            let mm = original.depth!.pixels.map { ($0 * 1000).rounded() / 1000 }
            XCTAssertEqual(read.depth!.pixels.map { ($0 * 1000).rounded() }, mm.map { ($0 * 1000).rounded() })
            XCTAssertEqual(read.timestamp, original.timestamp, accuracy: 1e-6)
            let pose = try XCTUnwrap(read.worldFromCamera)
            XCTAssertEqual(pose.translation.x, original.worldFromCamera!.translation.x, accuracy: 1e-6)
        }
        // Random access: the last frame without the ones before it.
        XCTAssertEqual(try KLGReader(file: url).frame(at: 4).color.pixels, frames[4].color.pixels)
    }

    /// Folder → .klg → 7-Scenes folder on the real PNG frames: depth identical, colour within
    /// JPEG quality-90 error, poses and intrinsics kept.
    func testRealFolderRoundTrip() throws {
        let input = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        let source = try SevenScenesReader(folder: input, options: Self.keepAll)
        let log = dir.appendingPathComponent("kitchen.klg")
        let writer = try KLGWriter(file: log, intrinsics: source.intrinsics)
        for k in 0..<6 { try writer.append(try source.frame(at: k)) }
        try writer.complete()

        let klg = try KLGReader(file: log, options: Self.keepAll)
        XCTAssertEqual(klg.intrinsics, source.intrinsics)
        let back = dir.appendingPathComponent("back")
        let folderWriter = try SevenScenesWriter(folder: back, intrinsics: klg.intrinsics)
        for k in 0..<6 { try folderWriter.append(try klg.frame(at: k)) }
        try folderWriter.complete()
        let again = try SevenScenesReader(folder: back, options: Self.keepAll)
        XCTAssertEqual(again.frameCount, 6)
        XCTAssertEqual(again.intrinsics, source.intrinsics)
        for k in 0..<6 {
            let a = try source.frame(at: k), b = try again.frame(at: k), c = try klg.frame(at: k)
            XCTAssertEqual(a.depth!.pixels, b.depth!.pixels, "frame \(k): depth must survive exactly")
            XCTAssertEqual(a.depth!.pixels, c.depth!.pixels)
            var total = 0, worst = 0
            for (p, q) in zip(a.color.pixels, b.color.pixels) {
                for (x, y) in [(p.r, q.r), (p.g, q.g), (p.b, q.b)] { let d = abs(Int(x) - Int(y)); total += d; worst = max(worst, d) }
            }
            let mean = Double(total) / Double(a.color.count * 3)
            XCTAssertLessThan(mean, 3, "frame \(k): mean colour error \(mean) beyond JPEG q90")
            XCTAssertGreaterThan(mean, 0, "colour went through JPEG")
            let pa = try XCTUnwrap(a.worldFromCamera), pb = try XCTUnwrap(b.worldFromCamera)
            XCTAssertLessThan(((pa.translation - pb.translation) * (pa.translation - pb.translation)).sum().squareRoot(), 1e-6)
        }
    }

    // MARK: the format's rules

    func testRawBlocksDefaultsAndSizeInference() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("raw.klg")
        // 640x480 raw depth, no colour: ElasticFusion's size and calibration are assumed.
        let depth = Self.depthBytes((0..<(640 * 480)).map { UInt16($0 % 4000) })
        try Self.rawLog(url, declared: 1, records: [(2_000_000, depth, [])])
        let reader = try KLGReader(file: url)
        XCTAssertEqual(reader.intrinsics, KLGReader.elasticFusionIntrinsics)
        XCTAssertTrue(reader.assumptions.contains { $0.contains("528") }, "\(reader.assumptions)")
        let frame = try reader.frame(at: 0)
        XCTAssertEqual(frame.timestamp, 2)
        XCTAssertEqual(frame.depth![1000, 0], 1.0, accuracy: 1e-6, "raw uint16 mm read as metres")
        XCTAssertEqual(frame.color.pixels.first, .black, "absent colour is black")
        XCTAssertFalse(reader.capabilities.hasPoses)

        // 160x120 raw RGB and zlib depth: the size comes from the colour's byte count (4:3).
        let small = dir.appendingPathComponent("small.klg")
        let rgb = (0..<(160 * 120 * 3)).map { UInt8($0 % 251) }
        let z = Zlib.compress(Self.depthBytes([UInt16](repeating: 1234, count: 160 * 120)))!
        try Self.rawLog(small, declared: 1, records: [(0, z, rgb)])
        let r2 = try KLGReader(file: small)
        XCTAssertEqual(r2.intrinsics.width, 160)
        XCTAssertEqual(r2.intrinsics.height, 120)
        XCTAssertEqual(r2.intrinsics.fx, 528 * 160 / 640, accuracy: 1e-9)
        XCTAssertEqual(r2.intrinsics.cx, 80)
        XCTAssertEqual(try r2.frame(at: 0).depth![5, 5], 1.234, accuracy: 1e-6)
        XCTAssertEqual(try r2.frame(at: 0).color.pixels[1], RGB8(3, 4, 5))

        // --intrinsics overrides, with the size given.
        var options = ReaderOptions()
        options.intrinsics = .init(fx: 100, fy: 100, cx: 80, cy: 60, width: 160, height: 120)
        XCTAssertEqual(try KLGReader(file: small, options: options).intrinsics.fx, 100)
    }

    /// The writer stores depth raw when zlib does not shrink it, so no block is ambiguous.
    func testIncompressibleDepthIsStoredRaw() throws {
        var f = Self.frame(0)
        var state: UInt64 = 12345
        f.depth = DepthImage(width: 32, height: 24, pixels: (0..<(32 * 24)).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(1 + (state >> 33) % 65534) / 1000
        })
        let record = try KLGWriter.record(f, intrinsics: Self.intrinsics(), jpegQuality: nil, path: "x.klg")
        var cursor = ByteCursor(record)
        _ = cursor.int64()
        XCTAssertEqual(cursor.int32(), Int32(32 * 24 * 2), "incompressible depth stored raw")
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("noise.klg")
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(Int32(1))
        try Data(bytes + record).write(to: url)
        var options = Self.keepAll
        options.intrinsics = .init(fx: 30, fy: 30, cx: 16, cy: 12, width: 32, height: 24)
        let read = try KLGReader(file: url, options: options).frame(at: 0)
        XCTAssertEqual(read.depth!.pixels.map { ($0 * 1000).rounded() }, f.depth!.pixels.map { ($0 * 1000).rounded() })
    }

    // MARK: bad input

    func testTruncatedLogKeepsTheFramesPresent() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("cut.klg")
        try Self.writeLog(url, count: 4)
        // The header says 4; cut the file inside frame 3.
        let data = try Data(contentsOf: url)
        let reader0 = try KLGReader(file: url)
        let cut = Int(reader0.entries[3].offset) + 10
        try data.prefix(cut).write(to: url)
        let reader = try KLGReader(file: url)
        XCTAssertEqual(reader.entries.count, 3)
        XCTAssertEqual(reader.frameCount, 4, "the faulty frame is where reading stops")
        XCTAssertNoThrow(try reader.frame(at: 2))
        let message = sequenceError { _ = try reader.frame(at: 3) }
        XCTAssertTrue(message.contains(url.path) && message.contains("frame 3") && message.contains("past the end"), message)
        XCTAssertTrue(reader.warnings.contains { $0.contains("declares 4 frames but only the first 3") }, "\(reader.warnings)")

        // Ends exactly after frame 1: a count larger than the frames present.
        try data.prefix(Int(reader0.entries[2].offset) - 16).write(to: url)
        let r2 = try KLGReader(file: url)
        XCTAssertEqual(r2.frameCount, 3)
        let m2 = sequenceError { _ = try r2.frame(at: 2) }
        XCTAssertTrue(m2.contains("frame 2") && m2.contains("ends after 2 frames"), m2)
    }

    /// A header count smaller than the frames present: the declared frames are read (as
    /// ElasticFusion would) and the bytes after them are reported.
    func testBytesAfterTheDeclaredFramesAreReported() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("short-count.klg")
        try Self.writeLog(url, count: 3)
        var data = try Data(contentsOf: url)
        data.replaceSubrange(0..<4, with: [2, 0, 0, 0])
        try data.write(to: url)
        let reader = try KLGReader(file: url)
        XCTAssertEqual(reader.frameCount, 2)
        XCTAssertNil(reader.stopError)
        XCTAssertTrue(reader.warnings.contains { $0.contains("bytes after the 2 frames the header declares were ignored") }, "\(reader.warnings)")
    }

    func testAbsurdCountAllocatesOnlyWhatTheFileHolds() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("absurd.klg")
        try Self.writeLog(url, count: 2)
        var data = try Data(contentsOf: url)
        data.replaceSubrange(0..<4, with: [0xFF, 0xFF, 0xFF, 0x7F])
        try data.write(to: url)
        let reader = try KLGReader(file: url)
        XCTAssertEqual(reader.declaredCount, Int(Int32.max))
        XCTAssertEqual(reader.frameCount, 3)
        XCTAssertTrue(sequenceError { _ = try reader.frame(at: 2) }.contains("ends after 2 frames"))

        for (count, expected) in [(Int32(0), "frame count is 0"), (Int32(-5), "frame count -5 is negative")] {
            var bytes = data
            bytes.replaceSubrange(0..<4, with: withUnsafeBytes(of: count.littleEndian, Array.init))
            try bytes.write(to: url)
            let message = sequenceError { _ = try KLGReader(file: url) }
            XCTAssertTrue(message.contains(url.path) && message.contains(expected), message)
        }
        try Data([1, 0]).write(to: url)
        XCTAssertTrue(sequenceError { _ = try KLGReader(file: url) }.contains("too short"))
    }

    func testNegativeAndOversizedBlockSizes() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("sizes.klg")
        let depth = Zlib.compress(Self.depthBytes([UInt16](repeating: 1000, count: 32 * 24)))!
        let rgb = [UInt8](repeating: 7, count: 32 * 24 * 3)
        var options = ReaderOptions()
        options.intrinsics = .init(fx: 30, fy: 30, cx: 16, cy: 12, width: 32, height: 24)
        // Frame 1 declares a negative image size.
        try Self.rawLog(url, declared: 2, records: [(0, depth, rgb), (1, depth, rgb)], sizes: [(Int32(depth.count), Int32(rgb.count)), (Int32(depth.count), -3)])
        let reader = try KLGReader(file: url, options: options)
        XCTAssertEqual(reader.frameCount, 2)
        XCTAssertNoThrow(try reader.frame(at: 0))
        let m1 = sequenceError { _ = try reader.frame(at: 1) }
        XCTAssertTrue(m1.contains("frame 1") && m1.contains("negative"), m1)
        // Frame 0 claims 2 GB of depth.
        try Self.rawLog(url, declared: 1, records: [(0, depth, rgb)], sizes: [(Int32.max, Int32(rgb.count))])
        let m2 = sequenceError { _ = try KLGReader(file: url, options: options) }
        XCTAssertTrue(m2.contains(url.path) && m2.contains("frame 0") && m2.contains("run past the end"), m2)
    }

    func testDepthThatDoesNotInflateToTheImageSize() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("depth.klg")
        let good = Zlib.compress(Self.depthBytes([UInt16](repeating: 1000, count: 32 * 24)))!
        let short = Zlib.compress(Self.depthBytes([UInt16](repeating: 1000, count: 32 * 23)))!
        let long = Zlib.compress(Self.depthBytes([UInt16](repeating: 1000, count: 32 * 25)))!
        var garbage = good
        garbage[4] ^= 0xFF
        garbage[5] ^= 0xFF
        let rgb = [UInt8](repeating: 7, count: 32 * 24 * 3)
        try Self.rawLog(url, declared: 5, records: [(0, good, rgb), (1, short, rgb), (2, long, rgb), (3, garbage, rgb), (4, Array(good.prefix(10)), rgb)])
        let reader = try KLGReader(file: url)
        XCTAssertEqual(reader.intrinsics.width, 32)
        XCTAssertNoThrow(try reader.frame(at: 0))
        for (k, expected) in [(1, "inflates to 1472 bytes, expected 1536"), (2, "more than the expected 1536"),
                              (3, "depth block"), (4, "truncated")] {
            let message = sequenceError { _ = try reader.frame(at: k) }
            XCTAssertTrue(message.contains(url.path) && message.contains("frame \(k)") && message.contains(expected), message)
        }
    }

    func testCorruptJPEGInFrameN() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("jpeg.klg")
        try Self.writeLog(url, count: 3, jpegQuality: 90)
        var data = try Data(contentsOf: url)
        let entry = try KLGReader(file: url).entries[2]
        // Overwrite the middle of frame 2's JPEG (past its header) with garbage.
        let start = Int(entry.offset) + entry.depthSize + entry.imageSize / 2
        for i in start..<(start + 40) { data[i] = 0x00 }
        data[Int(entry.offset) + entry.depthSize + 1] = 0x00  // and break its SOI marker
        try data.write(to: url)
        let reader = try KLGReader(file: url)
        XCTAssertNoThrow(try reader.frame(at: 1))
        let message = sequenceError { _ = try reader.frame(at: 2) }
        XCTAssertTrue(message.contains(url.path) && message.contains("frame 2"), message)
    }

    func testLoaderOpensLogsAndRefusesOtherFiles() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("a.klg")
        try Self.writeLog(url, count: 1)
        XCTAssertEqual(try SequenceLoader.open(url).layout, "klg")
        let other = dir.appendingPathComponent("a.txt")
        try Data("x".utf8).write(to: other)
        XCTAssertTrue(sequenceError { _ = try SequenceLoader.open(other) }.contains("not a .klg log or a .sens scan"))
    }

    // MARK: streaming

    /// Resident memory stays flat while every frame of a 92 MB log is read: frames are read one
    /// at a time by offset, never the whole file.
    func testReadingDoesNotGrowWithTheNumberOfFrames() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("big.klg")
        // Raw depth and colour at 640x480 (921,600 + 614,400 bytes a frame), 60 frames.
        let writer = try KLGWriter(file: url, intrinsics: Self.intrinsics(640, 480), jpegQuality: nil)
        var state: UInt64 = 1
        let noisy = DepthImage(width: 640, height: 480, pixels: (0..<(640 * 480)).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(1 + (state >> 33) % 65534) / 1000
        })
        for n in 0..<60 {
            var f = Self.frame(n, width: 640, height: 480)
            f.depth = noisy
            try writer.append(f)
        }
        try writer.complete()
        let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int
        XCTAssertGreaterThan(size, 90_000_000)
        let reader = try KLGReader(file: url, options: Self.keepAll)
        XCTAssertEqual(reader.frameCount, 60)
        for k in 0..<5 { _ = try reader.frame(at: k) }
        let before = Self.residentBytes()
        var checksum = 0
        for k in 5..<60 { checksum &+= Int(try reader.frame(at: k).color.pixels[k].b) }
        let grown = Self.residentBytes() - before
        XCTAssertLessThan(grown, 25_000_000, "resident memory grew by \(grown) bytes reading a \(size)-byte log")
        XCTAssertGreaterThan(checksum, 0)
    }

    static func residentBytes() -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0 0"
        let pages = Int(text.split(separator: " ")[1]) ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
