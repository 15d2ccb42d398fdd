/// A dense row-major image of any pixel type.
///
/// Value semantics with copy-on-write through the `pixels` array; kernels reach the storage via
/// `withUnsafeBufferPointer` so the unsafe parts stay local.
public struct Image<Pixel>: @unchecked Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [Pixel]

    public init(width: Int, height: Int, repeating value: Pixel) {
        precondition(width >= 0 && height >= 0)
        self.width = width
        self.height = height
        self.pixels = Array(repeating: value, count: width * height)
    }

    @inlinable
    public init(width: Int, height: Int, pixels: [Pixel]) {
        precondition(pixels.count == width * height, "pixel count \(pixels.count) != \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    @inlinable public var count: Int { width * height }

    @inlinable
    public subscript(x: Int, y: Int) -> Pixel {
        get { pixels[y * width + x] }
        set { pixels[y * width + x] = newValue }
    }

    @inlinable
    public func contains(x: Int, y: Int) -> Bool { x >= 0 && y >= 0 && x < width && y < height }

    /// Inlinable so that it is specialised where it is called: unspecialised, every pixel went
    /// through a generic append (8 % of a 640x480 tracking run in the depth range cut alone).
    @inlinable
    public func map<T>(_ transform: (Pixel) throws -> T) rethrows -> Image<T> {
        Image<T>(width: width, height: height, pixels: try pixels.map(transform))
    }

    /// Nearest-neighbour resampling, used where values must not be blended (labels, ids).
    public func resizedNearest(width newWidth: Int, height newHeight: Int) -> Image<Pixel> {
        if newWidth == width && newHeight == height { return self }
        var out = [Pixel]()
        out.reserveCapacity(newWidth * newHeight)
        for y in 0..<newHeight {
            let sy = min(height - 1, Int((Double(y) + 0.5) * Double(height) / Double(newHeight)))
            for x in 0..<newWidth {
                let sx = min(width - 1, Int((Double(x) + 0.5) * Double(width) / Double(newWidth)))
                out.append(pixels[sy * width + sx])
            }
        }
        return Image(width: newWidth, height: newHeight, pixels: out)
    }
}

/// 8-bit RGB colour.
public struct RGB8: Equatable, Hashable, Sendable {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8
    @inlinable public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
    public static let black = RGB8(0, 0, 0)

    /// Luminance 0.299R + 0.587G + 0.114B in [0, 255] (ElasticFusion's intensity).
    @inlinable public var intensity: Float { 0.299 * Float(r) + 0.587 * Float(g) + 0.114 * Float(b) }
}

public typealias ColorImage = Image<RGB8>
/// Depth in metres; 0 marks a missing measurement.
public typealias DepthImage = Image<Float>
/// Class ids per pixel.
public typealias LabelImage = Image<UInt8>
