import Foundation
import Geometry
import Imaging

/// One pyramid level of a grey image for photometric alignment: intensity (0-255, 0 = no data)
/// and its gradient (3x3 Sobel / 8, intensity units per pixel; zero next to missing data).
public struct IntensityMap: Sendable {
    public var width: Int
    public var height: Int
    public var intensity: [Float]
    public var gradientX: [Float]
    public var gradientY: [Float]

    /// - Parameter threads: rows of the gradients are shared out among this many threads (the
    ///   same values for any count).
    public init(width: Int, height: Int, intensity: [Float], threads: Int = 1) {
        self.width = width; self.height = height; self.intensity = intensity
        var gx = [Float](repeating: 0, count: width * height), gy = gx
        if width >= 3 && height >= 3 && intensity.count >= width * height {
            intensity.withKernelInput { image in
            gx.withKernelOutput { outX in
            gy.withKernelOutput { outY in
                ParallelFor.run(height - 2, chunks: threads > 1 ? 4 * threads : 1, threads: threads) { _, rows in
                    for row in rows {
                        let y = row + 1
                        for x in 1..<(width - 1) {
                            let p = y * width + x
                            let a = image[p - width - 1], b = image[p - width], c = image[p - width + 1]
                            let d = image[p - 1], f = image[p + 1]
                            let g = image[p + width - 1], h = image[p + width], i = image[p + width + 1]
                            guard a > 0, b > 0, c > 0, d > 0, f > 0, g > 0, h > 0, i > 0 else { continue }
                            outX[p] = ((c + 2 * f + i) - (a + 2 * d + g)) / 8
                            outY[p] = ((g + 2 * h + i) - (a + 2 * b + c)) / 8
                        }
                    }
                }
            }}}
        }
        gradientX = gx; gradientY = gy
    }

    /// Read-only views of intensity and gradients for one kernel call (`KernelMemory.swift`).
    func withKernelInputs<R>(_ body: (_ intensity: KernelInput<Float>, _ gradientX: KernelInput<Float>,
                                      _ gradientY: KernelInput<Float>) throws -> R) rethrows -> R {
        try intensity.withKernelInput { i in
        try gradientX.withKernelInput { gx in
        try gradientY.withKernelInput { gy in try body(i, gx, gy) }}}
    }

    /// Luma (0.299 R + 0.587 G + 0.114 B), as ElasticFusion; black pixels become 1 so 0 can
    /// keep meaning "no data".
    public static func luma(_ color: ColorImage) -> [Float] {
        color.pixels.map { max(1, 0.299 * Float($0.r) + 0.587 * Float($0.g) + 0.114 * Float($0.b)) }
    }

    /// The next level: 5x5 [1 4 6 4 1]² Gaussian over the samples that have data, every second pixel.
    public func downsampled(threads: Int = 1) -> IntensityMap {
        IntensityMap(width: width / 2, height: height / 2,
                     intensity: gaussianDownsample(intensity, width: width, height: height, maxDifference: nil, threads: threads),
                     threads: threads)
    }

    /// Levels finest first.
    public static func pyramid(intensity: [Float], width: Int, height: Int, levels: Int, threads: Int = 1) -> [IntensityMap] {
        var maps = [IntensityMap(width: width, height: height, intensity: intensity, threads: threads)]
        for _ in 1..<max(1, levels) { maps.append(maps[maps.count - 1].downsampled(threads: threads)) }
        return maps
    }
}
