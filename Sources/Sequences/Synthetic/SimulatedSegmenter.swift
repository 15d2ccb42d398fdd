import Foundation
import Imaging
import Semantics

/// Imitates an imperfect per-frame segmentation network from ground-truth labels, so label
/// fusion has realistic mistakes to fix: label noise near boundaries, whole regions given a
/// confusable class in some frames, scattered wrong pixels, a persistent confusion that no
/// number of views fixes, softened probabilities, and the network's output stride.
///
/// Deterministic in (seed, frame index). Errors change from frame to frame except the
/// persistent ones.
public struct SimulatedSegmenter: Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Output resolution divisor (the joint network's output stride is 4).
        public var stride = 4
        /// Probability that an output pixel on a label boundary takes a neighbour's class.
        public var boundaryFlip = 0.5
        /// Probability, per frame and class, that a blob-shaped part of the class gets its
        /// confusable class.
        public var regionErrorRate = 0.35
        /// Fraction of pixels given a random confusable class.
        public var randomPixelRate = 0.04
        /// Confusions present in every frame (same blob field), with their rate per pixel region.
        public var persistentRate = 0.7
        /// Range of the probability given to the predicted class.
        public var topProbability: ClosedRange<Double> = 0.45...0.8
        public init() {}
    }

    public let classSet: ClassSet
    public var parameters: Parameters
    public var seed: UInt64
    /// Class → the class it is mistaken for.
    public let confusions: [Int: Int]
    /// Class → class it is always partly mistaken for.
    public let persistent: [Int: Int]

    public init(classSet: ClassSet = .nyu40, parameters: Parameters = Parameters(), seed: UInt64 = 1) {
        self.classSet = classSet
        self.parameters = parameters
        self.seed = seed
        func id(_ name: String) -> Int? { classSet.index(named: name) }
        let pairs: [(String, String)] = [
            ("chair", "sofa"), ("sofa", "chair"), ("table", "desk"), ("cabinet", "counter"), ("bookshelf", "shelves"),
            ("books", "bookshelf"), ("wall", "door"), ("door", "wall"), ("picture", "window"), ("window", "curtain"),
            ("television", "picture"), ("floor", "floor mat"), ("ceiling", "wall"), ("lamp", "otherprop"),
            ("box", "otherprop"), ("pillow", "sofa"), ("counter", "cabinet"), ("desk", "table"),
            // NYU-13 names
            ("furniture", "objects"), ("objects", "furniture"), ("tv", "picture"),
        ]
        var map: [Int: Int] = [:]
        for (a, b) in pairs { if let x = id(a), let y = id(b) { map[x] = y } }
        confusions = map
        var always: [Int: Int] = [:]
        if let pillow = id("pillow"), let sofa = id("sofa") { always[pillow] = sofa }
        persistent = always
    }

    func confusable(_ c: Int) -> Int {
        confusions[c] ?? (classSet.count > 1 ? (c + 1) % classSet.count : c)
    }

    /// Class probabilities for one frame's ground-truth labels.
    public func predict(labels: LabelImage, frameIndex: Int) -> ClassProbabilityMap {
        let s = max(1, parameters.stride)
        let w = (labels.width + s - 1) / s, h = (labels.height + s - 1) / s
        let C = classSet.count
        let frame = UInt64(frameIndex)
        // Ground truth sampled at output pixel centres.
        var truth = [Int](repeating: -1, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let l = labels[min(labels.width - 1, x * s + s / 2), min(labels.height - 1, y * s + s / 2)]
                truth[y * w + x] = l == ClassSet.ignoreLabel || Int(l) >= C ? -1 : Int(l)
            }
        }
        let blobScale = Double(max(w, h)) / 4
        var values = [Float](repeating: 0, count: w * h * C)
        for y in 0..<h {
            for x in 0..<w {
                let p = y * w + x
                let gt = truth[p]
                var predicted = gt
                var runnerUp = -1
                if gt < 0 {
                    predicted = Int(SyntheticNoise.hash(seed, frame, UInt64(p), 9) % UInt64(C))
                } else {
                    // Persistent confusion: the same blob field in every frame.
                    if let wrong = persistent[gt],
                       SyntheticNoise.fractal(Double(x) / blobScale, Double(y) / blobScale, seed: seed &+ 101) < parameters.persistentRate {
                        predicted = wrong
                    }
                    // Region error in this frame.
                    if SyntheticNoise.uniform(seed, frame, UInt64(gt), 1) < parameters.regionErrorRate,
                       SyntheticNoise.fractal(Double(x) / blobScale, Double(y) / blobScale, seed: seed &+ frame &* 7919 &+ UInt64(gt)) > 0.45 {
                        predicted = confusable(gt)
                    }
                    // Boundary noise.
                    var neighbour = -1
                    for (dx, dy) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                        let xx = x + dx, yy = y + dy
                        guard xx >= 0, yy >= 0, xx < w, yy < h else { continue }
                        let t = truth[yy * w + xx]
                        if t >= 0 && t != gt { neighbour = t }
                    }
                    if neighbour >= 0 && SyntheticNoise.uniform(seed, frame, UInt64(p), 2) < parameters.boundaryFlip {
                        predicted = neighbour
                    }
                    if SyntheticNoise.uniform(seed, frame, UInt64(p), 3) < parameters.randomPixelRate {
                        predicted = confusable(Int(SyntheticNoise.hash(seed, frame, UInt64(p), 4) % UInt64(C)))
                    }
                    runnerUp = predicted == gt ? confusable(gt) : gt
                }
                let u = SyntheticNoise.uniform(seed, frame, UInt64(p), 5)
                let top = parameters.topProbability.lowerBound + (parameters.topProbability.upperBound - parameters.topProbability.lowerBound) * u
                let second = runnerUp >= 0 && runnerUp != predicted ? (1 - top) * 0.6 : 0
                let floor = (1 - top - second) / Double(C)
                let base = p * C
                for c in 0..<C { values[base + c] = Float(floor) }
                values[base + predicted] += Float(top)
                if runnerUp >= 0 && runnerUp != predicted { values[base + runnerUp] += Float(second) }
            }
        }
        return ClassProbabilityMap(width: w, height: h, classCount: C, values: values)
    }

    /// Pixel accuracy of a probability map's argmax (nearest-upsampled) against labels,
    /// ignoring 255.
    public static func accuracy(of map: ClassProbabilityMap, against labels: LabelImage) -> Double {
        let predicted = map.argmax().resizedNearest(width: labels.width, height: labels.height)
        var correct = 0, total = 0
        for i in 0..<labels.count where labels.pixels[i] != ClassSet.ignoreLabel {
            total += 1
            if predicted.pixels[i] == labels.pixels[i] { correct += 1 }
        }
        return total > 0 ? Double(correct) / Double(total) : 0
    }
}
