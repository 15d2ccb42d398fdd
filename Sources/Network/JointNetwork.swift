import CPUCheck
import Foundation
import NetworkKernels

/// Raw outputs of one forward pass at output stride 4, CHW.
public struct NetworkOutput: Sendable {
    public var height: Int
    public var width: Int
    /// Segmentation logits, `classCount × height × width`.
    public var logits: [Float]
    public var classCount: Int
    /// Depth in metres before the `abs` of post-processing, `height × width`.
    public var depth: [Float]
    /// Surface normals (3-task checkpoints), `3 × height × width`, not normalised.
    public var normals: [Float]?

    public init(height: Int, width: Int, logits: [Float], classCount: Int, depth: [Float], normals: [Float]? = nil) {
        precondition(logits.count == classCount * height * width && depth.count == height * width)
        self.height = height; self.width = width; self.logits = logits; self.classCount = classCount
        self.depth = depth; self.normals = normals
    }
}

/// The multi-task Light-Weight RefineNet (MobileNet-v2 encoder) on the CPU: GEMMs through
/// OpenBLAS, everything else in small SIMD kernels over CHW planes (no layout conversions).
/// Long-lived: it owns the folded weights and a workspace whose buffers are reused across frames.
/// Not thread-safe; one forward pass at a time.
public final class JointNetwork {
    public let weights: NetworkWeights
    /// Threads for OpenBLAS and for the network's own kernels.
    public var threads: Int
    /// Created after the CPU check: even its initialiser is AVX2 code (`KernelCPU`).
    let workspace: Workspace

    public init(weights: NetworkWeights, threads: Int = 2) {
        KernelCPU.requireSupported()
        workspace = Workspace()
        self.weights = weights
        self.threads = max(1, threads)
    }

    /// Arithmetic of the 1x1 convolutions (encoder expand/project, decoder skips, CRP, adapt).
    /// The stem (on the image), the first block (`layer2`), the depthwise layers and the 3x3
    /// heads stay float32. Switching to int8 quantises those weights once, per output channel.
    public var precision: NetworkPrecision = .float32 {
        didSet { if precision == .int8 && int8 == nil { int8 = Int8Weights(weights) } }
    }
    private var int8: Int8Weights?

    /// The 1x1 convolutions' weights on 8-bit grids, keyed like `NetworkWeights`.
    struct Int8Weights {
        /// Per stage and block: the expand and project weights, nil for the stages that stay
        /// float32 (`floatStages`).
        var blocks: [[(expand: QuantisedWeights, project: QuantisedWeights)?]]
        var skip: [String: QuantisedWeights], denseCRP: [Int: [QuantisedWeights]], adapt: [Int: QuantisedWeights]

        /// Encoder stages kept in float32 under int8: `layer2`, the first block after the stem.
        /// On a trained network (`tools/dev/train_joint_proxy.py`) its two 1x1 layers alone moved
        /// 3 % of the labels in int8, all other stages together 1 % (docs/results.md, "Int8 on a
        /// trained joint network"); as the stem, it costs little in float32.
        static let floatStages: Set<Int> = [0]

        init(_ w: NetworkWeights) {
            func q(_ values: [Float], rows: Int) -> QuantisedWeights {
                values.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: rows, columns: values.count / max(rows, 1)) }
            }
            blocks = w.stages.enumerated().map { s, stage in
                stage.map { Self.floatStages.contains(s) ? nil : (q($0.expand.weight, rows: $0.hiddenChannels), q($0.project.weight, rows: $0.outputChannels)) }
            }
            let width = NetworkArchitecture.width
            skip = w.skip.mapValues { q($0, rows: width) }
            denseCRP = w.denseCRP.mapValues { $0.map { q($0, rows: width) } }
            adapt = w.adapt.mapValues { q($0, rows: width) }
        }
    }

    public var architecture: NetworkArchitecture { weights.architecture }
    /// Buffers allocated so far; stays constant once a frame of the largest size has run.
    public var workspaceAllocations: Int { workspace.allocationCount }
    /// Memory held by the workspace (all planned buffers).
    public var workspaceBytes: Int { workspace.totalBytes }

    /// When set, `forward` records wall time per kind of work (stem, expand, depthwise, …) in
    /// `lastProfile`, for the benchmark's breakdown.
    public var profiling = false
    /// Milliseconds per kind of work in the last profiled forward pass.
    public private(set) var lastProfile: [String: Double] = [:]

    @inline(__always) private func timed<T>(_ kind: String, _ body: () -> T) -> T {
        guard profiling else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        lastProfile[kind, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return result
    }

    /// Multiply-adds of the convolutions for one forward pass at `height` x `width`, counted as
    /// direct convolutions (the usual basis of GFLOP/s figures, whatever algorithm runs).
    public func multiplyAdds(height: Int, width: Int) -> Double {
        let plan = layerPlan(height: height, width: width, asRun: false)
        return plan.gemms.reduce(0) { $0 + Double($1.m * $1.n * $1.k) } + plan.otherMultiplyAdds
    }

    /// The dense convolutions of one forward pass as the GEMMs they become (`M x K` weights
    /// times `K x N` maps; the wide 3x3 heads as Winograd's 36 GEMMs over the 4x4 tiles, the stem
    /// as im2col), plus the multiply-adds of the depthwise layers and narrow heads. The
    /// benchmark times these GEMMs alone as an in-run floor for the whole pass. `asRun: false`
    /// lists every head as its per-tap GEMM (the direct convolution's multiply-adds).
    public func layerPlan(height: Int, width: Int, asRun: Bool = true) -> (gemms: [(m: Int, n: Int, k: Int)], otherMultiplyAdds: Double) {
        var gemms: [(m: Int, n: Int, k: Int)] = []
        var other = 0.0
        var h = (height + 1) / 2, w = (width + 1) / 2
        gemms.append((NetworkArchitecture.stemChannels, h * w, 27))
        var sizes: [Int: Int] = [:]
        for (s, blocks) in weights.stages.enumerated() {
            for block in blocks {
                gemms.append((block.hiddenChannels, h * w, block.inputChannels))
                if block.stride == 2 { h = (h + 1) / 2; w = (w + 1) / 2 }
                other += Double(h * w * block.hiddenChannels * 9)
                gemms.append((block.outputChannels, h * w, block.hiddenChannels))
            }
            sizes[s + 2] = h * w
        }
        let width256 = NetworkArchitecture.width
        for (name, cin) in NetworkArchitecture.skipConvolutions {
            gemms.append((width256, sizes[Int(name.dropFirst(4))!]!, cin))
        }
        for layer in [8, 6, 4] {   // crp4, crp3, crp2: four dense stages and the adapt conv
            for _ in 0...NetworkArchitecture.crpStages { gemms.append((width256, sizes[layer]!, width256)) }
        }
        let quarter = sizes[3]!
        other += Double(quarter * width256 * NetworkArchitecture.crpStages)
        let out = NetworkArchitecture.outputSize(height: height, width: width)
        let tiles = ((out.height + 3) / 4) * ((out.width + 3) / 4)
        for head in weights.heads {
            other += Double(quarter * width256)
            if !asRun {
                gemms.append((9 * head.channels, quarter, width256))
            } else if head.winogradWeights != nil {
                gemms += repeatElement((m: head.channels, n: tiles, k: width256), count: 36)
            } else {
                other += Double(9 * head.channels * quarter * width256)   // narrowConvolution3x3
            }
        }
        return (gemms, other)
    }

    /// Runs the network on a normalised 1x3xHxW input (`NetworkInput`). `observe` sees the
    /// intermediate tensors under the names of the golden reference files (`layer1` …
    /// `layer8`, `sum4_relu6`, `crp4`, …, `segm`, `depth`), for locating a mismatch layer by layer.
    public func forward(_ input: NetworkInput,
                        observe: ((String, _ shape: [Int], UnsafeBufferPointer<Float>) -> Void)? = nil) -> NetworkOutput {
        configureBLAS()
        lastProfile = [:]
        let ws = workspace
        func show(_ name: String, _ map: FeatureMap) {
            observe?(name, [map.channels, map.height, map.width], UnsafeBufferPointer(start: map.base, count: map.count))
        }
        let x = ws.map("input", channels: 3, height: input.height, width: input.width)
        input.values.withUnsafeBufferPointer { x.base.update(from: $0.baseAddress!, count: x.count) }

        // Encoder.
        var current = ws.map("layer1", channels: NetworkArchitecture.stemChannels,
                             height: (input.height + 1) / 2, width: (input.width + 1) / 2)
        timed("stem 3x3") {
            weights.stem.weight.withUnsafeBufferPointer { w in
                weights.stem.bias.withUnsafeBufferPointer { b in
                    stemConvolution(x, into: current, weights: w.baseAddress!, bias: b.baseAddress!, workspace: ws, threads: threads)
                }
            }
        }
        show("layer1", current)
        var skips: [Int: FeatureMap] = [:]
        let int8 = precision == .int8 ? self.int8 : nil
        for (s, blocks) in weights.stages.enumerated() {
            for (b, block) in blocks.enumerated() {
                // Block outputs ping-pong within a stage; the stage's last output is kept as a skip.
                let key = b == blocks.count - 1 ? "layer\(s + 2)" : "block.\(b % 2)"
                current = invertedResidual(block, input: current, outputKey: key,
                                           int8: int8?.blocks[s][b])
            }
            skips[s + 2] = current
            show("layer\(s + 2)", current)
        }

        // Decoder.
        let width = NetworkArchitecture.width
        func conv1x1(_ kind: String, _ weights: [Float], _ input: FeatureMap, into output: FeatureMap, accumulate: Bool,
                     quantised: QuantisedWeights?) {
            if let quantised {
                timed(kind) {
                    int8Gemm(weights: quantised, n: output.plane, b: input.base, ldb: input.plane, c: output.base, ldc: output.plane,
                             threads: threads, workspace: ws, accumulate: accumulate)
                }
                return
            }
            timed(kind) { weights.withUnsafeBufferPointer {
                gemm(m: output.channels, n: output.plane, k: input.channels, a: $0.baseAddress!, b: input.base, c: output.base,
                     beta: accumulate ? 1 : 0, threads: threads)
            } }
        }
        func decoderMap(_ key: String, like skip: FeatureMap) -> FeatureMap {
            ws.map(key, channels: width, height: skip.height, width: skip.width)
        }
        let l8 = skips[8]!, l7 = skips[7]!, l6 = skips[6]!, l5 = skips[5]!, l4 = skips[4]!, l3 = skips[3]!

        var y = decoderMap("decoder.32", like: l8)
        conv1x1("decoder skip 1x1", self.weights.skip["conv8"]!, l8, into: y, accumulate: false, quantised: int8?.skip["conv8"])
        conv1x1("decoder skip 1x1", self.weights.skip["conv7"]!, l7, into: y, accumulate: true, quantised: int8?.skip["conv7"])
        timed("elementwise") { addBias(y, bias: nil, relu6: true, threads: threads) }
        show("sum4_relu6", y)

        func refine(_ crp: Int, _ y: FeatureMap) -> FeatureMap {
            let pooled = decoderMap("crp.pooled", like: y)
            let branch = decoderMap("crp.branch", like: y)
            let acc = decoderMap("crp.acc", like: y)
            var source = y
            for (i, w) in self.weights.denseCRP[crp]!.enumerated() {
                timed("CRP max-pool") {
                    maxPoolAccumulating(source, into: pooled, accumulator: acc, mode: i == 0 ? .copy : .add, workspace: ws, threads: threads)
                }
                conv1x1("CRP dense 1x1", w, pooled, into: branch, accumulate: false, quantised: int8?.denseCRP[crp]?[i])
                source = branch
            }
            timed("elementwise") { addBias(acc, bias: nil, residual: branch, relu6: false, threads: threads) }
            show("crp\(crp)", acc)
            let adapted = decoderMap("adapt.\(crp)", like: y)
            conv1x1("adapt 1x1", self.weights.adapt[crp]!, acc, into: adapted, accumulate: false, quantised: int8?.adapt[crp])
            show("adapt\(crp)", adapted)
            return adapted
        }

        // Each refinement step: upsample to the next skip's size, add that skip's 1x1
        // projection(s) (the GEMMs accumulate into the upsampled map), ReLU6.
        func merge(_ adapted: FeatureMap, level: Int, skips: [(name: String, map: FeatureMap)]) -> FeatureMap {
            let y = decoderMap("decoder.\(level)", like: skips[0].map)
            timed("bilinear upsample") { resizeBilinear(adapted, into: y, workspace: ws, threads: threads) }
            show("up\(level + 1)", y)
            for skip in skips {
                conv1x1("decoder skip 1x1", self.weights.skip[skip.name]!, skip.map, into: y, accumulate: true,
                        quantised: int8?.skip[skip.name])
            }
            timed("elementwise") { addBias(y, bias: nil, relu6: true, threads: threads) }
            show("sum\(level)_relu6", y)
            return y
        }
        y = merge(refine(4, y), level: 3, skips: [("conv6", l6), ("conv5", l5)])
        y = merge(refine(3, y), level: 2, skips: [("conv4", l4)])
        y = merge(refine(2, y), level: 1, skips: [("conv3", l3)])

        let shared = decoderMap("crp1.out", like: l3)
        timed("CRP1 depthwise") {
            self.weights.depthwiseCRP.withUnsafeBufferPointer {
                depthwiseCRP(y, into: shared, stageWeights: $0.baseAddress!, stages: NetworkArchitecture.crpStages,
                             workspace: ws, threads: threads)
            }
        }
        show("crp1", shared)

        // Heads: depthwise 1x1 + ReLU6, then a dense 3x3 with bias: Winograd for the wide heads,
        // a direct sum for the narrow ones. Both apply the 1x1 + ReLU6 as they read their input;
        // the activated map is written only for an observer.
        var results: [String: [Float]] = [:]
        for head in self.weights.heads {
            if observe != nil {
                let activated = decoderMap("head.pre", like: l3)
                timed("heads") { head.preScale.withUnsafeBufferPointer {
                    scaleChannelsReLU6(shared, scale: $0.baseAddress!, into: activated, threads: threads)
                } }
                show("pre_\(head.name)_relu6", activated)
            }
            let out = ws.map("head.\(head.name)", channels: head.channels, height: l3.height, width: l3.width)
            timed("heads") { head.bias.withUnsafeBufferPointer { b in
                if let winograd = head.winogradWeights {
                    winograd.withUnsafeBufferPointer { u in head.preScale.withUnsafeBufferPointer { scale in
                        Winograd.convolution3x3(shared, into: out, transformed: u.baseAddress!, bias: b.baseAddress!,
                                                inputScale: scale.baseAddress!, workspace: ws, threads: threads)
                    } }
                } else {
                    head.tapWeights.withUnsafeBufferPointer { w in head.preScale.withUnsafeBufferPointer { scale in
                        narrowConvolution3x3(shared, into: out, tapWeights: w.baseAddress!, bias: b.baseAddress!,
                                             inputScale: scale.baseAddress!, workspace: ws, threads: threads)
                    } }
                }
            } }
            show(head.name, out)
            results[head.name] = Array(UnsafeBufferPointer(start: out.base, count: out.count))
        }
        return NetworkOutput(height: l3.height, width: l3.width, logits: results["segm"]!,
                             classCount: architecture.classCount, depth: results["depth"]!, normals: results["normal"])
    }

    private func invertedResidual(_ block: NetworkWeights.InvertedResidual, input: FeatureMap, outputKey: String,
                                  int8: (expand: QuantisedWeights, project: QuantisedWeights)?) -> FeatureMap {
        let ws = workspace
        // Blocks with wide rows run in one pass (`fusedInvertedResidual`), in float32 and in
        // int8: their expanded maps are the ones that spill out of the caches.
        if input.width >= fusedInvertedResidualMinimumWidth {
            let output = ws.map(outputKey, channels: block.outputChannels,
                                height: (input.height + block.stride - 1) / block.stride,
                                width: (input.width + block.stride - 1) / block.stride)
            timed("encoder fused blocks") {
                InvertedResidualWeights.with(expand: block.expand.weight, expandBias: block.expand.bias,
                                             depthwise: block.depthwise.weight, depthwiseBias: block.depthwise.bias,
                                             project: block.project.weight, projectBias: block.project.bias,
                                             hidden: block.hiddenChannels, stride: block.stride, quantised: int8) { k in
                    fusedInvertedResidual(input, into: output, weights: k, residual: block.residual, workspace: ws, threads: threads)
                }
            }
            return output
        }
        let expanded = ws.map("block.expand", channels: block.hiddenChannels, height: input.height, width: input.width)
        timed("encoder expand 1x1") {
            block.expand.weight.withUnsafeBufferPointer { w in
                block.expand.bias.withUnsafeBufferPointer { b in
                    convolution1x1(input, into: expanded, weights: w.baseAddress!, bias: b.baseAddress!, relu6: true, threads: threads,
                                   quantised: int8?.expand, workspace: ws)
                }
            }
        }
        let ho = (input.height + block.stride - 1) / block.stride, wo = (input.width + block.stride - 1) / block.stride
        let filtered = ws.map("block.depthwise", channels: block.hiddenChannels, height: ho, width: wo)
        timed("encoder depthwise 3x3") {
            block.depthwise.weight.withUnsafeBufferPointer { w in
                block.depthwise.bias.withUnsafeBufferPointer { b in
                    depthwise3x3(expanded, into: filtered, weights: w.baseAddress!, bias: b.baseAddress!, stride: block.stride,
                                 workspace: ws, threads: threads)
                }
            }
        }
        let output = ws.map(outputKey, channels: block.outputChannels, height: ho, width: wo)
        timed("encoder project 1x1") {
            block.project.weight.withUnsafeBufferPointer { w in
                block.project.bias.withUnsafeBufferPointer { b in
                    convolution1x1(filtered, into: output, weights: w.baseAddress!, bias: b.baseAddress!,
                                   residual: block.residual ? input : nil, relu6: false, threads: threads,
                                   quantised: int8?.project, workspace: ws)
                }
            }
        }
        return output
    }
}
