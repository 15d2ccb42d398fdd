import Imaging

/// A normalised 1x3xHxW input, as the authors' notebooks prepare it: `(rgb/255 − mean)/std` with
/// the ImageNet mean and std, computed in double precision and stored as float32.
public struct NetworkInput: Sendable {
    public let height: Int
    public let width: Int
    /// Planar R, G, B.
    public var values: [Float]

    public static let mean: [Double] = [0.485, 0.456, 0.406]
    public static let std: [Double] = [0.229, 0.224, 0.225]
    /// Smallest input side: the encoder halves the image five times.
    public static let minimumSide = 2

    public init(height: Int, width: Int, values: [Float]) throws {
        guard height >= Self.minimumSide, width >= Self.minimumSide else {
            throw NetworkError.invalidInput("image is \(width)x\(height); the network needs at least \(Self.minimumSide)x\(Self.minimumSide)")
        }
        guard values.count == 3 * height * width else {
            throw NetworkError.invalidInput("\(values.count) values for a 3x\(height)x\(width) input")
        }
        guard values.allSatisfy({ $0.isFinite }) else { throw NetworkError.invalidInput("input contains NaN or infinite values") }
        self.height = height; self.width = width; self.values = values
    }

    public init(image: ColorImage) throws {
        guard image.height >= Self.minimumSide, image.width >= Self.minimumSide else {
            throw NetworkError.invalidInput("image is \(image.width)x\(image.height); the network needs at least \(Self.minimumSide)x\(Self.minimumSide)")
        }
        let plane = image.width * image.height
        var values = [Float](repeating: 0, count: 3 * plane)
        // 256-entry tables per channel: the same double-precision arithmetic, once per value.
        let tables: [[Float]] = (0..<3).map { c in
            (0..<256).map { Float((Double($0) * (1.0 / 255.0) - Self.mean[c]) / Self.std[c]) }
        }
        image.pixels.withUnsafeBufferPointer { pixels in
            for i in 0..<plane {
                let p = pixels[i]
                values[i] = tables[0][Int(p.r)]
                values[plane + i] = tables[1][Int(p.g)]
                values[2 * plane + i] = tables[2][Int(p.b)]
            }
        }
        self.height = image.height; self.width = image.width; self.values = values
    }
}
