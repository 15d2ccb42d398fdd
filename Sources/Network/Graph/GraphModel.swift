import Foundation
import NetworkKernels

/// What a converted mobile model predicts.
public enum GraphModelKind: Sendable, Equatable {
    /// Per-class logits in the named class set (e.g. `ade32`).
    case segmenter(classSet: String)
    /// Depth in metres.
    case depth
}

/// A converted TFLite model (`docs/graph-format.md`): operators in execution order over NHWC
/// tensors (run as CHW planes, batch 1), weights dequantised to float32 and rearranged for the
/// kernels at load. Shapes are not fixed: each operator says how its output follows its inputs,
/// so the model runs at any input size.
struct GraphModel {
    enum PaddingRule: Equatable {
        case same, valid
        case explicit(top: Int, bottom: Int, left: Int, right: Int)
    }
    enum ResizeSize: Equatable { case like(Int), scale(Double, Double), fixed(Int, Int) }
    enum Operand: Equatable { case tensor(Int), constant(Int) }

    struct Window: Equatable {
        var kernelHeight: Int, kernelWidth: Int, strideY: Int, strideX: Int, dilationY: Int, dilationX: Int
        var padding: PaddingRule
        var extentY: Int { (kernelHeight - 1) * dilationY + 1 }
        var extentX: Int { (kernelWidth - 1) * dilationX + 1 }

        /// Output size and top/left padding for an input of `height` x `width`, as TensorFlow
        /// computes them (SAME: ceil(in / stride) with the extra padding at the bottom/right).
        func output(height: Int, width: Int) -> (height: Int, width: Int, padTop: Int, padLeft: Int) {
            func axis(_ n: Int, _ k: Int, _ s: Int, _ before: Int, _ after: Int) -> (Int, Int) {
                switch padding {
                case .same:
                    let out = (n + s - 1) / s
                    let total = max((out - 1) * s + k - n, 0)
                    return (out, total / 2)
                case .valid: return (n >= k ? (n - k) / s + 1 : 0, 0)
                case .explicit:
                    let padded = n + before + after
                    return (padded >= k ? (padded - k) / s + 1 : 0, before)
                }
            }
            var top = 0, bottom = 0, left = 0, right = 0
            if case let .explicit(t, b, l, r) = padding { top = t; bottom = b; left = l; right = r }
            let (ho, pt) = axis(height, extentY, strideY, top, bottom)
            let (wo, pl) = axis(width, extentX, strideX, left, right)
            return (ho, wo, pt, pl)
        }

        /// The kernels' view of this window on an input of `height` x `width`.
        func geometry(height: Int, width: Int) -> ConvGeometry {
            let o = output(height: height, width: width)
            return ConvGeometry(kernelHeight: kernelHeight, kernelWidth: kernelWidth, strideY: strideY, strideX: strideX,
                                dilationY: dilationY, dilationX: dilationX, padTop: o.padTop, padLeft: o.padLeft)
        }
    }

    enum Kind {
        /// Dense convolution, weights `[cout][cin][kh][kw]`.
        case convolution(weights: [Float], bias: [Float]?, outputChannels: Int, inputChannels: Int, window: Window)
        /// Depthwise convolution, weights `[cout][kh][kw]`.
        case depthwise(weights: [Float], bias: [Float]?, outputChannels: Int, multiplier: Int, window: Window)
        case add, multiply
        case averagePool(window: Window, global: Bool)
        case mean
        case resize(bilinear: Bool, mode: ResizeMode, size: ResizeSize)
        case concatenation
        case split(count: Int)
        case pad(top: Int, bottom: Int, left: Int, right: Int, channelsBefore: Int, channelsAfter: Int)
        case reshape(shape: [Int])
        case identity
        case hardSwish, logistic
        case clampOnly
    }

    struct Operation {
        var name: String
        var kind: Kind
        var inputs: [Operand]
        var outputs: [Int]
        var clamp: Clamp
        /// A dense convolution's 8-bit weight grid from the file, per output channel: weight =
        /// scale · (stored − zeroPoint), with the stored integers in `storedRange`. The int8
        /// path uses it to run the file's own integers instead of quantising the weights again.
        var weightGrid: WeightGrid? = nil
    }

    struct WeightGrid { var scales: [Float], zeroPoints: [Float], storedRange: ClosedRange<Float> }

    /// A constant operand as a CHW map.
    struct Constant { var channels: Int, height: Int, width: Int, values: [Float] }

    var kind: GraphModelKind
    var operations: [Operation]
    var constants: [Int: Constant]
    var inputTensor: Int
    var nativeHeight: Int, nativeWidth: Int
    var inputScale: Float, inputZeroPoint: Float
    var outputTensor: Int
    /// NHWC shapes at the native size and TFLite names, for messages.
    var nativeShapes: [Int: [Int]]
    var tensorNames: [Int: String]
    var source: String
    var metadata: [String: String]

    static let format = "graph-v1"
    /// Largest integer the graph may state, and the largest spatial size.
    static let integerLimit = 1 << 20
    static let sizeLimit = 1 << 14
}

extension GraphModel {
    /// Reads a `graph-v1` safetensors file; every inconsistency is reported with the file and
    /// the operator or tensor involved.
    /// `foldsPadding` false keeps every `PAD` as an operator of its own (tests compare the two).
    init(tensors: [String: NamedTensor], metadata: [String: String], source: String, foldsPadding: Bool = true) throws {
        func bad(_ reason: String) -> NetworkError { .invalidGraph(path: source, reason: reason) }
        guard metadata["semfuse.format"] == Self.format else {
            throw bad("not a converted mobile model (metadata semfuse.format is \(metadata["semfuse.format"].map { "'\($0)'" } ?? "missing"), expected '\(Self.format)'; convert .tflite files with tools/convert_tflite.py)")
        }
        switch metadata["semfuse.kind"] {
        case "segmenter":
            guard let set = metadata["semfuse.class_set"], !set.isEmpty else { throw bad("segmenter without semfuse.class_set") }
            kind = .segmenter(classSet: set)
        case "depth": kind = .depth
        case let other: throw bad("unknown model kind \(other.map { "'\($0)'" } ?? "(missing)")")
        }
        guard let text = metadata["semfuse.graph"], let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw bad("semfuse.graph is missing or not a JSON object")
        }
        self.source = source
        self.metadata = metadata

        func tensorID(_ any: Any?, _ context: String) throws -> Int {
            guard let name = any as? String, name.hasPrefix("t"), let id = Int(name.dropFirst()) else {
                throw bad("\(context): expected a tensor name like 't12', got \(String(describing: any))")
            }
            return id
        }
        func ints(_ any: Any?, _ count: Int, _ context: String) throws -> [Int] {
            guard let array = any as? [Any] else { throw bad("\(context): expected \(count) integers") }
            // Every integer of this format (sizes, strides, axes, paddings, shapes) is small; a
            // bound here keeps later size arithmetic far from overflow.
            let values = array.compactMap { ($0 as? NSNumber).flatMap { n -> Int? in
                let d = n.doubleValue
                return d.rounded() == d && abs(d) <= Double(Self.integerLimit) ? Int(d) : nil
            } }
            guard values.count == array.count, count < 0 || values.count == count else {
                throw bad("\(context): expected \(count < 0 ? "a list of" : "\(count)") integers of at most \(Self.integerLimit), got \(array)")
            }
            return values
        }
        func integer(_ any: Any?, _ context: String) throws -> Int { try ints([any as Any], 1, context)[0] }
        func number(_ any: Any?, _ context: String) throws -> Double {
            guard let n = any as? NSNumber else { throw bad("\(context): expected a number") }
            return n.doubleValue
        }

        guard let input = json["input"] as? [String: Any] else { throw bad("graph has no input") }
        inputTensor = try tensorID(input["tensor"], "input")
        nativeHeight = try integer(input["height"], "input height")
        nativeWidth = try integer(input["width"], "input width")
        inputScale = Float(try number(input["scale"], "input scale"))
        inputZeroPoint = Float(try number(input["zero_point"], "input zero_point"))
        guard nativeHeight > 0, nativeWidth > 0, nativeHeight <= Self.sizeLimit, nativeWidth <= Self.sizeLimit, inputScale.isFinite, inputScale != 0, inputZeroPoint.isFinite else {
            throw bad("input: size \(nativeWidth)x\(nativeHeight), scale \(inputScale), zero point \(inputZeroPoint) are not usable")
        }
        guard (input["channels"] as? NSNumber)?.intValue ?? 3 == 3 else { throw bad("input must have 3 (RGB) channels") }
        guard let outputs = json["outputs"] as? [[String: Any]], outputs.count == 1 else {
            throw bad("graph must have exactly one output")
        }
        outputTensor = try tensorID(outputs[0]["tensor"], "output")
        let role = outputs[0]["role"] as? String
        switch (kind, role) {
        case (.segmenter, "logits"), (.depth, "depth"): break
        default: throw bad("output role \(role ?? "(missing)") does not fit the model kind")
        }

        var shapes: [Int: [Int]] = [:], names: [Int: String] = [:]
        for (key, value) in json["tensors"] as? [String: Any] ?? [:] {
            let id = try tensorID(key, "tensors")
            guard let entry = value as? [String: Any] else { throw bad("tensor \(key): not an object") }
            let shape = try ints(entry["shape"], -1, "tensor \(key) shape")
            guard !shape.isEmpty, shape.count <= 4, shape.allSatisfy({ $0 >= 1 }), shape[0] == 1 || shape.count < 4 else {
                throw bad("tensor \(key) has shape \(shape); batch-1 tensors of rank 1-4 are supported")
            }
            shapes[id] = shape
            names[id] = entry["name"] as? String ?? key
        }
        nativeShapes = shapes
        tensorNames = names

        /// Per output channel (axis 0 of `name`, `channels` of them), the 8-bit grid, if the
        /// file stores the weights as 8-bit integers with a scale per tensor or along axis 0.
        func grid(_ name: String, axis: Int?, channels: Int) -> WeightGrid? {
            guard let t = tensors[name], let scale = tensors["\(name)_scale"] ?? tensors["\(name).scale"] else { return nil }
            let zero = tensors["\(name)_zero_point"] ?? tensors["\(name).zero_point"]
            let range: ClosedRange<Float>
            switch t.dtype {
            case "U8": range = 0...255
            case "I8": range = -128...127
            default: return nil
            }
            if scale.count == 1 {
                return WeightGrid(scales: Array(repeating: scale.values[0], count: channels),
                                  zeroPoints: Array(repeating: zero?.values[0] ?? 0, count: channels), storedRange: range)
            }
            guard axis == 0, scale.count == channels else { return nil }
            return WeightGrid(scales: scale.values, zeroPoints: zero?.values ?? Array(repeating: 0, count: channels), storedRange: range)
        }

        // Weights: 8-bit with scale and zero point, or float.
        func dequantised(_ name: String, axis: Int?) throws -> (values: [Float], shape: [Int]) {
            guard let t = tensors[name] else { throw bad("missing tensor \(name)") }
            guard let scale = tensors["\(name)_scale"] ?? tensors["\(name).scale"] else {
                guard t.isFloatingPoint else { throw bad("\(name) is \(t.dtype) but has no \(name)_scale") }
                return (t.values, t.shape)
            }
            let zero = tensors["\(name)_zero_point"] ?? tensors["\(name).zero_point"]
            guard zero == nil || zero!.count == scale.count else { throw bad("\(name): scale and zero point differ in length") }
            var values = t.values
            if scale.count == 1 {
                let s = scale.values[0], z = zero?.values[0] ?? 0
                for i in values.indices { values[i] = s * (values[i] - z) }
            } else {
                guard let axis, axis >= 0, axis < t.shape.count, t.shape[axis] == scale.count else {
                    throw bad("\(name): \(scale.count) per-channel scales do not match axis \(axis.map(String.init) ?? "?") of shape \(t.shape)")
                }
                let inner = t.shape[(axis + 1)...].reduce(1, *)
                for i in values.indices {
                    let c = (i / inner) % scale.count
                    values[i] = scale.values[c] * (values[i] - (zero?.values[c] ?? 0))
                }
            }
            guard values.allSatisfy({ $0.isFinite }) else { throw bad("\(name) contains NaN or infinite values") }
            return (values, t.shape)
        }

        var constants: [Int: Constant] = [:]
        func operand(_ any: Any, _ context: String) throws -> Operand {
            if let name = any as? String, name.hasPrefix("c"), let id = Int(name.dropFirst()) {
                if constants[id] == nil {
                    let (values, shape) = try dequantised(name, axis: nil)
                    // NHWC (batch 1, or lower rank aligned to the right) → CHW.
                    let padded = Array(repeating: 1, count: max(0, 4 - shape.count)) + shape
                    guard padded.count == 4, padded[0] == 1 else { throw bad("constant \(name) has unsupported shape \(shape)") }
                    let h = padded[1], w = padded[2], c = padded[3]
                    var chw = [Float](repeating: 0, count: values.count)
                    for y in 0..<h { for x in 0..<w { for ch in 0..<c { chw[(ch * h + y) * w + x] = values[(y * w + x) * c + ch] } } }
                    constants[id] = Constant(channels: c, height: h, width: w, values: chw)
                }
                return .constant(id)
            }
            return .tensor(try tensorID(any, context))
        }

        guard let opList = json["ops"] as? [[String: Any]], !opList.isEmpty else { throw bad("graph has no ops") }
        var operations: [Operation] = []
        for (index, op) in opList.enumerated() {
            let type = op["op"] as? String ?? "?"
            let inputs = try (op["inputs"] as? [Any] ?? []).map { try operand($0, "op \(index) (\(type)) input") }
            let outputs = try (op["outputs"] as? [Any] ?? []).map { try tensorID($0, "op \(index) (\(type)) output") }
            guard !outputs.isEmpty else { throw bad("op \(index) (\(type)) has no outputs") }
            let context = "op \(index) (\(type), output \(names[outputs[0]] ?? "t\(outputs[0])"))"
            var clamp = Clamp.none
            if let c = op["clamp"] as? [Any], c.count == 2 {
                clamp = Clamp(lo: (c[0] as? NSNumber).map { Float($0.doubleValue) } ?? -.infinity,
                              hi: (c[1] as? NSNumber).map { Float($0.doubleValue) } ?? .infinity)
                guard !(clamp.lo > clamp.hi) else { throw bad("\(context): clamp \(c) is empty") }
            }
            func window(kernel: (Int, Int)) throws -> Window {
                let stride = try ints(op["stride"] ?? [1, 1], 2, "\(context) stride")
                let dilation = try ints(op["dilation"] ?? [1, 1], 2, "\(context) dilation")
                guard stride.allSatisfy({ $0 >= 1 }), dilation.allSatisfy({ $0 >= 1 }), kernel.0 >= 1, kernel.1 >= 1 else {
                    throw bad("\(context): kernel \(kernel), stride \(stride), dilation \(dilation) must be positive")
                }
                let padding: PaddingRule
                switch op["padding"] as? String {
                case "SAME": padding = .same
                case "VALID": padding = .valid
                case let p: throw bad("\(context): padding \(p ?? "(missing)") (SAME or VALID)")
                }
                return Window(kernelHeight: kernel.0, kernelWidth: kernel.1, strideY: stride[0], strideX: stride[1],
                              dilationY: dilation[0], dilationX: dilation[1], padding: padding)
            }
            func requireInputs(_ n: Int) throws {
                guard inputs.count == n else { throw bad("\(context): expected \(n) input(s), got \(inputs.count)") }
            }
            let kind: Kind
            var weightGrid: WeightGrid?
            switch type {
            case "CONV_2D", "DEPTHWISE_CONV_2D":
                try requireInputs(1)
                guard let weightName = op["weight"] as? String else { throw bad("\(context): no weight") }
                let axis = (op["weight_quant_axis"] as? NSNumber)?.intValue
                let (w, shape) = try dequantised(weightName, axis: axis)
                guard shape.count == 4 else { throw bad("\(context): weight shape \(shape) is not 4-D") }
                let bias = try (op["bias"] as? String).map { try dequantised($0, axis: 0).values }
                if type == "CONV_2D" {
                    let cout = shape[0], kh = shape[1], kw = shape[2], cin = shape[3]
                    guard bias == nil || bias!.count == cout else { throw bad("\(context): \(bias!.count) biases for \(cout) outputs") }
                    var reordered = [Float](repeating: 0, count: w.count)   // OHWI → OIHW
                    for o in 0..<cout { for y in 0..<kh { for x in 0..<kw { for i in 0..<cin {
                        reordered[((o * cin + i) * kh + y) * kw + x] = w[((o * kh + y) * kw + x) * cin + i]
                    } } } }
                    kind = .convolution(weights: reordered, bias: bias, outputChannels: cout, inputChannels: cin, window: try window(kernel: (kh, kw)))
                    weightGrid = grid(weightName, axis: axis, channels: cout)
                } else {
                    let kh = shape[1], kw = shape[2], cout = shape[3]
                    let multiplier = (op["depth_multiplier"] as? NSNumber)?.intValue ?? 1
                    guard shape[0] == 1, multiplier >= 1, cout % multiplier == 0 else { throw bad("\(context): weight shape \(shape), multiplier \(multiplier)") }
                    guard bias == nil || bias!.count == cout else { throw bad("\(context): \(bias!.count) biases for \(cout) outputs") }
                    var reordered = [Float](repeating: 0, count: w.count)   // 1HWC → C,H,W
                    for y in 0..<kh { for x in 0..<kw { for c in 0..<cout { reordered[(c * kh + y) * kw + x] = w[(y * kw + x) * cout + c] } } }
                    kind = .depthwise(weights: reordered, bias: bias, outputChannels: cout, multiplier: multiplier, window: try window(kernel: (kh, kw)))
                }
            case "ADD", "MUL":
                try requireInputs(2)
                kind = type == "ADD" ? .add : .multiply
            case "AVERAGE_POOL_2D":
                try requireInputs(1)
                let filter = try ints(op["filter"], 2, "\(context) filter")
                kind = .averagePool(window: try window(kernel: (filter[0], filter[1])), global: op["global"] as? Bool ?? false)
            case "MEAN":
                try requireInputs(1)
                let axes = Set(try ints(op["axes"], -1, "\(context) axes").map { $0 < 0 ? $0 + 4 : $0 })
                guard axes == [1, 2] else { throw bad("\(context): MEAN over axes \(axes.sorted()) is not supported (only spatial [1, 2])") }
                kind = .mean
            case "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR":
                try requireInputs(1)
                let align = op["align_corners"] as? Bool ?? false, half = op["half_pixel_centers"] as? Bool ?? false
                guard !(align && half) else { throw bad("\(context): align_corners and half_pixel_centers are both set") }
                let size: ResizeSize
                let spec = op["size"] as? [String: Any] ?? [:]
                if let like = spec["like"] { size = .like(try tensorID(like, "\(context) size")) }
                else if let scale = spec["scale"] as? [NSNumber], scale.count == 2, scale.allSatisfy({ $0.doubleValue > 0 && $0.doubleValue <= 1024 }) {
                    size = .scale(scale[0].doubleValue, scale[1].doubleValue)
                } else if spec["fixed"] != nil {
                    let f = try ints(spec["fixed"], 2, "\(context) size")
                    guard f.allSatisfy({ $0 >= 1 && $0 <= Self.sizeLimit }) else { throw bad("\(context): size \(f) (1-\(Self.sizeLimit))") }
                    size = .fixed(f[0], f[1])
                } else { throw bad("\(context): size must be like, scale or fixed") }
                kind = .resize(bilinear: type == "RESIZE_BILINEAR", mode: align ? .alignCorners : (half ? .halfPixel : .legacy), size: size)
            case "CONCATENATION":
                guard !inputs.isEmpty else { throw bad("\(context): no inputs") }
                let axis = (op["axis"] as? NSNumber)?.intValue ?? -1
                guard axis == 3 || axis == -1 else { throw bad("\(context): concatenation along axis \(axis) is not supported (channels only)") }
                kind = .concatenation
            case "SPLIT":
                try requireInputs(1)
                let axis = (op["axis"] as? NSNumber)?.intValue ?? -1
                let count = (op["num_splits"] as? NSNumber)?.intValue ?? outputs.count
                guard axis == 3 || axis == -1 else { throw bad("\(context): split along axis \(axis) is not supported (channels only)") }
                guard count == outputs.count, count >= 1 else { throw bad("\(context): \(count) splits but \(outputs.count) outputs") }
                kind = .split(count: count)
            case "PAD":
                try requireInputs(1)
                guard let p = op["paddings"] as? [[NSNumber]], p.count == 4, p.allSatisfy({ $0.count == 2 }) else {
                    throw bad("\(context): paddings must be 4 pairs")
                }
                let v = p.map { $0.map(\.intValue) }
                guard v[0] == [0, 0], v.joined().allSatisfy({ $0 >= 0 && $0 <= 1 << 12 }) else { throw bad("\(context): paddings \(v) are not supported") }
                kind = .pad(top: v[1][0], bottom: v[1][1], left: v[2][0], right: v[2][1], channelsBefore: v[3][0], channelsAfter: v[3][1])
            case "RESHAPE":
                try requireInputs(1)
                let shape = try ints(op["shape"], -1, "\(context) shape")
                var product = 1, overflow = false
                for d in shape where d != -1 { (product, overflow) = product.multipliedReportingOverflow(by: d); if overflow { break } }
                guard (1...4).contains(shape.count), shape.allSatisfy({ $0 == -1 || $0 >= 1 }), shape.filter({ $0 == -1 }).count <= 1,
                      !overflow, product <= 1 << 30 else {
                    throw bad("\(context): reshape to \(shape) (rank 1-4, positive sizes, at most one -1, at most 2^30 values)")
                }
                kind = .reshape(shape: shape)
            case "QUANTIZE", "DEQUANTIZE":
                try requireInputs(1)
                kind = .identity
            case "RELU", "RELU6", "RELU_N1_TO_1":
                try requireInputs(1)
                let activation: Clamp = type == "RELU" ? Clamp(lo: 0, hi: .infinity) : (type == "RELU6" ? Clamp(lo: 0, hi: 6) : Clamp(lo: -1, hi: 1))
                clamp = Clamp(lo: max(clamp.lo, activation.lo), hi: min(clamp.hi, activation.hi))
                kind = .clampOnly
            case "HARD_SWISH": try requireInputs(1); kind = .hardSwish
            case "LOGISTIC": try requireInputs(1); kind = .logistic
            default:
                throw bad("\(context): operator \(type) is not supported by the engine")
            }
            if case .split = kind {} else if outputs.count != 1 { throw bad("\(context): \(outputs.count) outputs") }
            operations.append(Operation(name: context, kind: kind, inputs: inputs, outputs: outputs, clamp: clamp, weightGrid: weightGrid))
        }
        self.constants = constants
        self.operations = operations

        // Every tensor read must be the input or produced earlier; the output must be produced.
        var produced: Set<Int> = [inputTensor]
        for op in operations {
            for case let .tensor(t) in op.inputs where !produced.contains(t) {
                throw bad("\(op.name) reads \(names[t] ?? "t\(t)"), which no earlier op produces")
            }
            for t in op.outputs {
                guard produced.insert(t).inserted else { throw bad("\(op.name) writes \(names[t] ?? "t\(t)") a second time") }
            }
        }
        guard produced.contains(outputTensor), outputTensor != inputTensor else { throw bad("no op produces the output tensor t\(outputTensor)") }
        for op in operations {
            if case let .resize(_, _, .like(t)) = op.kind, !produced.contains(t) {
                throw bad("\(op.name) takes its size from t\(t), which is never computed")
            }
        }
        if foldsPadding { foldPadding() }
    }

    /// A zero `PAD` in front of a `VALID` convolution (Keras' ZeroPadding2D, and every padded
    /// convolution of a TFLite model converted from one) becomes the convolution's own explicit
    /// padding: one pass over the map less, and no padded copy. A padding's clamp (its quantised
    /// tensor's range) must then change nothing: it holds 0 and the range its input was already
    /// clamped to.
    mutating func foldPadding() {
        var readers: [Int: Int] = [:], producer: [Int: Int] = [:]
        for (i, op) in operations.enumerated() {
            for case let .tensor(t) in op.inputs { readers[t, default: 0] += 1 }
            for t in op.outputs { producer[t] = i }
        }
        func clampChangesNothing(_ clamp: Clamp, source: Int) -> Bool {
            if clamp.isNone { return true }
            guard clamp.lo <= 0, clamp.hi >= 0, let maker = producer[source].map({ operations[$0] }) else { return false }
            if case .pad = maker.kind { return false }
            return maker.clamp.lo >= clamp.lo && maker.clamp.hi <= clamp.hi
        }
        for (index, op) in operations.enumerated() {
            guard case let .pad(top, bottom, left, right, c0, c1) = op.kind, c0 == 0, c1 == 0,
                  case let .tensor(source) = op.inputs[0], clampChangesNothing(op.clamp, source: source) else { continue }
            let padded = op.outputs[0]
            guard padded != outputTensor, readers[padded] == 1,
                  let consumer = operations.indices.first(where: { operations[$0].inputs.contains(.tensor(padded)) }) else { continue }
            if operations.contains(where: { if case .resize(_, _, .like(padded)) = $0.kind { return true }; return false }) { continue }
            func folded(_ window: Window) -> Window? {
                guard window.padding == .valid else { return nil }
                var w = window
                w.padding = .explicit(top: top, bottom: bottom, left: left, right: right)
                return w
            }
            switch operations[consumer].kind {
            case let .convolution(w, b, cout, cin, window):
                guard let f = folded(window) else { continue }
                operations[consumer].kind = .convolution(weights: w, bias: b, outputChannels: cout, inputChannels: cin, window: f)
            case let .depthwise(w, b, cout, m, window):
                guard let f = folded(window) else { continue }
                operations[consumer].kind = .depthwise(weights: w, bias: b, outputChannels: cout, multiplier: m, window: f)
            default: continue
            }
            operations[consumer].inputs = [.tensor(source)]
            operations[index].kind = .identity
            operations[index].outputs = []   // dropped below
        }
        operations.removeAll { $0.outputs.isEmpty }
    }
}
