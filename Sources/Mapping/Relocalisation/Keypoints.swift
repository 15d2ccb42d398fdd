import Foundation
import Geometry
import Imaging

/// Corners with depth and binary descriptors of one RGB-D frame, for registering two views that
/// are too far apart for ICP to converge (relocalisation after a tracking loss).
///
/// Corners are FAST-9 (Rosten and Drummond: 9 contiguous pixels of the 16 on a radius-3
/// circle all brighter or all darker than the centre by `threshold`), kept as the strongest one
/// per grid cell so they spread over the image; each keeps its back-projected depth. The
/// descriptor is BRIEF-256 (Calonder et al.: 256 intensity comparisons of fixed random pixel
/// pairs in a 31x31 patch of the smoothed image). Plain BRIEF is not rotation-invariant; it
/// tolerates the in-plane rotations of a hand-held camera between nearby views (about 15
/// degrees), which is the case relocalisation meets here.
public struct KeypointSet: Sendable {
    /// Camera-frame positions (metres).
    public var points: [SIMD3<Float>] = []
    /// Pixel positions.
    public var pixels: [SIMD2<Int32>] = []
    public var descriptors: [SIMD4<UInt64>] = []
    public var count: Int { points.count }
    public init() {}
}

public struct KeypointDetector: Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Intensity difference (0...255) a circle pixel must exceed.
        public var threshold: Float = 15
        /// One corner per cell of this many pixels (the strongest).
        public var cell = 12
        /// At most this many corners (the strongest cells first).
        public var maximum = 800
        /// Depth range of usable corners (metres).
        public var depthRange: ClosedRange<Float> = 0.3...5
        public init() {}
    }

    public let parameters: Parameters
    /// Pixel pairs of the BRIEF tests, offsets within ±15.
    let pairs: [(SIMD2<Int>, SIMD2<Int>)]
    static let circle: [SIMD2<Int>] = [
        SIMD2(0, -3), SIMD2(1, -3), SIMD2(2, -2), SIMD2(3, -1), SIMD2(3, 0), SIMD2(3, 1), SIMD2(2, 2), SIMD2(1, 3),
        SIMD2(0, 3), SIMD2(-1, 3), SIMD2(-2, 2), SIMD2(-3, 1), SIMD2(-3, 0), SIMD2(-3, -1), SIMD2(-2, -2), SIMD2(-1, -3),
    ]
    static let border = 16

    public init(parameters: Parameters = Parameters()) {
        self.parameters = parameters
        var random = SplitMix64(seed: 0xB41E_F256)
        // Isotropic Gaussian offsets (σ² = S²/25, S = 31, as BRIEF's best pattern), clipped.
        func offset() -> SIMD2<Int> {
            func gaussian() -> Double {
                let u = Double.random(in: Double.ulpOfOne..<1, using: &random), v = Double.random(in: 0..<1, using: &random)
                return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
            }
            let s = 31.0 / 5
            return SIMD2(Int(max(-15, min(15, (gaussian() * s).rounded()))), Int(max(-15, min(15, (gaussian() * s).rounded()))))
        }
        pairs = (0..<256).map { _ in (offset(), offset()) }
    }

    /// Corners of an RGB-D frame: of its colour's luma, with depth from `depth`; none without
    /// colour at the depth's size (there is no pixel-to-depth correspondence to use).
    public func detect(color: ColorImage?, depth: DepthImage, intrinsics: Intrinsics) -> KeypointSet {
        guard let color, color.width == depth.width, color.height == depth.height else { return KeypointSet() }
        return detect(grey: IntensityMap.luma(color), width: color.width, height: color.height, depth: depth, intrinsics: intrinsics)
    }

    /// Corners of `grey` (0...255, row-major, `width` x `height`) with depth from `depth`
    /// (metres, same size), back-projected with `intrinsics`.
    public func detect(grey: [Float], width: Int, height: Int, depth: DepthImage, intrinsics: Intrinsics) -> KeypointSet {
        var set = KeypointSet()
        guard width > 2 * Self.border, height > 2 * Self.border, grey.count == width * height,
              depth.width == width, depth.height == height else { return set }
        let t = parameters.threshold
        let offsets = Self.circle.map { $0.y * width + $0.x }
        let cell = max(parameters.cell, 1)
        let cellsX = (width + cell - 1) / cell, cellsY = (height + cell - 1) / cell
        var best = [(score: Float, pixel: Int)](repeating: (0, -1), count: cellsX * cellsY)
        for y in Self.border..<(height - Self.border) {
            for x in Self.border..<(width - Self.border) {
                let p = y * width + x
                let z = depth.pixels[p]
                guard parameters.depthRange.contains(z) else { continue }
                let c = grey[p]
                // Quick rejection: of the four compass pixels, at least three must differ alike.
                let n = grey[p + offsets[0]], e = grey[p + offsets[4]], s = grey[p + offsets[8]], w = grey[p + offsets[12]]
                let high = c + t, low = c - t
                let brighter = (n > high ? 1 : 0) + (e > high ? 1 : 0) + (s > high ? 1 : 0) + (w > high ? 1 : 0)
                let darker = (n <= high && n < low ? 1 : 0) + (e <= high && e < low ? 1 : 0) + (s <= high && s < low ? 1 : 0)
                    + (w <= high && w < low ? 1 : 0)
                guard brighter >= 2 || darker >= 2 else { continue }
                let score = Self.fastScore(grey, p, c, t, offsets)
                guard score > 0 else { continue }
                let k = (y / cell) * cellsX + x / cell
                if score > best[k].score { best[k] = (score, p) }
            }
        }
        let kept = best.filter { $0.pixel >= 0 }.sorted { $0.score > $1.score || ($0.score == $1.score && $0.pixel < $1.pixel) }
            .prefix(parameters.maximum)
        let smooth = Self.boxBlur(grey, width: width, height: height)
        let fx = Float(intrinsics.fx), fy = Float(intrinsics.fy), cx = Float(intrinsics.cx), cy = Float(intrinsics.cy)
        for corner in kept {
            let x = corner.pixel % width, y = corner.pixel / width
            let z = depth.pixels[corner.pixel]
            var words = SIMD4<UInt64>()
            for (bit, pair) in pairs.enumerated() {
                let a = smooth[(y + pair.0.y) * width + x + pair.0.x], b = smooth[(y + pair.1.y) * width + x + pair.1.x]
                if a < b { words[bit >> 6] |= 1 << UInt64(bit & 63) }
            }
            set.points.append(SIMD3((Float(x) - cx) / fx * z, (Float(y) - cy) / fy * z, z))
            set.pixels.append(SIMD2(Int32(x), Int32(y)))
            set.descriptors.append(words)
        }
        return set
    }

    /// FAST-9 score: the largest threshold margin by which 9 contiguous circle pixels are all
    /// brighter (or all darker) than the centre; 0 when there is no such arc at `t`.
    static func fastScore(_ grey: [Float], _ p: Int, _ c: Float, _ t: Float, _ offsets: [Int]) -> Float {
        var values = SIMD16<Float>()
        for i in 0..<16 { values[i] = grey[p + offsets[i]] - c }
        var best: Float = 0
        for side in 0..<2 {
            let sign: Float = side == 0 ? 1 : -1
            for start in 0..<16 {
                var margin = Float.infinity
                for k in 0..<9 {
                    margin = min(margin, sign * values[(start + k) & 15])
                    if margin <= t { break }
                }
                if margin > t { best = max(best, margin) }
            }
        }
        return best
    }

    /// 5x5 box filter (through a summed-area table) that BRIEF's comparisons are made on.
    static func boxBlur(_ grey: [Float], width: Int, height: Int) -> [Float] {
        var sum = [Double](repeating: 0, count: (width + 1) * (height + 1))
        for y in 0..<height {
            var row = 0.0
            for x in 0..<width {
                row += Double(grey[y * width + x])
                sum[(y + 1) * (width + 1) + x + 1] = sum[y * (width + 1) + x + 1] + row
            }
        }
        var out = [Float](repeating: 0, count: width * height)
        for y in 0..<height {
            let y0 = max(0, y - 2), y1 = min(height, y + 3)
            for x in 0..<width {
                let x0 = max(0, x - 2), x1 = min(width, x + 3)
                let s = sum[y1 * (width + 1) + x1] - sum[y0 * (width + 1) + x1] - sum[y1 * (width + 1) + x0] + sum[y0 * (width + 1) + x0]
                out[y * width + x] = Float(s / Double((y1 - y0) * (x1 - x0)))
            }
        }
        return out
    }

    /// Mutual nearest neighbours in Hamming distance that pass Lowe's ratio test and a distance
    /// bound: (index in a, index in b).
    public static func match(_ a: KeypointSet, _ b: KeypointSet, maximumDistance: Int = 64, ratio: Double = 0.8) -> [(Int, Int)] {
        guard a.count > 0, b.count > 0 else { return [] }
        func distance(_ x: SIMD4<UInt64>, _ y: SIMD4<UInt64>) -> Int {
            let d = x ^ y
            return d[0].nonzeroBitCount + d[1].nonzeroBitCount + d[2].nonzeroBitCount + d[3].nonzeroBitCount
        }
        func nearest(_ d: SIMD4<UInt64>, in set: KeypointSet) -> (index: Int, best: Int, second: Int) {
            var index = -1, best = Int.max, second = Int.max
            for j in 0..<set.count {
                let h = distance(d, set.descriptors[j])
                if h < best { second = best; best = h; index = j } else if h < second { second = h }
            }
            return (index, best, second)
        }
        let backward = b.descriptors.map { nearest($0, in: a).index }
        var matches: [(Int, Int)] = []
        for i in 0..<a.count {
            let n = nearest(a.descriptors[i], in: b)
            guard n.index >= 0, n.best <= maximumDistance, backward[n.index] == i else { continue }
            guard n.second == Int.max || Double(n.best) < ratio * Double(n.second) else { continue }
            matches.append((i, n.index))
        }
        return matches
    }
}
