import Foundation
import NetworkKernels

/// The network's parameters with BatchNorm folded into the convolutions and the 3x3 head
/// weights rearranged tap-major for the per-tap GEMM. Built from a checkpoint in the official
/// key layout after checking every name and shape.
public struct NetworkWeights: Sendable {
    public let architecture: NetworkArchitecture

    struct Convolution: Sendable { var weight: [Float]; var bias: [Float] }
    struct InvertedResidual: Sendable {
        var expand: Convolution, depthwise: Convolution, project: Convolution
        var inputChannels: Int, hiddenChannels: Int, outputChannels: Int, stride: Int
        var residual: Bool { stride == 1 && inputChannels == outputChannels }
    }
    struct Head: Sendable {
        var name: String; var channels: Int; var preScale: [Float]; var tapWeights: [Float]; var bias: [Float]
        /// Winograd F(4x4, 3x3) weights (`Winograd.transformedWeights`) for heads wide enough to
        /// gain from them; nil: per-tap GEMM. The input transform costs the same for any output
        /// width, so the 1-channel depth head stays per-tap (docs/results.md, "Winograd heads").
        var winogradWeights: [Float]?

        /// Output channels from which a head uses Winograd.
        static let winogradMinimumChannels = 16
    }

    var stem: Convolution
    var stages: [[InvertedResidual]]
    /// conv8 … conv3, [256, cin] each.
    var skip: [String: [Float]]
    /// crp4, crp3, crp2: four dense [256, 256] stage weights each.
    var denseCRP: [Int: [[Float]]]
    /// crp1: the four stages' per-channel scales, stage-major (`[stage][channel]`).
    var depthwiseCRP: [Float]
    var adapt: [Int: [Float]]
    var heads: [Head]

    /// Loads a safetensors checkpoint in the official key layout (see `tools/convert_checkpoint.py`
    /// for the authors' `.ckpt` files). The class count and the optional normal head are read
    /// from the file.
    public static func load(_ url: URL) throws -> NetworkWeights {
        try NetworkWeights(tensors: try Safetensors.read(url), source: url.path)
    }

    /// BatchNorm epsilon of the reference model.
    static let batchNormEpsilon: Float = 1e-5

    public init(tensors: [String: NamedTensor], source: String) throws {
        var classCount = 40
        if let segm = tensors["segm.weight"], segm.shape.count == 4, segm.shape[0] > 0 { classCount = segm.shape[0] }
        let architecture = NetworkArchitecture(classCount: classCount, hasNormals: tensors["normal.weight"] != nil || tensors["pre_normal.weight"] != nil)
        let expected = architecture.expectedTensors
        let expectedNames = Set(expected.map(\.name))
        var missing: [String] = [], misshaped: [String] = []
        for (name, shape) in expected {
            guard let t = tensors[name] else { missing.append(name); continue }
            if t.shape != shape { misshaped.append("\(name) \(t.shape) (expected \(shape))") }
            if !t.isFloatingPoint { misshaped.append("\(name) has dtype \(t.dtype) (expected a floating-point dtype)") }
        }
        let extra = tensors.keys.filter { !expectedNames.contains($0) && !$0.hasSuffix("num_batches_tracked") }.sorted()
        guard missing.isEmpty, misshaped.isEmpty, extra.isEmpty else {
            var hint = extra
            if extra.contains(where: { $0.hasPrefix("module.") }) {
                hint.insert("(keys start with 'module.': a DataParallel or DenseTorch checkpoint; convert it with tools/convert_checkpoint.py)", at: 0)
            }
            throw NetworkError.weightMismatch(path: source, missing: missing, extra: hint, misshaped: misshaped)
        }
        for (name, _) in expected where !tensors[name]!.values.allSatisfy({ $0.isFinite }) {
            throw NetworkError.invalidTensor(path: source, name: name, reason: "contains NaN or infinite values")
        }
        self.architecture = architecture
        func t(_ name: String) -> [Float] { tensors[name]!.values }

        // BatchNorm folding: s = γ/√(σ² + ε), W' = W·s per output channel, b' = β − μ·s.
        func folded(_ conv: String, _ bn: String) throws -> Convolution {
            var w = t(conv)
            let gamma = t("\(bn).weight"), beta = t("\(bn).bias"), mean = t("\(bn).running_mean"), variance = t("\(bn).running_var")
            let cout = gamma.count, perOutput = w.count / cout
            var bias = [Float](repeating: 0, count: cout)
            for o in 0..<cout {
                guard variance[o] >= 0 else {
                    throw NetworkError.invalidTensor(path: source, name: "\(bn).running_var", reason: "negative variance \(variance[o]) at channel \(o)")
                }
                let s = gamma[o] / (variance[o] + Self.batchNormEpsilon).squareRoot()
                for i in 0..<perOutput { w[o * perOutput + i] *= s }
                bias[o] = beta[o] - mean[o] * s
            }
            return Convolution(weight: w, bias: bias)
        }

        stem = try folded("layer1.0.weight", "layer1.1")
        var stages: [[InvertedResidual]] = []
        var cin = NetworkArchitecture.stemChannels
        for (s, stage) in NetworkArchitecture.stages.enumerated() {
            var blocks: [InvertedResidual] = []
            for b in 0..<stage.blocks {
                let p = "layer\(s + 2).\(b).output"
                blocks.append(InvertedResidual(
                    expand: try folded("\(p).0.0.weight", "\(p).0.1"),
                    depthwise: try folded("\(p).1.0.weight", "\(p).1.1"),
                    project: try folded("\(p).2.0.weight", "\(p).2.1"),
                    inputChannels: cin, hiddenChannels: cin * stage.expansion, outputChannels: stage.outputChannels,
                    stride: b == 0 ? stage.stride : 1))
                cin = stage.outputChannels
            }
            stages.append(blocks)
        }
        self.stages = stages
        skip = Dictionary(uniqueKeysWithValues: NetworkArchitecture.skipConvolutions.map { ($0.0, t("\($0.0).weight")) })
        denseCRP = Dictionary(uniqueKeysWithValues: [4, 3, 2].map { crp in
            (crp, (1...NetworkArchitecture.crpStages).map { t("crp\(crp).0.\($0)_outvar_dimred.weight") })
        })
        depthwiseCRP = (1...NetworkArchitecture.crpStages).flatMap { t("crp1.0.\($0)_outvar_dimred.weight") }
        adapt = Dictionary(uniqueKeysWithValues: [4, 3, 2].map { ($0, t("conv_adapt\($0).weight")) })
        let headNames = ["segm": "pre_segm", "depth": "pre_depth", "normal": "pre_normal"]
        heads = architecture.heads.map { head in
            let w = t("\(head.name).weight"), cinHead = NetworkArchitecture.width
            // [cout][cin][tap] → [tap][cout][cin]
            var taps = [Float](repeating: 0, count: w.count)
            for o in 0..<head.channels {
                for i in 0..<cinHead {
                    for k in 0..<9 { taps[(k * head.channels + o) * cinHead + i] = w[(o * cinHead + i) * 9 + k] }
                }
            }
            let winograd = head.channels >= Head.winogradMinimumChannels ? taps.withUnsafeBufferPointer {
                Winograd.transformedWeights(tapWeights: $0.baseAddress!, outputChannels: head.channels, inputChannels: cinHead)
            } : nil
            return Head(name: head.name, channels: head.channels, preScale: t("\(headNames[head.name]!).weight"),
                        tapWeights: taps, bias: t("\(head.name).bias"), winogradWeights: winograd)
        }
    }

    /// Parameter count as PyTorch reports it (running statistics are buffers, not parameters):
    /// 3,070,057 for the 40-class two-task network.
    public var parameterCount: Int {
        architecture.expectedTensors.filter { !$0.name.contains("running_") }.reduce(0) { $0 + $1.shape.reduce(1, *) }
    }
}

extension NetworkWeights {
    /// Deterministic random weights (He-scaled convolutions, unit BatchNorm statistics) for
    /// benchmarks and kernel tests when no checkpoint is at hand. Their outputs mean nothing.
    public static func random(_ architecture: NetworkArchitecture = NetworkArchitecture(), seed: UInt64 = 0) -> NetworkWeights {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> Float {   // SplitMix64 → uniform [-1, 1)
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Float(z >> 40) / Float(1 << 23) - 1
        }
        var tensors: [String: NamedTensor] = [:]
        for (name, shape) in architecture.expectedTensors {
            let count = shape.reduce(1, *)
            let values: [Float]
            if name.hasSuffix("running_var") || (name.hasSuffix(".weight") && shape.count == 1) {
                values = (0..<count).map { _ in 1 + 0.1 * next() }
            } else if name.hasSuffix("running_mean") || name.hasSuffix(".bias") {
                values = (0..<count).map { _ in 0.1 * next() }
            } else {
                let fanIn = shape.dropFirst().reduce(1, *)
                let scale = (6 / Float(max(fanIn, 1))).squareRoot()
                values = (0..<count).map { _ in scale * next() }
            }
            tensors[name] = NamedTensor(shape: shape, values: values)
        }
        // The names and shapes come from the architecture itself, so this cannot fail.
        return try! NetworkWeights(tensors: tensors, source: "random weights (seed \(seed))")
    }
}
