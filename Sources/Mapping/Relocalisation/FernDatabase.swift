import Geometry
import Imaging

/// A small deterministic generator (SplitMix64) so ferns and descriptor patterns are the same in
/// every run and every build.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Randomised ferns over a frame's appearance (Glocker et al., "Real-time RGB-D camera
/// relocalization via randomized ferns for keyframe encoding", as ElasticFusion uses them): the
/// frame is block-averaged to 80x60; each fern compares a few (pixel, channel) values of R, G, B
/// and depth with fixed random thresholds, and the bits make the fern's code. Two frames are as
/// dissimilar as the fraction of ferns whose codes differ.
///
/// Keyframes are added when a tracked frame is dissimilar enough from every stored one
/// (ElasticFusion's 0.3095), so the database covers the places the camera has been with few
/// entries; a lost camera looks up its nearest keyframes to relocalise from.
public struct FernDatabase: Sendable {
    public struct Parameters: Sendable, Equatable {
        public var ferns = 500
        /// Tests per fern (bits of its code), at most 8.
        public var testsPerFern = 4
        public var width = 80
        public var height = 60
        /// A tracked frame becomes a keyframe when its dissimilarity to every keyframe exceeds this.
        public var novelty = 0.3095
        /// Depth thresholds are drawn from this range (metres), as ElasticFusion's 0.8-4 m.
        public var depthRange: ClosedRange<Float> = 0.8...4
        public var seed: UInt64 = 0x5EED_FE55
        public init() {}
    }

    /// One fern test: channel 0-2 (R, G, B in 0...255) or 3 (depth in metres) at a pixel of the
    /// small image, against a threshold.
    struct Test: Sendable {
        var pixel: Int
        var channel: Int
        var threshold: Float
    }

    /// A frame's fern codes.
    public struct Code: Sendable, Equatable {
        public var values: [UInt8]
    }

    public struct Keyframe: Sendable {
        public var code: Code
        public var worldFromCamera: RigidTransform
        /// The sequence position of the frame it was made from.
        public var position: Int
        /// The map's time (frames fused before it) when it was taken: a loop closure looks only
        /// at keyframes older than the active window.
        public var tick: Int
        /// Keypoints with depth, for registering a lost frame to this view.
        public var features: KeypointSet
        /// The view thinned to oriented points, for registering a lost frame by surface shape
        /// where its image differs too much from this one's for the corners to match.
        public var surface = OrientedPoints()
    }

    public let parameters: Parameters
    let tests: [Test]
    public private(set) var keyframes: [Keyframe] = []

    public init(parameters: Parameters = Parameters()) {
        precondition(parameters.testsPerFern >= 1 && parameters.testsPerFern <= 8 && parameters.ferns > 0)
        self.parameters = parameters
        var random = SplitMix64(seed: parameters.seed)
        var tests: [Test] = []
        for _ in 0..<(parameters.ferns * parameters.testsPerFern) {
            let pixel = Int.random(in: 0..<(parameters.width * parameters.height), using: &random)
            let channel = Int.random(in: 0..<4, using: &random)
            let threshold = channel == 3 ? Float.random(in: parameters.depthRange, using: &random)
                                         : Float(Int.random(in: 0..<256, using: &random))
            tests.append(Test(pixel: pixel, channel: channel, threshold: threshold))
        }
        self.tests = tests
    }

    /// The frame's codes. Colour and depth are block-averaged to the database's size (depth over
    /// its valid pixels only; a block without depth reads 0, below every threshold).
    public func encode(color: ColorImage?, depth: DepthImage) -> Code {
        let w = parameters.width, h = parameters.height
        var small = [SIMD4<Float>](repeating: .zero, count: w * h)
        let W = depth.width, H = depth.height
        guard W >= w, H >= h else { return Code(values: [UInt8](repeating: 0, count: parameters.ferns)) }
        let useColor = color.map { $0.width == W && $0.height == H } ?? false
        for by in 0..<h {
            let y0 = by * H / h, y1 = (by + 1) * H / h
            for bx in 0..<w {
                let x0 = bx * W / w, x1 = (bx + 1) * W / w
                var rgb = SIMD3<Float>(), z: Float = 0, zCount: Float = 0
                for y in y0..<y1 {
                    for x in x0..<x1 {
                        let d = depth.pixels[y * W + x]
                        if d > 0, d.isFinite { z += d; zCount += 1 }
                        if useColor, let c = color?.pixels[y * W + x] { rgb += SIMD3(Float(c.r), Float(c.g), Float(c.b)) }
                    }
                }
                let n = Float((y1 - y0) * (x1 - x0))
                let mean = rgb / max(n, 1)
                small[by * w + bx] = SIMD4(mean.x, mean.y, mean.z, zCount > 0 ? z / zCount : 0)
            }
        }
        var values = [UInt8](repeating: 0, count: parameters.ferns)
        for f in 0..<parameters.ferns {
            var code: UInt8 = 0
            for t in 0..<parameters.testsPerFern {
                let test = tests[f * parameters.testsPerFern + t]
                if small[test.pixel][test.channel] > test.threshold { code |= 1 << UInt8(t) }
            }
            values[f] = code
        }
        return Code(values: values)
    }

    /// Fraction of ferns whose codes differ (0 = the same appearance, 1 = nothing in common).
    public static func dissimilarity(_ a: Code, _ b: Code) -> Double {
        guard a.values.count == b.values.count, !a.values.isEmpty else { return 1 }
        var differ = 0
        for i in a.values.indices where a.values[i] != b.values[i] { differ += 1 }
        return Double(differ) / Double(a.values.count)
    }

    /// The smallest dissimilarity to any keyframe (1 when there is none).
    public func nearestDissimilarity(_ code: Code) -> Double {
        keyframes.map { Self.dissimilarity(code, $0.code) }.min() ?? 1
    }

    /// Whether a frame with this code would be added as a keyframe.
    public func isNovel(_ code: Code) -> Bool { nearestDissimilarity(code) > parameters.novelty }

    public mutating func add(_ keyframe: Keyframe) { keyframes.append(keyframe) }

    /// Moves every keyframe's pose (after a loop closure bent the map they were taken in).
    /// Keypoints are stored in their camera's frame, so they move with it.
    public mutating func movePoses(_ move: (_ pose: RigidTransform, _ position: Int) -> RigidTransform) {
        for k in keyframes.indices { keyframes[k].worldFromCamera = move(keyframes[k].worldFromCamera, keyframes[k].position) }
    }

    /// The `count` keyframes most similar to `code` among those `include` accepts, most similar
    /// first, with their dissimilarity.
    public func nearest(_ code: Code, count: Int, where include: (Keyframe) -> Bool = { _ in true }) -> [(index: Int, dissimilarity: Double)] {
        let scored = keyframes.indices.filter { include(keyframes[$0]) }.map { ($0, Self.dissimilarity(code, keyframes[$0].code)) }
        return Array(scored.sorted { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 > $1.0) }.prefix(count)).map { (index: $0.0, dissimilarity: $0.1) }
    }
}
