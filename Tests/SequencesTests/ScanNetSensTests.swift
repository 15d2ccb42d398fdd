import Foundation
import XCTest
import Geometry
import Imaging
import TestSupport
@testable import Sequences

/// Issue 13: ScanNet .sens scans through a writer made from the format's description
/// (`SensFile`): round trips, colour registration, invalid poses, and every bad input.
final class ScanNetSensTests: XCTestCase {
    static func depthBlock(_ values: [UInt16]) -> [UInt8] {
        var out: [UInt8] = []
        for v in values { out.appendLittleEndian(v) }
        return Zlib.compress(out)!
    }

    static func rawRGB(_ image: ColorImage) -> [UInt8] { image.pixels.flatMap { [$0.r, $0.g, $0.b] } }

    static func poseMatrix(_ pose: RigidTransform) -> [Float] { pose.matrix4RowMajor.map(Float.init) }

    /// A scan of the synthetic KLG test frames at 32x24 with JPEG colour at the same size.
    static func scan(count: Int = 3, colorCompression: Int32 = 2) throws -> (SensFile, [Frame]) {
        let frames = (0..<count).map { KLGTests.frame($0) }
        let k = SensFile.intrinsics(fx: 30, fy: 30, cx: 16, cy: 12)
        var file = SensFile(colorIntrinsics: k, depthIntrinsics: k, colorSize: (32, 24), depthSize: (32, 24))
        file.colorCompression = colorCompression
        for f in frames {
            let color: [UInt8]
            switch colorCompression {
            case 0: color = rawRGB(f.color)
            case 1: color = [UInt8](try PNGCodec.encodeRGB(f.color))
            default: color = [UInt8](try JPEGCodec.encode(f.color, quality: 95))
            }
            file.records.append(.init(pose: poseMatrix(f.worldFromCamera!), colorTime: UInt64(f.timestamp * 1e6),
                                      depthTime: UInt64(f.timestamp * 1e6), color: color,
                                      depth: depthBlock(SequenceWriters.quantise(f.depth!, scale: 1000))))
        }
        return (file, frames)
    }

    private func sequenceError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        var text = ""
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is SequenceError, "\(type(of: error)): \(error)", file: file, line: line)
            text = "\(error)"
        }
        return text
    }

    func testRoundTripEveryColourCompression() throws {
        let dir = try SharedData.temporaryDirectory(self)
        for type: Int32 in [0, 1, 2] {
            let (file, frames) = try Self.scan(colorCompression: type)
            let url = dir.appendingPathComponent("scene\(type).sens")
            try file.write(to: url)
            let reader = try ScanNetSensReader(file: url, options: KLGTests.keepAll)
            XCTAssertEqual(reader.frameCount, 3)
            XCTAssertEqual(reader.sensorName, "StructureSensor")
            XCTAssertEqual(reader.intrinsics, Intrinsics(fx: 30, fy: 30, cx: 16, cy: 12, width: 32, height: 24))
            XCTAssertTrue(reader.capabilities.hasPoses)
            XCTAssertFalse(reader.capabilities.colorRegisteredToDepth, "colour resampled without the cameras' offset")
            for (k, original) in frames.enumerated() {
                let read = try reader.frame(at: k)
                XCTAssertEqual(read.depth!.pixels.map { ($0 * 1000).rounded() }, original.depth!.pixels.map { ($0 * 1000).rounded() })
                if type == 2 {
                    let error = zip(read.color.pixels, original.color.pixels).map { abs(Int($0.r) - Int($1.r)) + abs(Int($0.g) - Int($1.g)) }.reduce(0, +)
                    XCTAssertLessThan(Double(error) / Double(read.color.count * 2), 4, "JPEG q95 error")
                } else {
                    XCTAssertEqual(read.color.pixels, original.color.pixels, "lossless colour (type \(type))")
                }
                XCTAssertEqual(read.timestamp, original.timestamp, accuracy: 1e-5)
                let t = read.worldFromCamera!.translation - original.worldFromCamera!.translation
                XCTAssertLessThan((t * t).sum().squareRoot(), 1e-6)
            }
        }
    }

    /// Real kitchen frames through a .sens: depth identical, colour within JPEG error.
    func testRealFramesRoundTrip() throws {
        let input = try SharedData.require("7scenes-redkitchen-png50")
        let source = try SevenScenesReader(folder: input, options: KLGTests.keepAll)
        let k = source.intrinsics
        let m = SensFile.intrinsics(fx: Float(k.fx), fy: Float(k.fy), cx: Float(k.cx), cy: Float(k.cy))
        var file = SensFile(colorIntrinsics: m, depthIntrinsics: m, colorSize: (640, 480), depthSize: (640, 480))
        let frames = try (0..<3).map { try source.frame(at: $0) }
        for f in frames {
            file.records.append(.init(pose: Self.poseMatrix(f.worldFromCamera!), colorTime: 0, depthTime: 0,
                                      color: [UInt8](try JPEGCodec.encode(f.color, quality: 90)),
                                      depth: Self.depthBlock(SequenceWriters.quantise(f.depth!, scale: 1000))))
        }
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("scene0000_00.sens")
        try file.write(to: url)
        let reader = try SequenceLoader.open(url, options: KLGTests.keepAll)
        XCTAssertEqual(reader.layout, "scannet")
        XCTAssertTrue(reader.assumptions.contains { $0.contains("frame numbers are used") }, "ScanNet's zero timestamps")
        for (n, f) in frames.enumerated() {
            let read = try reader.frame(at: n)
            XCTAssertEqual(read.depth!.pixels, f.depth!.pixels)
            XCTAssertEqual(read.timestamp, Double(n))
            let mean = Double(zip(read.color.pixels, f.color.pixels).map { abs(Int($0.g) - Int($1.g)) }.reduce(0, +)) / Double(f.color.count)
            XCTAssertLessThan(mean, 3)
        }
    }

    /// Colour at twice the depth resolution with its own intrinsics is registered onto the depth
    /// pixels: a smooth image comes back within a grey level or two of the depth-sized original.
    func testColourIsRegisteredThroughBothIntrinsics() throws {
        let (w, h) = (40, 30)
        let depthK = Intrinsics(fx: 36, fy: 36, cx: 19.5, cy: 14.5, width: w, height: h)
        let colorK = depthK.scaled(toWidth: 2 * w, height: 2 * h)
        // A smooth colour field defined on the ray direction, so both images show the same scene.
        func field(_ x: Double, _ y: Double) -> RGB8 { RGB8(UInt8(128 + 100 * x), UInt8(128 + 100 * y), UInt8(128 + 60 * x * y)) }
        func render(_ k: Intrinsics) -> ColorImage {
            ColorImage(width: k.width, height: k.height, pixels: (0..<(k.width * k.height)).map { p in
                field((Double(p % k.width) - k.cx) / k.fx, (Double(p / k.width) - k.cy) / k.fy)
            })
        }
        let expected = render(depthK)
        func matrix(_ k: Intrinsics) -> [Float] { SensFile.intrinsics(fx: Float(k.fx), fy: Float(k.fy), cx: Float(k.cx), cy: Float(k.cy)) }
        var file = SensFile(colorIntrinsics: matrix(colorK), depthIntrinsics: matrix(depthK), colorSize: (2 * w, 2 * h), depthSize: (w, h))
        file.colorCompression = 0
        file.records.append(.init(pose: SensFile.identity, colorTime: 1, depthTime: 1, color: Self.rawRGB(render(colorK)),
                                  depth: Self.depthBlock([UInt16](repeating: 1500, count: w * h))))
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("registered.sens")
        try file.write(to: url)
        let reader = try ScanNetSensReader(file: url)
        XCTAssertEqual(reader.intrinsics, depthK)
        let frame = try reader.frame(at: 0)
        XCTAssertEqual(frame.color.width, w)
        var worst = 0
        for (a, b) in zip(frame.color.pixels, expected.pixels) {
            worst = max(worst, abs(Int(a.r) - Int(b.r)), abs(Int(a.g) - Int(b.g)), abs(Int(a.b) - Int(b.b)))
        }
        XCTAssertLessThanOrEqual(worst, 2, "registered colour differs by up to \(worst) grey levels")
        XCTAssertTrue(reader.assumptions.contains { $0.contains("registered") })
    }

    func testInvalidPosesAreNotGroundTruth() throws {
        var (file, _) = try Self.scan(count: 3)
        file.records[1].pose = [Float](repeating: -.infinity, count: 16)
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("inf.sens")
        try file.write(to: url)
        let reader = try ScanNetSensReader(file: url)
        XCTAssertFalse(reader.capabilities.hasPoses, "not every frame has a pose: runs track")
        XCTAssertTrue(reader.warnings.contains { $0.contains("1 of 3 frames have no valid pose") }, "\(reader.warnings)")
        let frame = try reader.frame(at: 1)
        XCTAssertNil(frame.worldFromCamera)
        XCTAssertTrue("\(try XCTUnwrap(frame.poseError))".contains("-inf"))
        XCTAssertNotNil(try reader.frame(at: 2).worldFromCamera)
        XCTAssertNotNil(try reader.groundTruth(at: 1).poseError)
    }

    // MARK: bad input

    func testUnsupportedVersionsAndCompressions() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("bad.sens")
        let cases: [(WritableKeyPath<SensFile, Int32>?, Int32, String)] = [
            (\.colorCompression, -1, "colour compression type -1 (unknown)"),
            (\.colorCompression, 7, "colour compression type 7 (not a defined type)"),
            (\.depthCompression, 2, "depth compression type 2 (occi_ushort) is not supported"),
            (\.depthCompression, -1, "depth compression type -1 (unknown)"),
        ]
        for (path, value, expected) in cases {
            var (file, _) = try Self.scan(count: 1)
            file[keyPath: path!] = value
            try file.write(to: url)
            let message = sequenceError { _ = try ScanNetSensReader(file: url) }
            XCTAssertTrue(message.contains(url.path) && message.contains(expected), message)
        }
        var (file, _) = try Self.scan(count: 1)
        file.version = 5
        try file.write(to: url)
        XCTAssertTrue(sequenceError { _ = try ScanNetSensReader(file: url) }.contains("version 5; only ScanNet .sens version 4"))
        file.version = 4
        file.sensorName = String(repeating: "x", count: 5000)
        try file.write(to: url)
        XCTAssertTrue(sequenceError { _ = try ScanNetSensReader(file: url) }.contains("sensor name is 5000 bytes"))
        file.sensorName = "s"
        file.depthShift = .nan
        try file.write(to: url)
        XCTAssertTrue(sequenceError { _ = try ScanNetSensReader(file: url) }.contains("depth shift is nan"))
        file.depthShift = 1000
        file.colorWidth = 0
        try file.write(to: url)
        XCTAssertTrue(sequenceError { _ = try ScanNetSensReader(file: url) }.contains("colour width is 0"))
    }

    func testTruncatedScansAndBadFrames() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let url = dir.appendingPathComponent("cut.sens")
        // A count far beyond the frames present: the three frames are read, frame 3 says why not.
        var (file, _) = try Self.scan(count: 3)
        file.declaredCount = UInt64.max
        try file.write(to: url)
        let reader = try ScanNetSensReader(file: url)
        XCTAssertEqual(reader.frameCount, 4)
        XCTAssertNoThrow(try reader.frame(at: 2))
        let m1 = sequenceError { _ = try reader.frame(at: 3) }
        XCTAssertTrue(m1.contains(url.path) && m1.contains("frame 3") && m1.contains("frame header"), m1)

        // Frame 1's sizes run past the end.
        (file, _) = try Self.scan(count: 2)
        file.imuSection = false
        var bytes = file.encode()
        bytes.removeLast(10)
        try Data(bytes).write(to: url)
        let r2 = try ScanNetSensReader(file: url)
        XCTAssertEqual(r2.frameCount, 2)
        let m2 = sequenceError { _ = try r2.frame(at: 1) }
        XCTAssertTrue(m2.contains("frame 1") && m2.contains("run past the end"), m2)

        // Depth that inflates to the wrong size; a corrupt JPEG.
        (file, _) = try Self.scan(count: 3)
        file.records[1].depth = Self.depthBlock([UInt16](repeating: 1000, count: 32 * 20))
        file.records[2].color = Array(file.records[2].color.prefix(60)) + [UInt8](repeating: 0, count: 40)
        try file.write(to: url)
        let r3 = try ScanNetSensReader(file: url)
        XCTAssertNoThrow(try r3.frame(at: 0))
        let m3 = sequenceError { _ = try r3.frame(at: 1) }
        XCTAssertTrue(m3.contains("frame 1") && m3.contains("inflates to 1280 bytes, expected 1536"), m3)
        let m4 = sequenceError { _ = try r3.frame(at: 2) }
        XCTAssertTrue(m4.contains(url.path) && m4.contains("frame 2"), m4)

        try Data([4, 0, 0]).write(to: url)
        XCTAssertTrue(sequenceError { _ = try ScanNetSensReader(file: url) }.contains("too short"))
    }
}
