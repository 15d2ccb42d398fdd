import Foundation
import XCTest
import TestSupport
@testable import Imaging

final class CodecTests: XCTestCase {
    func testPNGRoundTrips() throws {
        let dir = try SharedData.temporaryDirectory(self)
        var rgb = ColorImage(width: 7, height: 5, repeating: .black)
        var gray16 = Image<UInt16>(width: 7, height: 5, repeating: 0)
        var gray8 = Image<UInt8>(width: 7, height: 5, repeating: 0)
        for y in 0..<5 {
            for x in 0..<7 {
                rgb[x, y] = RGB8(UInt8(x * 30), UInt8(y * 50), UInt8((x * y) % 256))
                gray16[x, y] = UInt16(x * 9000 + y * 13 + 1)
                gray8[x, y] = UInt8(x * 10 + y)
            }
        }
        try PNGCodec.writeRGB(rgb, to: dir.appendingPathComponent("c.png"))
        try PNGCodec.writeGray16(gray16, to: dir.appendingPathComponent("d.png"))
        try PNGCodec.writeGray8(gray8, to: dir.appendingPathComponent("l.png"))
        XCTAssertEqual(try PNGCodec.readRGB(dir.appendingPathComponent("c.png")).pixels, rgb.pixels)
        XCTAssertEqual(try PNGCodec.readGray16(dir.appendingPathComponent("d.png")).pixels, gray16.pixels)
        XCTAssertEqual(try PNGCodec.readGray8(dir.appendingPathComponent("l.png")).pixels, gray8.pixels)
        XCTAssertEqual(try PNGCodec.info(of: dir.appendingPathComponent("d.png")).summary, "16-bit grayscale 7x5")
    }

    func testRealDepthPNGKeepsStoredValues() throws {
        let url = try SharedData.require("7scenes-redkitchen-png50/frame-000150.depth.png")
        let depth = try PNGCodec.readGray16(url)
        XCTAssertEqual(depth.width, 640)
        XCTAssertEqual(depth.height, 480)
        // Reference values from an independent decode (Python zlib + PNG filter reversal, run
        // once during development), so a gamma or sRGB conversion inside libpng would show.
        XCTAssertEqual(depth.pixels.reduce(0) { $0 + Int($1) }, 489_973_122)
        XCTAssertEqual(depth[320, 240], 1556)
        XCTAssertEqual(depth[50, 100], 1464)
        XCTAssertEqual(depth.pixels.filter { $0 == 0 }.count, 36_874)
    }

    func testJPEGDecodesRealFrameAndRoundTrips() throws {
        let url = try SharedData.require("7scenes-redkitchen/frame-000000.color.jpg")
        let image = try JPEGCodec.readRGB(url)
        XCTAssertEqual(image.width, 640)
        XCTAssertEqual(image.height, 480)
        let data = try JPEGCodec.encode(image, quality: 95)
        let back = try JPEGCodec.decode(data, path: "mem")
        var err = 0.0
        for (a, b) in zip(image.pixels, back.pixels) { err += abs(Double(a.g) - Double(b.g)) }
        XCTAssertLessThan(err / Double(image.count), 3)
    }

    func testBadInputsNameTheFile() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let missing = dir.appendingPathComponent("nope.png")
        XCTAssertThrowsError(try PNGCodec.readRGB(missing)) { XCTAssertTrue("\($0)".contains("nope.png") && "\($0)".contains("not found")) }

        // A truncated PNG: the first half of a valid file.
        var img = Image<UInt16>(width: 64, height: 64, repeating: 0)
        for i in 0..<img.count { img.pixels[i] = UInt16(truncatingIfNeeded: i &* 2654435761) }
        let full = try PNGCodec.encodeGray16(img)
        let truncated = dir.appendingPathComponent("truncated.png")
        try full.prefix(full.count / 2).write(to: truncated)
        XCTAssertThrowsError(try PNGCodec.readGray16(truncated)) { XCTAssertTrue("\($0)".contains("truncated.png"), "\($0)") }

        let garbage = dir.appendingPathComponent("garbage.png")
        try Data("hello".utf8).write(to: garbage)
        XCTAssertThrowsError(try PNGCodec.readRGB(garbage)) { XCTAssertTrue("\($0)".contains("not a PNG"), "\($0)") }

        // 8-bit where 16-bit depth is expected, and colour where label ids are expected.
        let eight = dir.appendingPathComponent("eight.png")
        try PNGCodec.writeGray8(Image(width: 4, height: 4, repeating: 3), to: eight)
        XCTAssertThrowsError(try PNGCodec.readGray16(eight)) { XCTAssertTrue("\($0)".contains("8-bit grayscale"), "\($0)") }
        let color = dir.appendingPathComponent("color.png")
        try PNGCodec.writeRGB(ColorImage(width: 4, height: 4, repeating: .black), to: color)
        XCTAssertThrowsError(try PNGCodec.readGray8(color)) { XCTAssertTrue("\($0)".contains("RGB"), "\($0)") }

        let badJPEG = dir.appendingPathComponent("bad.jpg")
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]).write(to: badJPEG)
        XCTAssertThrowsError(try JPEGCodec.readRGB(badJPEG)) { XCTAssertTrue("\($0)".contains("bad.jpg"), "\($0)") }
        XCTAssertThrowsError(try ImageFile.readColor(dir.appendingPathComponent("x.bmp")))
    }

    func testUnwritableFolderIsAClearError() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let file = dir.appendingPathComponent("plain-file")
        try Data("x".utf8).write(to: file)
        let target = file.appendingPathComponent("out.png")
        XCTAssertThrowsError(try PNGCodec.writeRGB(ColorImage(width: 2, height: 2, repeating: .black), to: target)) {
            XCTAssertTrue("\($0)".contains("out.png") && "\($0)".contains("not a folder"), "\($0)")
        }
    }

    // MARK: Declared sizes (issue 9): checked before anything is allocated

    /// A PNG of `width`x`height` (colour type 0 gray or 2 RGB) whose whole image data is a
    /// few bytes: the header is valid (correct CRCs), only the size is a lie.
    static func craftedPNG(width: UInt32, height: UInt32, bitDepth: UInt8, colorType: UInt8) -> Data {
        func crc(_ bytes: [UInt8]) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
            }
            return ~c
        }
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            return be(UInt32(body.count)) + typed + be(crc(typed))
        }
        let ihdr = be(width) + be(height) + [bitDepth, colorType, 0, 0, 0]
        let idat: [UInt8] = [0x78, 0x9C, 0x62, 0x60, 0x60, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x03]
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", idat) + chunk("IEND", []))
    }

    func assertTooLarge<T>(_ body: @autoclosure () throws -> T, path: String, _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            guard case ImagingError.tooLarge(let p, let reason) = error else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(p, path, line: line)
            XCTAssertTrue(reason.contains(fragment), reason, line: line)
        }
    }

    func testPNGDeclaredSizeIsCheckedBeforeAllocating() throws {
        // The reported 69-byte file claiming 100000x100000 RGB (30 GB) and its 16-bit depth twin.
        let rgb = Self.craftedPNG(width: 100_000, height: 100_000, bitDepth: 8, colorType: 2)
        XCTAssertEqual(rgb.count, 69)
        assertTooLarge(try PNGCodec.readRGB(data: rgb, path: "huge.png"), path: "huge.png", "100000x100000")
        let depth = Self.craftedPNG(width: 100_000, height: 100_000, bitDepth: 16, colorType: 0)
        assertTooLarge(try PNGCodec.readGray16(data: depth, path: "huge-depth.png"), path: "huge-depth.png", "at most 65535 per side")
        assertTooLarge(try PNGCodec.readGray8(data: Self.craftedPNG(width: 65_535, height: 65_535, bitDepth: 8, colorType: 0), path: "l.png"),
                       path: "l.png", "pixels in all")
        // Within the limits, but 128 MB of 16-bit samples cannot come out of 69 bytes of deflate.
        let dense = Self.craftedPNG(width: 8192, height: 8192, bitDepth: 16, colorType: 0)
        assertTooLarge(try PNGCodec.readGray16(data: dense, path: "dense.png"), path: "dense.png", "maximum compression")
        // A size the bytes can hold goes on to libpng, which reports the missing data.
        XCTAssertThrowsError(try PNGCodec.readGray16(data: Self.craftedPNG(width: 64, height: 64, bitDepth: 16, colorType: 0), path: "short.png")) { error in
            guard case ImagingError.corrupt(let p, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(p, "short.png")
        }
    }

    func testJPEGDeclaredSizeIsCheckedBeforeAllocating() throws {
        let valid = try JPEGCodec.encode(ColorImage(width: 16, height: 8, repeating: RGB8(10, 200, 30)))
        XCTAssertEqual(try JPEGCodec.decode(valid, path: "ok.jpg").width, 16)
        // The SOF0 marker (FF C0, length, precision) is followed by height and width, big-endian.
        let sof = try XCTUnwrap((0..<(valid.count - 1)).first { valid[$0] == 0xFF && valid[$0 + 1] == 0xC0 })
        func resized(_ width: UInt16, _ height: UInt16) -> Data {
            var data = valid
            data[sof + 5] = UInt8(height >> 8); data[sof + 6] = UInt8(height & 0xFF)
            data[sof + 7] = UInt8(width >> 8); data[sof + 8] = UInt8(width & 0xFF)
            return data
        }
        assertTooLarge(try JPEGCodec.decode(resized(65_000, 65_000), path: "huge.jpg"), path: "huge.jpg", "65000x65000")
        // Within the limits: the rows are allocated as they decode, and the missing data is an error.
        XCTAssertThrowsError(try JPEGCodec.decode(resized(8000, 8000), path: "short.jpg")) { error in
            guard case ImagingError.corrupt(let p, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(p, "short.jpg")
        }
        XCTAssertThrowsError(try JPEGCodec.decode(resized(0, 8), path: "empty.jpg")) { error in
            XCTAssertTrue("\(error)".hasPrefix("empty.jpg:"), "\(error)")
        }
    }

    func testNPYShapeIsCheckedWithOverflowBeforeReading() throws {
        func npy(_ shape: String, body: Int = 0) -> Data {
            var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
            header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
            let length = UInt16(header.utf8.count)
            return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(header.utf8) + [UInt8](repeating: 0, count: body))
        }
        // 40 · 2^31 · 2^31 · 4 bytes wraps to 0 in 64-bit arithmetic; it used to be read from memory the file does not own.
        assertTooLarge(try NPY.decode(npy("(40, 2147483648, 2147483648)", body: 16), path: "wrap.npy"), path: "wrap.npy", "16 bytes")
        assertTooLarge(try NPY.decode(npy("(4611686018427387904,)"), path: "big.npy"), path: "big.npy", "0 bytes")
        assertTooLarge(try NPY.decode(npy("(2, 3)", body: 23), path: "short.npy"), path: "short.npy", "23 bytes")
        // A 0-d array is one element, found by the fuzzer reading past a 1-byte body.
        assertTooLarge(try NPY.decode(npy("()", body: 3), path: "scalar.npy"), path: "scalar.npy", "3 bytes")
        XCTAssertEqual(try NPY.decode(npy("()", body: 4), path: "scalar.npy").values, [0])
        XCTAssertEqual(try NPY.decode(npy("(2, 3)", body: 24), path: "ok.npy").values.count, 6)
        // Empty arrays are valid NumPy files whatever the other dimensions say.
        XCTAssertEqual(try NPY.decode(npy("(40, 0, 0)"), path: "empty.npy").shape, [40, 0, 0])
        XCTAssertEqual(try NPY.decode(npy("(0, 4611686018427387904)"), path: "empty.npy").values, [])
    }

    /// A FIFO or a device has no end: reading it whole would block or grow without bound.
    func testSpecialFilesAreRefusedBeforeReading() throws {
        let fifo = try SharedData.temporaryDirectory(self).appendingPathComponent("pipe.png")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        XCTAssertThrowsError(try PNGCodec.readRGB(fifo)) { error in
            guard case ImagingError.unreadable(let path, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, fifo.path)
            XCTAssertEqual(reason, "not a regular file: a FIFO (named pipe)")
        }
        XCTAssertThrowsError(try FileData.read(URL(fileURLWithPath: "/dev/zero"))) { error in
            XCTAssertEqual(error as? ImagingError, .unreadable(path: "/dev/zero", reason: "not a regular file: a character device"))
        }
    }
}
