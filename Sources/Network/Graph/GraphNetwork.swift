import CPUCheck
import Foundation
import Imaging
import NetworkKernels

/// A CHW float32 map: one output of a converted model at its output resolution
/// (logits for segmenters, metres for depth models).
public struct PlanarMap: Sendable {
    public var channels: Int, height: Int, width: Int
    public var values: [Float]
    public init(channels: Int, height: Int, width: Int, values: [Float]) {
        precondition(values.count == channels * height * width)
        self.channels = channels; self.height = height; self.width = width; self.values = values
    }
}

/// Runs a converted mobile model (`docs/graph-format.md`) on the CPU in float32: a small
/// executor over the graph's operators, reusing the network's kernels (GEMM convolutions,
/// SIMD depthwise, resize, pooling). Shapes are inferred per input size and the tensors are
/// packed into reusable buffers by their lifetimes, so after the first frame of a size nothing
/// is allocated. Long-lived; one forward pass at a time.
public final class GraphNetwork {
    let model: GraphModel
    /// Threads for the kernels.
    public var threads: Int
    /// Created after the CPU check: even its initialiser is AVX2 code (`KernelCPU`).
    let workspace: Workspace
    private var constantMaps: [Int: FeatureMap] = [:]
    private var plans: [Int: Plan] = [:]

    public var kind: GraphModelKind { model.kind }
    /// The input size the model was converted at (width, height).
    public var nativeSize: (width: Int, height: Int) { (model.nativeWidth, model.nativeHeight) }
    /// The file's `__metadata__` (kind, class set, source, and model facts such as a depth
    /// model's training focal length).
    public var metadata: [String: String] { model.metadata }
    /// The file it came from.
    public var source: String { model.source }
    /// Operators after load-time rewriting (zero padding folded into convolutions).
    public var operationCount: Int { model.operations.count }
    public var workspaceAllocations: Int { workspace.allocationCount }
    public var workspaceBytes: Int { workspace.totalBytes }

    /// Arithmetic of the dense convolutions. Switching to int8 prepares their 8-bit weights once.
    public var precision: NetworkPrecision = .float32 {
        didSet { if precision == .int8 && quantised.isEmpty { quantiseWeights() } }
    }
    /// Whether inverted residuals run in one pass (`Plan.fusedBlocks`); off only to check them
    /// against their three operators. Part of each plan's key: a fused block's inner maps get
    /// no buffers.
    var fusesInvertedResiduals = true
    /// Per operation index: the 8-bit weights of a dense convolution. The first convolution
    /// (on the image) stays float32: its three input channels make it cheap, and it sees the
    /// raw input.
    private var quantised: [Int: QuantisedWeights] = [:]
    /// How many dense convolutions run in int8, and how many of those use the file's own 8-bit
    /// weights exactly (the rest are quantised from float per output channel).
    public var int8Convolutions: (total: Int, exact: Int) {
        (quantised.count, quantised.values.filter(\.exact).count)
    }

    /// A file that stores 8-bit weights (`GraphModel.WeightGrid`) keeps its own integers; float
    /// weights are quantised per output channel.
    private func quantiseWeights() {
        for (i, op) in model.operations.enumerated() {
            guard case let .convolution(weights, _, cout, cin, window) = op.kind, op.inputs.first != .tensor(model.inputTensor) else { continue }
            let k = cin * window.kernelHeight * window.kernelWidth
            guard weights.count == cout * k, k <= QuantisedWeights.maximumColumns else { continue }
            quantised[i] = weights.withUnsafeBufferPointer { w in
                op.weightGrid.flatMap {
                    QuantisedWeights(w.baseAddress!, rows: cout, columns: k, scales: $0.scales, zeroPoints: $0.zeroPoints,
                                     storedRange: $0.storedRange)
                } ?? QuantisedWeights(w.baseAddress!, rows: cout, columns: k)
            }
        }
    }

    /// When set, `forward` records milliseconds per operator type in `lastProfile`.
    public var profiling = false
    public private(set) var lastProfile: [String: Double] = [:]

    /// Loads a `graph-v1` safetensors file written by `tools/convert_tflite.py`.
    public static func load(_ url: URL, threads: Int = 2) throws -> GraphNetwork {
        KernelCPU.requireSupported()   // GraphModel builds kernel values (ConvGeometry, Clamp): AVX2 code
        let (tensors, metadata) = try Safetensors.readWithMetadata(url)
        return GraphNetwork(model: try GraphModel(tensors: tensors, metadata: metadata, source: url.path), threads: threads)
    }

    /// `load` on a file already in memory (`path` names it in errors), so the fuzzer and tests
    /// can feed crafted bytes without a file system round trip.
    public static func load(data: Data, path: String, threads: Int = 2) throws -> GraphNetwork {
        let tensors = try Safetensors.decode(data, path: path), metadata = try Safetensors.metadata(data, path: path)
        return GraphNetwork(model: try GraphModel(tensors: tensors, metadata: metadata, source: path), threads: threads)
    }

    /// Whether `url` is a converted mobile model (as opposed to the joint network's checkpoint
    /// layout): reads only the header.
    public static func isGraphModel(_ url: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 8), head.count == 8 else { return false }
        let length = head.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length > 0, length < 1 << 26, let header = try? handle.read(upToCount: Int(length)) else { return false }
        return (try? Safetensors.metadata(head + header, path: url.path))?["semfuse.format"] == GraphModel.format
    }

    init(model: GraphModel, threads: Int) {
        KernelCPU.requireSupported()
        workspace = Workspace()
        self.model = model
        self.threads = max(1, threads)
        for (id, constant) in model.constants {
            let map = workspace.map("graph.constant.\(id)", channels: constant.channels, height: constant.height, width: constant.width)
            constant.values.withUnsafeBufferPointer { map.base.update(from: $0.baseAddress!, count: constant.values.count) }
            constantMaps[id] = map
        }
    }

    // MARK: Shapes and buffers

    struct Dims: Equatable, Hashable {
        var channels: Int, height: Int, width: Int
        var count: Int { channels * height * width }
    }

    /// Per input size: every tensor's dims, its buffer slot, and each slot's size.
    struct Plan {
        var dims: [Int: Dims]
        var slot: [Int: Int]
        /// Tensors written in place into a concatenation's output: that tensor and the offset
        /// (in floats) of their channels there. They have no slot of their own.
        var alias: [Int: (tensor: Int, offset: Int)] = [:]
        /// Concatenations whose output needs its clamp applied (an input not already clamped
        /// within it).
        var concatenationClamps: Set<Int> = []
        var capacities: [Int]
        var multiplyAdds: Double
        /// Expand operators whose depthwise and projection run with them in one pass
        /// (`fusedInvertedResidual`), and the operators that pass therefore covers.
        var fusedBlocks: [Int: (depthwise: Int, project: Int)] = [:]
        var fusedAway: Set<Int> = []
    }

    /// Whether inputs of a channel concatenation are written straight into its output (CHW:
    /// each input is a contiguous run of the output) instead of being copied there. Off only
    /// to compare against the copying path (tests).
    var concatenatesInPlace = true {
        didSet { plans = [:] }
    }

    private func dims(fromNHWC shape: [Int]) -> Dims {
        let s = Array(repeating: 1, count: max(0, 4 - shape.count)) + shape
        return Dims(channels: s[3], height: s[1], width: s[2])
    }

    /// Output dims of every tensor for an input of `height` x `width`. Lazy, because a resize
    /// may take its size from a tensor computed later in op order.
    func inferDims(height: Int, width: Int) throws -> [Int: Dims] {
        var known: [Int: Dims] = [model.inputTensor: Dims(channels: 3, height: height, width: width)]
        var producer: [Int: Int] = [:]
        for (i, op) in model.operations.enumerated() { for t in op.outputs { producer[t] = i } }
        var visiting: Set<Int> = []
        func fail(_ op: GraphModel.Operation, _ reason: String) -> NetworkError {
            .invalidGraph(path: model.source, reason: "\(op.name) at input \(width)x\(height): \(reason)")
        }
        func dims(_ operand: GraphModel.Operand) throws -> Dims {
            switch operand {
            case let .constant(id):
                let c = model.constants[id]!
                return Dims(channels: c.channels, height: c.height, width: c.width)
            case let .tensor(t): return try resolve(t)
            }
        }
        func resolve(_ tensor: Int) throws -> Dims {
            if let d = known[tensor] { return d }
            guard let index = producer[tensor] else {
                throw NetworkError.invalidGraph(path: model.source, reason: "no op produces t\(tensor)")
            }
            guard visiting.insert(index).inserted else {
                throw NetworkError.invalidGraph(path: model.source, reason: "\(model.operations[index].name): sizes depend on each other in a cycle")
            }
            defer { visiting.remove(index) }
            let op = model.operations[index]
            let inputs = try op.inputs.map(dims)
            var outputs: [Dims]
            switch op.kind {
            case let .convolution(_, _, cout, cin, window):
                guard inputs[0].channels == cin else { throw fail(op, "input has \(inputs[0].channels) channels, weights expect \(cin)") }
                let o = window.output(height: inputs[0].height, width: inputs[0].width)
                outputs = [Dims(channels: cout, height: o.height, width: o.width)]
            case let .depthwise(_, _, cout, multiplier, window):
                guard inputs[0].channels * multiplier == cout else { throw fail(op, "input has \(inputs[0].channels) channels, weights expect \(cout / multiplier)") }
                let o = window.output(height: inputs[0].height, width: inputs[0].width)
                outputs = [Dims(channels: cout, height: o.height, width: o.width)]
            case .add, .multiply:
                let a = inputs[0], b = inputs[1]
                func merge(_ x: Int, _ y: Int) throws -> Int {
                    guard x == y || x == 1 || y == 1 else { throw fail(op, "cannot broadcast \(a) with \(b)") }
                    return max(x, y)
                }
                outputs = [Dims(channels: try merge(a.channels, b.channels), height: try merge(a.height, b.height), width: try merge(a.width, b.width))]
            case let .averagePool(window, global):
                if global { outputs = [Dims(channels: inputs[0].channels, height: 1, width: 1)] } else {
                    let o = window.output(height: inputs[0].height, width: inputs[0].width)
                    outputs = [Dims(channels: inputs[0].channels, height: o.height, width: o.width)]
                }
            case .mean:
                outputs = [Dims(channels: inputs[0].channels, height: 1, width: 1)]
            case let .resize(_, _, size):
                let (h, w): (Int, Int)
                switch size {
                case let .like(t): let d = try resolve(t); (h, w) = (d.height, d.width)
                case let .scale(sy, sx): (h, w) = (Int((Double(inputs[0].height) * sy).rounded()), Int((Double(inputs[0].width) * sx).rounded()))
                case let .fixed(fh, fw): (h, w) = (fh, fw)
                }
                outputs = [Dims(channels: inputs[0].channels, height: h, width: w)]
            case .concatenation:
                guard inputs.allSatisfy({ $0.height == inputs[0].height && $0.width == inputs[0].width }) else {
                    throw fail(op, "inputs differ in spatial size: \(inputs.map { "\($0.width)x\($0.height)" })")
                }
                outputs = [Dims(channels: inputs.reduce(0) { $0 + $1.channels }, height: inputs[0].height, width: inputs[0].width)]
            case let .split(count):
                guard inputs[0].channels % count == 0 else { throw fail(op, "\(inputs[0].channels) channels do not split in \(count)") }
                outputs = Array(repeating: Dims(channels: inputs[0].channels / count, height: inputs[0].height, width: inputs[0].width), count: count)
            case let .pad(top, bottom, left, right, c0, c1):
                let d = inputs[0]
                outputs = [Dims(channels: d.channels + c0 + c1, height: d.height + top + bottom, width: d.width + left + right)]
            case let .reshape(shape):
                outputs = [try reshapeDims(op, input: inputs[0], target: shape, fail: fail)]
            case .identity, .hardSwish, .logistic, .clampOnly:
                outputs = [inputs[0]]
            }
            for (t, d) in zip(op.outputs, outputs) {
                guard d.channels >= 1, d.height >= 1, d.width >= 1 else {
                    throw fail(op, "output would be \(d.channels)x\(d.height)x\(d.width); the input is too small for this model")
                }
                let (hw, o1) = d.height.multipliedReportingOverflow(by: d.width)
                let (count, o2) = hw.multipliedReportingOverflow(by: d.channels)
                guard !o1, !o2, count <= 1 << 30 else {
                    throw fail(op, "output of \(d.channels)x\(d.height)x\(d.width) values is too large")
                }
                known[t] = d
            }
            return known[tensor]!
        }
        for op in model.operations { for t in op.outputs { _ = try resolve(t) } }
        return known
    }

    /// A reshape either keeps the input's spatial size (only the batch/rank changes) or has a
    /// fixed target, which must then hold exactly the input's values.
    private func reshapeDims(_ op: GraphModel.Operation, input: Dims, target: [Int],
                             fail: (GraphModel.Operation, String) -> NetworkError) throws -> Dims {
        var shape = target
        if let unknown = shape.firstIndex(of: -1) {
            let known = shape.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * $1.element }
            guard known > 0, input.count % known == 0 else { throw fail(op, "cannot reshape \(input.count) values to \(target)") }
            shape[unknown] = input.count / known
        }
        let fixed = dims(fromNHWC: shape)
        if fixed.count == input.count { return fixed }
        // Native reshape that only regroups leading dims: follow the input's spatial size.
        if shape.count == 4 && shape[3] == input.channels { return input }
        throw fail(op, "RESHAPE to the fixed shape \(target) cannot hold \(input.count) values at this input size")
    }

    private func plan(height: Int, width: Int) throws -> Plan {
        let key = (height << 32 | width) << 1 | (fusesInvertedResiduals ? 1 : 0)
        if let p = plans[key] { return p }
        let dims = try inferDims(height: height, width: width)
        var lastUse: [Int: Int] = [:]
        for (i, op) in model.operations.enumerated() { for case let .tensor(t) in op.inputs { lastUse[t] = i } }
        lastUse[model.outputTensor] = model.operations.count
        let (alias, concatenationClamps) = concatenationAliases(dims: dims)
        // A fused block reads its input until it has written its last output row, so the input
        // must outlive the projection: its buffer cannot be reused for the block's output.
        let fused = fusesInvertedResiduals ? fusedBlocks(dims: dims, alias: alias) : [:]
        // The expanded and depthwise maps of a fused block are never written: no buffer.
        let unwritten = Set(fused.flatMap { expand, block in [expand, block.depthwise].flatMap { model.operations[$0].outputs } })
        for (expand, block) in fused {
            if case let .tensor(input) = model.operations[expand].inputs[0] {
                lastUse[input] = max(lastUse[input] ?? 0, block.project)
            }
        }
        var slot: [Int: Int] = [:], capacities: [Int] = [], free: [Int] = []
        func allocate(_ t: Int) {
            let need = dims[t]!.count
            if let best = free.filter({ capacities[$0] >= need }).min(by: { capacities[$0] < capacities[$1] }) {
                slot[t] = best; free.removeAll { $0 == best }
            } else if let largest = free.max(by: { capacities[$0] < capacities[$1] }) {
                capacities[largest] = need; slot[t] = largest; free.removeAll { $0 == largest }
            } else {
                slot[t] = capacities.count; capacities.append(need)
            }
        }
        allocate(model.inputTensor)
        if lastUse[model.inputTensor] == nil { free.append(slot[model.inputTensor]!) }
        var multiplyAdds = 0.0
        for (i, op) in model.operations.enumerated() {
            for t in op.outputs {
                // An input of an in-place concatenation lives in the concatenation's output,
                // which is therefore allocated when its first input is made.
                let owner = alias[t]?.tensor ?? t
                if slot[owner] == nil && !unwritten.contains(owner) { allocate(owner) }
            }
            for t in op.outputs where lastUse[t] == nil && alias[t] == nil { if let s = slot[t] { free.append(s) } }   // never read
            let read = Set(op.inputs.compactMap { operand -> Int? in if case let .tensor(t) = operand { return t } else { return nil } })
            for t in read where lastUse[t] == i && alias[t] == nil { if let s = slot[t] { free.append(s) } }
            let out = dims[op.outputs[0]]!
            switch op.kind {
            case let .convolution(_, _, cout, cin, window):
                multiplyAdds += Double(cout * cin * window.kernelHeight * window.kernelWidth) * Double(out.height * out.width)
            case let .depthwise(_, _, cout, _, window):
                multiplyAdds += Double(cout * window.kernelHeight * window.kernelWidth) * Double(out.height * out.width)
            default: break
            }
        }
        var p = Plan(dims: dims, slot: slot, alias: alias, concatenationClamps: concatenationClamps, capacities: capacities,
                     multiplyAdds: multiplyAdds)
        p.fusedBlocks = fused
        p.fusedAway = Set(p.fusedBlocks.values.flatMap { [$0.depthwise, $0.project] })
        plans[key] = p
        return p
    }

    /// MobileNet-v2 inverted residuals to run in one pass each (`fusedInvertedResidual`), by
    /// the index of their expand operator: a 1x1 convolution, a 3x3 depthwise (multiplier 1, no
    /// dilation, stride 1 or 2, at most one row/column of padding before the image) and a 1x1
    /// convolution in a row, each intermediate read only by the next operator and written
    /// nowhere else, all with biases, on inputs at least `fusedInvertedResidualMinimumWidth`
    /// wide. The residual ADD stays an operator of its own (it has its own clamp).
    private func fusedBlocks(dims: [Int: Dims], alias: [Int: (tensor: Int, offset: Int)]) -> [Int: (depthwise: Int, project: Int)] {
        var readers: [Int: Int] = [:]
        for op in model.operations { for case let .tensor(t) in op.inputs { readers[t, default: 0] += 1 } }
        func pointwise(_ w: GraphModel.Window) -> Bool { w.kernelHeight == 1 && w.kernelWidth == 1 && w.strideY == 1 && w.strideX == 1 }
        /// The tensor `op` makes, if it makes one that only `next` reads.
        func privateOutput(_ op: GraphModel.Operation, _ next: GraphModel.Operation) -> Int? {
            guard op.outputs.count == 1, let t = op.outputs.first, t != model.outputTensor, alias[t] == nil, readers[t] == 1,
                  next.inputs == [.tensor(t)] else { return nil }
            return t
        }
        let ops = model.operations
        var blocks: [Int: (depthwise: Int, project: Int)] = [:]
        var i = 0
        while i + 2 < ops.count {
            defer { i += blocks[i] == nil ? 1 : 3 }
            guard case let .convolution(_, expandBias, hidden, _, expandWindow) = ops[i].kind, expandBias != nil, pointwise(expandWindow),
                  case let .depthwise(_, depthwiseBias, channels, 1, window) = ops[i + 1].kind, depthwiseBias != nil, channels == hidden,
                  window.kernelHeight == 3, window.kernelWidth == 3, window.dilationY == 1, window.dilationX == 1,
                  window.strideY == window.strideX, window.strideX == 1 || window.strideX == 2,
                  case let .convolution(_, projectBias, _, projectInputs, projectWindow) = ops[i + 2].kind, projectBias != nil,
                  projectInputs == hidden, pointwise(projectWindow),
                  case let .tensor(input)? = ops[i].inputs.first, ops[i].inputs.count == 1, let inputDims = dims[input],
                  inputDims.width >= fusedInvertedResidualMinimumWidth,
                  let expanded = privateOutput(ops[i], ops[i + 1]), let filtered = privateOutput(ops[i + 1], ops[i + 2]),
                  dims[expanded]?.height == inputDims.height, dims[expanded]?.width == inputDims.width,
                  let out = ops[i + 2].outputs.first, ops[i + 2].outputs.count == 1,
                  dims[out]?.height == dims[filtered]?.height, dims[out]?.width == dims[filtered]?.width else { continue }
            let g = window.geometry(height: inputDims.height, width: inputDims.width)
            let s = window.strideX
            guard (0...1).contains(g.padTop), (0...1).contains(g.padLeft),
                  dims[filtered]?.height == (inputDims.height + s - 1) / s, dims[filtered]?.width == (inputDims.width + s - 1) / s
            else { continue }
            blocks[i] = (i + 1, i + 2)
        }
        return blocks
    }

    /// Which concatenation inputs can be written in place (`Plan.alias`), and which
    /// concatenations still need their clamp. An input qualifies when a single-output operator
    /// other than a concatenation makes it and this concatenation is its only reader; then
    /// nothing else reads or writes that run of the output while it is live.
    private func concatenationAliases(dims: [Int: Dims]) -> (alias: [Int: (tensor: Int, offset: Int)], clamps: Set<Int>) {
        var producer: [Int: Int] = [:], readers: [Int: Int] = [:]
        for (i, op) in model.operations.enumerated() {
            for t in op.outputs { producer[t] = i }
            for case let .tensor(t) in op.inputs { readers[t, default: 0] += 1 }
        }
        var alias: [Int: (tensor: Int, offset: Int)] = [:], clamps: Set<Int> = []
        for (i, op) in model.operations.enumerated() {
            guard case .concatenation = op.kind, let output = op.outputs.first else { continue }
            var offset = 0, needsClamp = false
            for operand in op.inputs {
                let count: Int
                switch operand {
                case let .constant(id):
                    let c = model.constants[id]!
                    count = c.channels * c.height * c.width
                    needsClamp = true
                case let .tensor(t):
                    count = dims[t]!.count
                    let maker = producer[t].map { model.operations[$0] }
                    // Every operator clamps its own output to its clamp.
                    let clampedWithin = maker.map { $0.clamp.lo >= op.clamp.lo && $0.clamp.hi <= op.clamp.hi } ?? false
                    if !clampedWithin { needsClamp = true }
                    if concatenatesInPlace, let maker, maker.outputs == [t], readers[t] == 1,
                       t != model.inputTensor, t != model.outputTensor {
                        if case .concatenation = maker.kind {} else { alias[t] = (output, offset) }
                    }
                }
                offset += count
            }
            if needsClamp { clamps.insert(i) }
        }
        return (alias, clamps)
    }

    /// How many tensors are written in place into concatenations at an input size (tests).
    func inPlaceTensorCount(height: Int, width: Int) throws -> Int { try plan(height: height, width: width).alias.count }
    func fusedBlockCount(height: Int, width: Int) throws -> Int { try plan(height: height, width: width).fusedBlocks.count }

    /// Multiply-adds of the convolutions at an input size.
    public func multiplyAdds(height: Int, width: Int) throws -> Double { try plan(height: height, width: width).multiplyAdds }

    /// Output size at an input size.
    public func outputSize(height: Int, width: Int) throws -> (channels: Int, height: Int, width: Int) {
        let d = try plan(height: height, width: width).dims[model.outputTensor]!
        return (d.channels, d.height, d.width)
    }

    // MARK: Running

    /// Runs the model on an 8-bit RGB image at `width` x `height` (default: the image's own
    /// size); the image is resampled to that size first if needed.
    public func forward(_ image: ColorImage, width: Int? = nil, height: Int? = nil) throws -> PlanarMap {
        let w = width ?? image.width, h = height ?? image.height
        guard w >= 1, h >= 1, image.width >= 1, image.height >= 1 else {
            throw NetworkError.invalidInput("image is \(image.width)x\(image.height), requested input \(w)x\(h)")
        }
        guard w <= GraphModel.sizeLimit, h <= GraphModel.sizeLimit else {
            throw NetworkError.invalidInput("requested input \(w)x\(h) exceeds \(GraphModel.sizeLimit) pixels a side")
        }
        let p = try plan(height: h, width: w)   // fails on sizes the model cannot take, before any resampling
        let resized = (w == image.width && h == image.height) ? image : ImageResampling.resizeBilinear(image, width: w, height: h)
        let x = map(model.inputTensor, p)
        let scale = model.inputScale, zero = model.inputZeroPoint
        let table = (0..<256).map { scale * (Float($0) - zero) }
        resized.pixels.withUnsafeBufferPointer { pixels in
            let plane = w * h
            for i in 0..<plane {
                let px = pixels[i]
                x.base[i] = table[Int(px.r)]; x.base[plane + i] = table[Int(px.g)]; x.base[2 * plane + i] = table[Int(px.b)]
            }
        }
        return try run(p)
    }

    /// Runs the model on a planar RGB input already in the network's range (`scale · (pixel −
    /// zero point)`), `3 x height x width`.
    public func forward(planar values: [Float], height: Int, width: Int) throws -> PlanarMap {
        guard height >= 1, width >= 1, values.count == 3 * height * width else {
            throw NetworkError.invalidInput("\(values.count) values for a 3x\(height)x\(width) input")
        }
        let p = try plan(height: height, width: width)
        let x = map(model.inputTensor, p)
        values.withUnsafeBufferPointer { x.base.update(from: $0.baseAddress!, count: values.count) }
        return try run(p)
    }

    private func map(_ tensor: Int, _ p: Plan) -> FeatureMap {
        let d = p.dims[tensor]!
        if let (owner, offset) = p.alias[tensor] {
            let s = p.slot[owner]!
            return FeatureMap(base: workspace.floats("graph.slot.\(s)", count: p.capacities[s]) + offset,
                              channels: d.channels, height: d.height, width: d.width)
        }
        let s = p.slot[tensor]!
        return FeatureMap(base: workspace.floats("graph.slot.\(s)", count: p.capacities[s]), channels: d.channels, height: d.height, width: d.width)
    }

    private func run(_ p: Plan) throws -> PlanarMap {
        configureBLAS()
        lastProfile = [:]
        let ws = workspace
        let quantised = precision == .int8 ? quantised : [:]
        for (index, op) in model.operations.enumerated() where !p.fusedAway.contains(index) {
            let start = profiling ? DispatchTime.now().uptimeNanoseconds : 0
            if let block = p.fusedBlocks[index] {
                runFused(expand: index, block, p, quantised: quantised)
                if profiling { lastProfile["fused blocks", default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }
                continue
            }
            let inputs = op.inputs.map { operand -> FeatureMap in
                switch operand {
                case let .tensor(t): return map(t, p)
                case let .constant(id): return constantMaps[id]!
                }
            }
            let outputs = op.outputs.map { map($0, p) }
            let out = outputs[0]
            switch op.kind {
            case let .convolution(weights, bias, _, _, window):
                let geometry = window.geometry(height: inputs[0].height, width: inputs[0].width)
                weights.withUnsafeBufferPointer { w in
                    withOptionalPointer(bias) { b in
                        convolution(inputs[0], into: out, weights: w.baseAddress!, bias: b, geometry: geometry, clamp: op.clamp,
                                    residual: nil, workspace: ws, threads: threads, quantised: quantised[index])
                    }
                }
            case let .depthwise(weights, bias, _, multiplier, window):
                let geometry = window.geometry(height: inputs[0].height, width: inputs[0].width)
                weights.withUnsafeBufferPointer { w in
                    withOptionalPointer(bias) { b in
                        depthwiseConvolution(inputs[0], into: out, weights: w.baseAddress!, bias: b, geometry: geometry,
                                             multiplier: multiplier, clamp: op.clamp, workspace: ws, threads: threads)
                    }
                }
            case .add: elementwise(.add, inputs[0], inputs[1], into: out, clamp: op.clamp, threads: threads)
            case .multiply: elementwise(.multiply, inputs[0], inputs[1], into: out, clamp: op.clamp, threads: threads)
            case let .averagePool(window, global):
                if global { globalAveragePool(inputs[0], into: out, clamp: op.clamp, threads: threads) } else {
                    averagePool(inputs[0], into: out, geometry: window.geometry(height: inputs[0].height, width: inputs[0].width),
                                clamp: op.clamp, threads: threads)
                }
            case .mean: globalAveragePool(inputs[0], into: out, clamp: op.clamp, threads: threads)
            case let .resize(bilinear, mode, _):
                if bilinear { resizeBilinear(inputs[0], into: out, mode: mode, workspace: ws, threads: threads) }
                else { resizeNearest(inputs[0], into: out, mode: mode, threads: threads) }
                applyClamp(out, op.clamp, threads: threads)
            case .concatenation:
                var offset = 0
                for (operand, input) in zip(op.inputs, inputs) {
                    // In-place inputs were written there by their producers.
                    if case let .tensor(t) = operand, p.alias[t] != nil {} else {
                        (out.base + offset).update(from: input.base, count: input.count)
                    }
                    offset += input.count
                }
                if p.concatenationClamps.contains(index) { applyClamp(out, op.clamp, threads: threads) }
            case .split:
                var offset = 0
                for output in outputs {
                    output.base.update(from: inputs[0].base + offset, count: output.count)
                    offset += output.count
                    applyClamp(output, op.clamp, threads: threads)
                }
            case let .pad(top, _, left, _, c0, _):
                pad(inputs[0], into: out, top: top, left: left, channelOffset: c0, threads: threads)
                applyClamp(out, op.clamp, threads: threads)
            case .reshape:
                reshapeNHWC(inputs[0], into: out)
                applyClamp(out, op.clamp, threads: threads)
            case .identity, .clampOnly:
                out.base.update(from: inputs[0].base, count: out.count)
                applyClamp(out, op.clamp, threads: threads)
            case .hardSwish: hardSwish(inputs[0], into: out, clamp: op.clamp, threads: threads)
            case .logistic: logistic(inputs[0], into: out, clamp: op.clamp, threads: threads)
            }
            if profiling {
                lastProfile[profileName(op.kind), default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            }
        }
        let out = map(model.outputTensor, p)
        return PlanarMap(channels: out.channels, height: out.height, width: out.width,
                           values: Array(UnsafeBufferPointer(start: out.base, count: out.count)))
    }

    /// One `Plan.fusedBlocks` entry: the three operators' weights, clamps and padding handed to
    /// `fusedInvertedResidual`.
    private func runFused(expand e: Int, _ block: (depthwise: Int, project: Int), _ p: Plan, quantised: [Int: QuantisedWeights]) {
        let ops = model.operations
        guard case let .convolution(ew, eb?, hidden, _, _) = ops[e].kind, case let .depthwise(dw, db?, _, _, window) = ops[block.depthwise].kind,
              case let .convolution(pw, pb?, _, _, _) = ops[block.project].kind, case let .tensor(inputTensor) = ops[e].inputs[0]
        else { preconditionFailure("fused block \(e) is not expand → depthwise → project") }
        let input = map(inputTensor, p), output = map(ops[block.project].outputs[0], p)
        let g = window.geometry(height: input.height, width: input.width)
        let int8: (QuantisedWeights, QuantisedWeights)? = if let qe = quantised[e], let qp = quantised[block.project] { (qe, qp) } else { nil }
        InvertedResidualWeights.with(expand: ew, expandBias: eb, depthwise: dw, depthwiseBias: db, project: pw, projectBias: pb,
                                     hidden: hidden, stride: window.strideX, quantised: int8, configure: { k in
            k.expandClamp = ops[e].clamp; k.depthwiseClamp = ops[block.depthwise].clamp; k.projectClamp = ops[block.project].clamp
            k.padTop = g.padTop; k.padLeft = g.padLeft
        }) { k in
            fusedInvertedResidual(input, into: output, weights: k, residual: false, workspace: workspace, threads: threads)
        }
    }

    private func profileName(_ kind: GraphModel.Kind) -> String {
        switch kind {
        case let .convolution(_, _, _, _, w): return w.kernelHeight == 1 && w.kernelWidth == 1 && w.strideY == 1 && w.strideX == 1 ? "conv 1x1" : "conv \(w.kernelHeight)x\(w.kernelWidth)"
        case let .depthwise(_, _, _, _, w): return "depthwise \(w.kernelHeight)x\(w.kernelWidth)"
        case .add, .multiply: return "elementwise"
        case .averagePool, .mean: return "pooling"
        case let .resize(bilinear, _, _): return bilinear ? "resize bilinear" : "resize nearest"
        case .concatenation, .split, .pad, .reshape, .identity: return "copies"
        case .hardSwish, .logistic, .clampOnly: return "activations"
        }
    }

    /// NHWC reinterpretation of a CHW map: the values in NHWC order are kept, the shape changes.
    private func reshapeNHWC(_ input: FeatureMap, into output: FeatureMap) {
        if input.channels == output.channels && input.height == output.height && input.width == output.width
            || (input.plane == 1 && output.plane == 1) || (input.channels == 1 && output.channels == 1) {
            output.base.update(from: input.base, count: output.count)
            return
        }
        let n = input.count
        let nhwc = workspace.floats("graph.reshape", count: n)
        for y in 0..<input.height { for x in 0..<input.width { for c in 0..<input.channels {
            nhwc[(y * input.width + x) * input.channels + c] = input.base[(c * input.height + y) * input.width + x]
        } } }
        for y in 0..<output.height { for x in 0..<output.width { for c in 0..<output.channels {
            output.base[(c * output.height + y) * output.width + x] = nhwc[(y * output.width + x) * output.channels + c]
        } } }
    }
}

@inline(__always)
private func withOptionalPointer<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress!) }
}
