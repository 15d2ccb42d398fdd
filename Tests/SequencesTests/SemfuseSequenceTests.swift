import Foundation
import XCTest
import Geometry
import Imaging
import Semantics
import TestSupport
@testable import Sequences

final class SemfuseSequenceTests: XCTestCase {
    private let intrinsics = Intrinsics(fx: 50, fy: 50, cx: 15.5, cy: 11.5, width: 32, height: 24)

    private func makeFrame(_ i: Int, withProbabilities: Bool = true) -> Frame {
        var color = ColorImage(width: 32, height: 24, repeating: .black)
        var depth = DepthImage(width: 32, height: 24, repeating: 0)
        var labels = LabelImage(width: 32, height: 24, repeating: 3)
        for y in 0..<24 {
            for x in 0..<32 {
                color[x, y] = RGB8(UInt8(x * 8), UInt8(y * 10), UInt8(i))
                depth[x, y] = (x + y) % 7 == 0 ? 0 : 1 + Float(x) * 0.01 + Float(i) * 0.1
                if x < 8 { labels[x, y] = ClassSet.ignoreLabel }
            }
        }
        var probs: ClassProbabilityMap?
        if withProbabilities {
            var v = [Float](repeating: 0.5 / 39, count: 8 * 6 * 40)
            for p in 0..<48 { v[p * 40 + (p + i) % 40] = 0.5 }
            probs = ClassProbabilityMap(width: 8, height: 6, classCount: 40, values: v)
        }
        let pose = RigidTransform.exp(rho: SIMD3(0.1 * Double(i), 0, 0), omega: SIMD3(0, 0.05 * Double(i), 0))
        return Frame(index: i, timestamp: Double(i) / 30, color: color, depth: depth, worldFromCamera: pose, labels: labels, probabilities: probs)
    }

    private func write(_ dir: URL, frames: Int = 3) throws {
        let writer = try SemfuseSequenceWriter(folder: dir, name: "tiny", intrinsics: intrinsics, depthScale: 5000, classSet: .nyu40)
        for i in 0..<frames { try writer.append(makeFrame(i)) }
        try writer.finish(notes: ["test"], generator: ["seed": "1"])
    }

    /// Whether colour is registered to depth, and whether the depth is rendered: as the manifest
    /// states it, or for sequences written before the keys existed, true only for `semfuse synth`'s.
    func testColourRegistrationAndRenderedDepthFromTheManifest() throws {
        for (stated, tool, expected) in [(true, nil, true), (false, SequenceManifest.synthesiser, false),
                                         (nil, SequenceManifest.synthesiser, true), (nil, "semfuse predict", false), (nil, nil, false)] as [(Bool?, String?, Bool)] {
            let dir = try SharedData.temporaryDirectory(self).appendingPathComponent("seq")
            let writer = try SemfuseSequenceWriter(folder: dir, name: "tiny", intrinsics: intrinsics, depthScale: 5000, classSet: .nyu40,
                                                   colorRegisteredToDepth: stated, depthRendered: stated.map { !$0 })
            try writer.append(makeFrame(0))
            try writer.finish(generator: tool.map { ["tool": $0] })
            let json = try String(contentsOf: dir.appendingPathComponent("sequence.json"), encoding: .utf8)
            XCTAssertEqual(json.contains("color_registered_to_depth"), stated != nil)
            XCTAssertEqual(json.contains("depth_rendered"), stated != nil)
            let source = try SequenceLoader.open(dir)
            let why = "stated \(String(describing: stated)), tool \(tool ?? "none")"
            XCTAssertEqual(source.capabilities.colorRegisteredToDepth, expected, why)
            XCTAssertEqual(source.capabilities.depthIsRendered, stated.map { !$0 } ?? expected, why)
        }
    }

    func testRoundTrip() throws {
        let dir = try SharedData.temporaryDirectory(self)
        try write(dir)
        let source = try SequenceLoader.open(dir)
        XCTAssertEqual(source.layout, "semfuse")
        XCTAssertEqual(source.name, "tiny")
        XCTAssertEqual(source.frameCount, 3)
        XCTAssertEqual(source.intrinsics, intrinsics)
        XCTAssertEqual(source.classSet, .nyu40)
        XCTAssertEqual(source.capabilities, SequenceCapabilities(hasDepth: true, hasPoses: true, hasLabels: true, hasProbabilities: true))
        for i in 0..<3 {
            let original = makeFrame(i), read = try source.frame(at: i)
            XCTAssertEqual(read.color.pixels, original.color.pixels)
            XCTAssertEqual(read.labels?.pixels, original.labels?.pixels)
            XCTAssertEqual(read.timestamp, original.timestamp, accuracy: 1e-6)
            let d0 = original.depth!.pixels, d1 = read.depth!.pixels
            for p in 0..<d0.count { XCTAssertEqual(d1[p], d0[p], accuracy: 1 / 10_000) }
            let p0 = original.probabilities!.values, p1 = read.probabilities!.values
            for k in 0..<p0.count { XCTAssertEqual(p1[k], p0[k], accuracy: 1e-3, "float16 storage") }
            let a = original.worldFromCamera!.matrix4RowMajor, b = read.worldFromCamera!.matrix4RowMajor
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        }
    }

    func testNPYRoundTripAndNumpyBytes() throws {
        // Bytes of np.save(f, np.array([[1.5, -2], [0.25, 8]], dtype='<f4')) with numpy 2.x.
        var numpy = Data([0x93] + Array("NUMPY".utf8) + [1, 0, 118, 0])
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"
        numpy.append(contentsOf: Array(dict.utf8))
        numpy.append(contentsOf: Array(repeating: UInt8(0x20), count: 118 - dict.utf8.count - 1) + [0x0A])  // 144 bytes in all
        for v: Float in [1.5, -2, 0.25, 8] { withUnsafeBytes(of: v.bitPattern.littleEndian) { numpy.append(contentsOf: $0) } }
        XCTAssertEqual(numpy.count, 144)
        let parsed = try NPY.decode(numpy, path: "np.npy")
        XCTAssertEqual(parsed, NPYArray(shape: [2, 2], values: [1.5, -2, 0.25, 8]))
        for dtype in [NPY.DType.float32, .float16] {
            let array = NPYArray(shape: [3, 1, 2], values: [0, 1, 2.5, -3, 1e-3, 65504])
            let back = try NPY.decode(NPY.encode(array, dtype: dtype), path: "x")
            XCTAssertEqual(back.shape, [3, 1, 2])
            for (a, b) in zip(array.values, back.values) { XCTAssertEqual(a, b, accuracy: abs(a) * 1e-3) }
        }
        XCTAssertThrowsError(try NPY.decode(numpy.prefix(numpy.count - 3), path: "cut.npy")) {
            XCTAssertTrue("\($0)".contains("cut.npy") && "\($0)".contains("truncated"), "\($0)")
        }
        XCTAssertThrowsError(try NPY.decode(Data("hello world".utf8), path: "no.npy")) { XCTAssertTrue("\($0)".contains("magic")) }
    }

    /// Issue 9: a probability file of shape (C, 0, 0) is a valid NPY file but no image; it used
    /// to trap later when the empty map was resized.
    func testEmptyProbabilityMapIsAnError() throws {
        let url = try SharedData.temporaryDirectory(self).appendingPathComponent("empty.npy")
        try NPY.write(NPYArray(shape: [13, 0, 0], values: []), to: url)
        XCTAssertThrowsError(try SemfuseSequenceReader.readProbabilities(url, classCount: 13, frame: 0)) { error in
            guard case SequenceError.malformed(let path, _, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, url.path)
            XCTAssertTrue(reason.contains("empty 0x0 image"), reason)
        }
    }

    /// Issue 9: an image size of 1e300 in an intrinsics file or argument trapped converting to Int.
    func testIntrinsicsImageSizeMustBeAWholeNumberInRange() throws {
        let file = try SharedData.temporaryDirectory(self).appendingPathComponent("k.txt")
        try Data("585 585 320 240 1e300 480\n".utf8).write(to: file)
        for (argument, path) in [(file.path, file.path), ("585,585,320,240,640,-1", "585,585,320,240,640,-1"), ("585,585,320,240,640.5,480", "585,585,320,240,640.5,480")] {
            XCTAssertThrowsError(try IntrinsicsArgument.parse(argument)) { error in
                guard case SequenceError.invalidIntrinsics(let p, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(p, path)
                XCTAssertTrue(reason.contains("not a whole number of pixels"), reason)
            }
        }
        XCTAssertEqual(try IntrinsicsArgument.parse("585,585,320,240,640,480").width, 640)
    }

    func testBadInputsNameTheFileAndTheProblem() throws {
        let dir = try SharedData.temporaryDirectory(self)
        try write(dir)
        func expect(_ fragment: String, _ also: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), file: file, line: line) {
                let message = "\($0)"
                XCTAssertTrue(message.contains(fragment) && message.contains(also), message, file: file, line: line)
            }
        }
        let source = try SequenceLoader.open(dir)
        // Missing frame file.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("depth/000001.png"))
        expect("depth/000001.png", "missing") { _ = try source.frame(at: 1) }
        // Truncated PNG.
        let rgb = dir.appendingPathComponent("rgb/000002.png")
        let bytes = try Data(contentsOf: rgb)
        try bytes.prefix(bytes.count / 2).write(to: rgb)
        expect("rgb/000002.png", "truncated") { _ = try source.frame(at: 2) }
        // 8-bit depth where 16-bit is expected.
        try PNGCodec.writeGray8(LabelImage(width: 32, height: 24, repeating: 9), to: dir.appendingPathComponent("depth/000000.png"))
        expect("depth/000000.png", "16-bit") { _ = try source.frame(at: 0) }
        // Wrong image size.
        try PNGCodec.writeGray16(Image<UInt16>(width: 16, height: 24, repeating: 5000), to: dir.appendingPathComponent("depth/000000.png"))
        expect("depth/000000.png", "16x24") { _ = try source.frame(at: 0) }
        try PNGCodec.writeGray16(Image<UInt16>(width: 32, height: 24, repeating: 5000), to: dir.appendingPathComponent("depth/000000.png"))
        // Unknown class id.
        var labels = LabelImage(width: 32, height: 24, repeating: 1)
        labels[5, 4] = 77
        try PNGCodec.writeGray8(labels, to: dir.appendingPathComponent("labels/000000.png"))
        expect("labels/000000.png", "class id 77 at pixel (5, 4)") { _ = try source.frame(at: 0) }
        try PNGCodec.writeGray8(LabelImage(width: 32, height: 24, repeating: 1), to: dir.appendingPathComponent("labels/000000.png"))
        // Probabilities with the wrong class count, and with NaN.
        try NPY.write(NPYArray(shape: [13, 2, 2], values: [Float](repeating: 0.1, count: 52)), to: dir.appendingPathComponent("probabilities/000000.npy"))
        expect("probabilities/000000.npy", "13 classes") { _ = try source.frame(at: 0) }
        var nan = [Float](repeating: 0.025, count: 160)
        nan[7] = .nan
        try NPY.write(NPYArray(shape: [40, 2, 2], values: nan), to: dir.appendingPathComponent("probabilities/000000.npy"))
        expect("probabilities/000000.npy", "nan") { _ = try source.frame(at: 0) }
        // Malformed manifest and pose file.
        let manifest = dir.appendingPathComponent("sequence.json")
        let text = try String(contentsOf: manifest, encoding: .utf8)
        try text.replacingOccurrences(of: "\"depth_scale\"", with: "\"depth_scal\"").write(to: manifest, atomically: true, encoding: .utf8)
        expect("sequence.json", "depth_scale") { _ = try SequenceLoader.open(dir) }
        try text.write(to: manifest, atomically: true, encoding: .utf8)
        try "0 1 2\n".write(to: dir.appendingPathComponent("poses.txt"), atomically: true, encoding: .utf8)
        expect("poses.txt:1", "expected 8 values") { _ = try SequenceLoader.open(dir) }
        // Unknown layout and missing folder.
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        expect("empty", "not a recognised sequence layout") { _ = try SequenceLoader.open(empty) }
        expect("nowhere", "not found") { _ = try SequenceLoader.open(dir.appendingPathComponent("nowhere")) }
    }

    func testIntrinsicsArgument() throws {
        XCTAssertEqual(try IntrinsicsArgument.parse("525,525,319.5,239.5").intrinsics(width: 640, height: 480),
                       Intrinsics(fx: 525, fy: 525, cx: 319.5, cy: 239.5, width: 640, height: 480))
        let dir = try SharedData.temporaryDirectory(self)
        let file = dir.appendingPathComponent("k.txt")
        try "481.2 0 319.5\n0 -480 239.5\n0 0 1\n".write(to: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(try IntrinsicsArgument.parse(file.path).fy, -480)
        XCTAssertThrowsError(try IntrinsicsArgument.parse("1,2"))
    }
}
