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
}
