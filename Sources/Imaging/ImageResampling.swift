/// Resampling of colour images for network inputs.
public enum ImageResampling {
    /// Separable triangle-filter (bilinear) resampling with half-pixel centres. When shrinking,
    /// the filter widens with the scale so every source pixel contributes (as PIL's and
    /// OpenCV's `INTER_AREA`-like bilinear do): without that, a 640x480 frame shrunk to 224x224
    /// would alias. Values are rounded to 8 bits.
    public static func resizeBilinear(_ image: ColorImage, width: Int, height: Int) -> ColorImage {
        precondition(width >= 1 && height >= 1 && image.width >= 1 && image.height >= 1)
        if width == image.width && height == image.height { return image }
        let xTaps = taps(from: image.width, to: width), yTaps = taps(from: image.height, to: height)
        // Horizontal pass into floats, then vertical.
        var horizontal = [Float](repeating: 0, count: 3 * width * image.height)
        image.pixels.withUnsafeBufferPointer { src in
            for y in 0..<image.height {
                let row = y * image.width
                for x in 0..<width {
                    var r: Float = 0, g: Float = 0, b: Float = 0
                    let t = xTaps[x]
                    for k in 0..<t.weights.count {
                        let p = src[row + t.first + k], w = t.weights[k]
                        r += w * Float(p.r); g += w * Float(p.g); b += w * Float(p.b)
                    }
                    let o = 3 * (y * width + x)
                    horizontal[o] = r; horizontal[o + 1] = g; horizontal[o + 2] = b
                }
            }
        }
        var out = ColorImage(width: width, height: height, repeating: RGB8(0, 0, 0))
        func byte(_ v: Float) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }
        for y in 0..<height {
            let t = yTaps[y]
            for x in 0..<width {
                var r: Float = 0, g: Float = 0, b: Float = 0
                for k in 0..<t.weights.count {
                    let o = 3 * ((t.first + k) * width + x), w = t.weights[k]
                    r += w * horizontal[o]; g += w * horizontal[o + 1]; b += w * horizontal[o + 2]
                }
                out.pixels[y * width + x] = RGB8(byte(r), byte(g), byte(b))
            }
        }
        return out
    }

    struct Taps { var first: Int; var weights: [Float] }

    /// Normalised triangle-filter taps for each output index (support 1 source pixel when
    /// enlarging, `scale` pixels when shrinking).
    static func taps(from inputSize: Int, to outputSize: Int) -> [Taps] {
        let scale = Double(inputSize) / Double(outputSize)
        let support = max(scale, 1.0)
        return (0..<outputSize).map { d in
            let center = (Double(d) + 0.5) * scale
            let lo = max(0, Int((center - support).rounded(.down)))
            let hi = min(inputSize, Int((center + support).rounded(.up)))
            var weights: [Double] = []
            for i in lo..<hi {
                let distance = abs((Double(i) + 0.5 - center) / support)
                weights.append(max(0, 1 - distance))
            }
            let sum = weights.reduce(0, +)
            if sum <= 0 {   // degenerate: take the nearest pixel
                return Taps(first: min(inputSize - 1, max(0, Int(center))), weights: [1])
            }
            return Taps(first: lo, weights: weights.map { Float($0 / sum) })
        }
    }
}
