/// The largest image the readers accept, checked against the *declared* size in a file's header
/// before anything is allocated.
///
/// A compressed image can claim any size in a few bytes (a 69-byte PNG can declare
/// 100000x100000, 30 GB of RGB), so the header alone must never decide how much memory is
/// allocated. 65535 pixels per side and 2^26 pixels (67 megapixels, 8192x8192; 200 MB as RGB) is
/// far beyond any RGB-D camera or label image this tool fuses, and keeps one decoded image well
/// within the memory of the machines it runs on.
public enum ImageLimits {
    public static let maxSide = 65_535
    public static let maxPixels = 1 << 26

    /// Throws `ImagingError.tooLarge` (or `.corrupt` for an empty image) naming `path` when a
    /// declared size is zero or above the limits.
    public static func check(width: Int, height: Int, path: String) throws {
        guard width > 0, height > 0 else {
            throw ImagingError.corrupt(path: path, reason: "header declares an empty \(width)x\(height) image")
        }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard width <= maxSide, height <= maxSide, !overflow, pixels <= maxPixels else {
            throw ImagingError.tooLarge(path: path, reason: "header declares \(width)x\(height) pixels; at most \(maxSide) per side and \(maxPixels) pixels in all are supported")
        }
    }
}
