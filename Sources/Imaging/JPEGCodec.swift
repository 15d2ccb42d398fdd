import CJPEG
import Foundation

/// JPEG decoding and encoding through libjpeg-turbo.
public enum JPEGCodec {
    /// libjpeg's working memory (whole-image coefficient buffers of progressive files, about 6
    /// bytes per pixel at full resolution) is capped so a crafted file fails with an error
    /// instead of exhausting memory.
    static let maxWorkingMemory = 6 * ImageLimits.maxPixels

    public static func readRGB(_ url: URL) throws -> ColorImage {
        try decode(FileData.read(url), path: url.path)
    }

    public static func decode(_ data: Data, path: String) throws -> ColorImage {
        guard data.count >= 4, data[data.startIndex] == 0xFF, data[data.startIndex + 1] == 0xD8 else {
            throw ImagingError.corrupt(path: path, reason: "not a JPEG file (\(data.count) bytes, bad signature)")
        }
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { raw in
            semfuse_jpeg_decode_rgb(raw.bindMemory(to: UInt8.self).baseAddress, raw.count,
                                    ImageLimits.maxSide, ImageLimits.maxPixels, maxWorkingMemory,
                                    &pixels, &width, &height, &message, 256)
        }
        if status == 2 {
            let declared = String(cString: message).split(separator: " ").compactMap { Int($0) }
            try ImageLimits.check(width: declared.first ?? 0, height: declared.last ?? 0, path: path)
        }
        guard status == 0, let pixels else {
            throw ImagingError.corrupt(path: path, reason: String(cString: message))
        }
        defer { semfuse_jpeg_free(pixels) }
        let count = Int(width) * Int(height)
        var out = [RGB8](repeating: .black, count: count)
        for i in 0..<count { out[i] = RGB8(pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]) }
        return ColorImage(width: Int(width), height: Int(height), pixels: out)
    }

    public static func encode(_ image: ColorImage, quality: Int = 90, path: String = "<memory>") throws -> Data {
        var bytes = [UInt8](repeating: 0, count: image.count * 3)
        for (i, p) in image.pixels.enumerated() { bytes[3 * i] = p.r; bytes[3 * i + 1] = p.g; bytes[3 * i + 2] = p.b }
        var out: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = semfuse_jpeg_encode_rgb(bytes, Int32(image.width), Int32(image.height), Int32(quality), &out, &size, &message, 256)
        guard status == 0, let out else {
            throw ImagingError.writeFailed(path: path, reason: "JPEG encoding failed: \(String(cString: message))")
        }
        defer { semfuse_jpeg_free(out) }
        return Data(bytes: out, count: Int(size))
    }
}

/// Reads a colour image by extension (.png, .jpg, .jpeg).
public enum ImageFile {
    public static func readColor(_ url: URL) throws -> ColorImage {
        switch url.pathExtension.lowercased() {
        case "png": return try PNGCodec.readRGB(url)
        case "jpg", "jpeg": return try JPEGCodec.readRGB(url)
        default: throw ImagingError.unsupportedExtension(path: url.path)
        }
    }
}
