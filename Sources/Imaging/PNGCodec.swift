import CPNG
import Foundation

/// PNG reading and writing through libpng's simplified API (no setjmp needed).
public enum PNGCodec {
    /// What a PNG file stores, as found in its header.
    public struct Info: Equatable, Sendable {
        public var width: Int
        public var height: Int
        public var is16Bit: Bool
        public var isColor: Bool
        public var hasAlpha: Bool
        public var isPalette: Bool

        public var summary: String {
            let kind = isPalette ? "palette" : (isColor ? (hasAlpha ? "RGBA" : "RGB") : (hasAlpha ? "gray+alpha" : "grayscale"))
            return "\(is16Bit ? 16 : 8)-bit \(kind) \(width)x\(height)"
        }
    }

    private static let colormapFlag: png_uint_32 = 0x08

    /// Runs `body` with an image whose header has been read from `data`. libpng keeps pointing
    /// at the encoded bytes until the final read, so everything happens inside one
    /// `withUnsafeBytes` scope.
    private static func withImage<T>(_ data: Data, path: String, _ body: (inout png_image, Info) throws -> T) throws -> T {
        try data.withUnsafeBytes { raw -> T in
            var image = png_image()
            image.version = semfuse_png_image_version
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
                let reason = message(of: &image)
                png_image_free(&image)
                if raw.count < 8 || !data.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
                    throw ImagingError.corrupt(path: path, reason: "not a PNG file (\(raw.count) bytes, bad signature)")
                }
                throw ImagingError.corrupt(path: path, reason: reason)
            }
            let info = Info(width: Int(image.width), height: Int(image.height),
                            is16Bit: (image.format & semfuse_png_format_flag_linear) != 0,
                            isColor: (image.format & semfuse_png_format_flag_color) != 0,
                            hasAlpha: (image.format & semfuse_png_format_flag_alpha) != 0,
                            isPalette: (image.format & colormapFlag) != 0)
            defer { png_image_free(&image) }
            try checkDeclaredSize(info, fileBytes: raw.count, path: path)
            return try body(&image, info)
        }
    }

    /// zlib's deflate never expands more than 1032:1 (a 258-byte match in 2 bits); a file whose
    /// header needs more image data than that times its own length is refused before the
    /// decoder allocates rows for it.
    static let maximumDeflateRatio = 1032

    /// Refuses a declared size above `ImageLimits`, or one the file's bytes cannot hold even at
    /// deflate's maximum compression ratio, before the pixel buffer is allocated.
    private static func checkDeclaredSize(_ info: Info, fileBytes: Int, path: String) throws {
        try ImageLimits.check(width: info.width, height: info.height, path: path)
        // The fewest bits per pixel the stored format can have: 16-bit samples stay 16-bit, 8-bit
        // RGB is 24 bits, palette and grayscale files may pack down to 1 bit. Alpha is not
        // counted (a tRNS chunk adds alpha without stored samples).
        let minimumBits = info.is16Bit ? (info.isColor ? 48 : 16) : (info.isColor && !info.isPalette ? 24 : 1)
        let minimumBytes = (info.width * info.height * minimumBits + 7) / 8   // ≤ 2^26 · 48: no overflow
        let (capacity, overflow) = fileBytes.multipliedReportingOverflow(by: maximumDeflateRatio)
        if !overflow && minimumBytes > capacity + 1024 {
            throw ImagingError.tooLarge(path: path, reason: "header declares \(info.summary), at least \(minimumBytes) bytes of image data; a \(fileBytes)-byte file cannot hold that much even at zlib's maximum compression (truncated or crafted file)")
        }
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            let bytes = raw.bindMemory(to: CChar.self)
            return String(cString: bytes.baseAddress!)
        }
    }

    private static func finish<T>(_ image: inout png_image, format: png_uint_32, channels: Int,
                                  initial: T, path: String) throws -> [T] {
        image.format = format
        let count = Int(image.width) * Int(image.height) * channels
        var buffer = [T](repeating: initial, count: count)
        let ok = buffer.withUnsafeMutableBytes { raw -> Int32 in
            png_image_finish_read(&image, nil, raw.baseAddress, 0, nil)
        }
        if ok == 0 {
            throw ImagingError.corrupt(path: path, reason: message(of: &image))
        }
        return buffer
    }

    /// Header information of a PNG file.
    public static func info(of url: URL) throws -> Info {
        try withImage(FileData.read(url), path: url.path) { _, info in info }
    }

    /// Reads an 8-bit colour image; grayscale files are expanded to RGB, alpha is dropped.
    public static func readRGB(_ url: URL) throws -> ColorImage {
        try readRGB(data: FileData.read(url), path: url.path)
    }

    public static func readRGB(data: Data, path: String) throws -> ColorImage {
        let (bytes, info): ([UInt8], Info) = try withImage(data, path: path) { image, info in
            (try finish(&image, format: semfuse_png_format_rgb, channels: 3, initial: 0, path: path), info)
        }
        var pixels = [RGB8](repeating: .black, count: info.width * info.height)
        for i in 0..<pixels.count { pixels[i] = RGB8(bytes[3 * i], bytes[3 * i + 1], bytes[3 * i + 2]) }
        return ColorImage(width: info.width, height: info.height, pixels: pixels)
    }

    /// Reads a 16-bit single-channel image with the stored values unchanged (depth maps).
    /// An 8-bit file is rejected: it cannot hold depth and usually means a wrong file.
    public static func readGray16(_ url: URL) throws -> Image<UInt16> {
        try readGray16(data: FileData.read(url), path: url.path)
    }

    /// `readGray16` on bytes already in memory; `path` names the file in errors.
    public static func readGray16(data: Data, path: String) throws -> Image<UInt16> {
        try withImage(data, path: path) { image, info in
            guard info.is16Bit, !info.isColor, !info.isPalette else {
                throw ImagingError.unexpectedFormat(path: path, expected: "16-bit single-channel PNG (depth)", found: info.summary)
            }
            let values: [UInt16] = try finish(&image, format: semfuse_png_format_linear_y, channels: 1, initial: 0, path: path)
            return Image(width: info.width, height: info.height, pixels: values)
        }
    }

    /// Reads an 8-bit single-channel image unchanged (label ids). Colour, palette and 16-bit
    /// files are rejected because converting them would invent ids.
    public static func readGray8(_ url: URL) throws -> Image<UInt8> {
        try readGray8(data: FileData.read(url), path: url.path)
    }

    /// `readGray8` on bytes already in memory; `path` names the file in errors.
    public static func readGray8(data: Data, path: String) throws -> Image<UInt8> {
        try withImage(data, path: path) { image, info in
            guard !info.is16Bit, !info.isColor, !info.isPalette else {
                throw ImagingError.unexpectedFormat(path: path, expected: "8-bit grayscale PNG of class ids", found: info.summary)
            }
            let values: [UInt8] = try finish(&image, format: semfuse_png_format_gray, channels: 1, initial: 0, path: path)
            return Image(width: info.width, height: info.height, pixels: values)
        }
    }

    private static func encode(width: Int, height: Int, format: png_uint_32, path: String,
                               _ body: (inout png_image, UnsafeMutableRawPointer?, inout Int) -> Int32) throws -> Data {
        var image = png_image()
        image.version = semfuse_png_image_version
        image.width = png_uint_32(width)
        image.height = png_uint_32(height)
        image.format = format
        var size = 0
        // First call sizes the buffer, second writes.
        guard body(&image, nil, &size) != 0 else {
            let reason = message(of: &image)
            png_image_free(&image)
            throw ImagingError.writeFailed(path: path, reason: "PNG encoding failed: \(reason)")
        }
        var data = Data(count: size)
        let ok = data.withUnsafeMutableBytes { raw -> Int32 in
            body(&image, raw.baseAddress, &size)
        }
        png_image_free(&image)
        guard ok != 0 else { throw ImagingError.writeFailed(path: path, reason: "PNG encoding failed") }
        data.count = size
        return data
    }

    public static func encodeRGB(_ image: ColorImage, path: String = "<memory>") throws -> Data {
        var bytes = [UInt8](repeating: 0, count: image.count * 3)
        for (i, p) in image.pixels.enumerated() { bytes[3 * i] = p.r; bytes[3 * i + 1] = p.g; bytes[3 * i + 2] = p.b }
        return try encode(width: image.width, height: image.height, format: semfuse_png_format_rgb, path: path) { img, out, size in
            bytes.withUnsafeBytes { src in
                png_image_write_to_memory(&img, out, &size, 0, src.baseAddress, 0, nil)
            }
        }
    }

    public static func encodeGray16(_ image: Image<UInt16>, path: String = "<memory>") throws -> Data {
        try encode(width: image.width, height: image.height, format: semfuse_png_format_linear_y, path: path) { img, out, size in
            image.pixels.withUnsafeBytes { src in
                png_image_write_to_memory(&img, out, &size, 0, src.baseAddress, 0, nil)
            }
        }
    }

    public static func encodeGray8(_ image: Image<UInt8>, path: String = "<memory>") throws -> Data {
        try encode(width: image.width, height: image.height, format: semfuse_png_format_gray, path: path) { img, out, size in
            image.pixels.withUnsafeBytes { src in
                png_image_write_to_memory(&img, out, &size, 0, src.baseAddress, 0, nil)
            }
        }
    }

    public static func writeRGB(_ image: ColorImage, to url: URL) throws {
        try FileData.writeAtomically(encodeRGB(image, path: url.path), to: url)
    }

    public static func writeGray16(_ image: Image<UInt16>, to url: URL) throws {
        try FileData.writeAtomically(encodeGray16(image, path: url.path), to: url)
    }

    public static func writeGray8(_ image: Image<UInt8>, to url: URL) throws {
        try FileData.writeAtomically(encodeGray8(image, path: url.path), to: url)
    }
}
