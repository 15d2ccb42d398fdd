import Foundation
import Geometry
import Imaging
import Network
import Semantics

/// What a dense model predicts for one image, as the network outputs it (no upsampling).
public struct DensePrediction: Sendable {
    /// Per-class logits (`classCount x h x w`), or nil for depth-only models.
    public var logits: PlanarMap?
    /// Depth in metres (`1 x h x w`), already corrected for the camera, or nil. The joint
    /// network's raw depth may be negative (post-processing takes `abs`).
    public var depth: PlanarMap?
    /// Surface normals of 3-task joint checkpoints (`3 x h x w`).
    public var normals: PlanarMap?
    /// Where the depth map lies in the input image: the central crop it was predicted from,
    /// as a fraction of the image's width and height (1 = whole image).
    public var depthCrop: Double = 1
    /// How depth is brought to the image's size: the joint network's notebooks upsample
    /// bicubically; converted models are upsampled bilinearly.
    public enum Upsampling: Sendable { case bilinear, bicubic }
    public var depthUpsampling = Upsampling.bilinear
    public init(logits: PlanarMap? = nil, depth: PlanarMap? = nil, normals: PlanarMap? = nil) {
        self.logits = logits; self.depth = depth; self.normals = normals
    }
}

/// A per-frame network: the paper's joint network, a converted segmenter or a converted depth
/// model (`semfuse predict`, `reconstruct --network/--depth-network`).
public protocol DenseModel: AnyObject {
    /// The weights file's name, for summaries.
    var name: String { get }
    /// The class set of the logits, or nil when the model predicts no semantics.
    var classSet: ClassSet? { get }
    var predictsDepth: Bool { get }
    var threads: Int { get }
    /// Runs on an image; `intrinsics` (the image's camera) lets depth models correct their
    /// metric scale for a focal length other than their training camera's.
    func predict(_ image: ColorImage, intrinsics: Intrinsics?) throws -> DensePrediction
}

/// Finds and loads models: a path, or the short name of a model bundled in `Models/`.
public enum ModelLibrary {
    /// Short names of the bundled models and their files.
    public static let bundled: [(names: [String], file: String, what: String)] = [
        (["deeplab", "deeplabv3", "deeplabv3-mnv2-ade20k", "segmenter"], "deeplabv3-mnv2-ade20k.safetensors",
         "DeepLab-v3 MobileNet-v2 segmenter, ADE20K 31 classes + other (Apache-2.0)"),
        (["fastdepth", "fastdepth-nyu", "depth"], "fastdepth-nyu.safetensors",
         "FastDepth monocular depth, NYU Depth v2, metres (MIT)"),
    ]

    /// Folders searched for bundled models: `$SEMFUSE_MODELS`, then `Models/` in the current
    /// folder and beside or above the executable (a build inside a clone finds the clone's).
    public static var searchFolders: [URL] {
        var folders: [URL] = []
        if let env = ProcessInfo.processInfo.environment["SEMFUSE_MODELS"], !env.isEmpty { folders.append(URL(fileURLWithPath: env)) }
        folders.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Models"))
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            folders.append(dir.appendingPathComponent("Models"))
            dir = dir.deletingLastPathComponent()
        }
        return folders
    }

    /// `nameOrPath` as a file: an existing path, or a bundled model's short name.
    public static func resolve(_ nameOrPath: String) throws -> URL {
        let url = URL(fileURLWithPath: nameOrPath)
        if FileManager.default.fileExists(atPath: url.path) { return url }
        if let entry = bundled.first(where: { $0.names.contains(nameOrPath.lowercased()) || $0.file == nameOrPath }) {
            for folder in searchFolders {
                let candidate = folder.appendingPathComponent(entry.file)
                if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
            }
            throw PipelineError.invalidOption("\(nameOrPath): the bundled model \(entry.file) was not found in \(searchFolders.map(\.path).joined(separator: ", ")); set SEMFUSE_MODELS to the repository's Models folder")
        }
        let names = bundled.map { "\($0.names[0]) (\($0.what))" }.joined(separator: "; ")
        throw PipelineError.invalidOption("\(nameOrPath): no such file, and not a bundled model name (bundled: \(names))")
    }

    /// Loads a model file: converted mobile models (`graph-v1`) or the joint network, its dense
    /// convolutions in `precision`.
    public static func load(_ nameOrPath: String, threads: Int, depthInput: DepthInput = .default,
                            precision: NetworkPrecision = .float32) throws -> DenseModel {
        if let reason = precision.unavailableReason { throw PipelineError.invalidOption(reason) }
        let url = try resolve(nameOrPath)
        if GraphNetwork.isGraphModel(url) {
            let network = try GraphNetwork.load(url, threads: threads)
            network.precision = precision
            switch network.kind {
            case .segmenter(let name):
                guard let classSet = ClassSet.named(name) else {
                    throw PipelineError.invalidOption("\(url.path): the segmenter's class set '\(name)' is unknown (known: \(ClassSet.knownNames.joined(separator: ", ")))")
                }
                return GraphSegmenter(network: network, classSet: classSet, name: url.lastPathComponent)
            case .depth:
                return GraphDepthModel(network: network, name: url.lastPathComponent, input: depthInput)
            }
        }
        let joint = try JointModel(weights: NetworkWeights.load(url), name: url.lastPathComponent, threads: threads)
        joint.network.precision = precision
        return joint
    }
}

/// The paper's joint network: NYU-40 logits (the first 40 of the NYU+KITTI checkpoint's 46)
/// and depth from one pass at the image's own size.
public final class JointModel: DenseModel {
    public let network: JointNetwork
    public let name: String
    public var classSet: ClassSet? { .nyu40 }
    public var predictsDepth: Bool { true }
    public var threads: Int { network.threads }

    public init(weights: NetworkWeights, name: String, threads: Int) throws {
        guard weights.architecture.classCount >= 40 else {
            throw PipelineError.invalidOption("\(name): the checkpoint predicts \(weights.architecture.classCount) classes; semfuse fuses NYU-40 labels (40 logits, or 46 for NYU+KITTI)")
        }
        network = JointNetwork(weights: weights, threads: threads)
        self.name = name
    }

    public func predict(_ image: ColorImage, intrinsics: Intrinsics?) throws -> DensePrediction {
        DensePrediction(joint: network.forward(try NetworkInput(image: image)))
    }
}

/// A converted segmenter, run on the whole image at the image's own size (fully convolutional;
/// the logits come at the model's output stride).
public final class GraphSegmenter: DenseModel {
    public let network: GraphNetwork
    public let name: String
    public let classSet: ClassSet?
    public var predictsDepth: Bool { false }
    public var threads: Int { network.threads }

    init(network: GraphNetwork, classSet: ClassSet, name: String) {
        self.network = network; self.classSet = classSet; self.name = name
    }

    public func predict(_ image: ColorImage, intrinsics: Intrinsics?) throws -> DensePrediction {
        let logits = try network.forward(image)
        guard logits.channels == classSet?.count else {
            throw PipelineError.invalidOption("\(name): \(logits.channels) logits, but its class set \(classSet?.name ?? "?") has \(classSet?.count ?? 0) classes")
        }
        return DensePrediction(logits: logits)
    }
}

/// How a depth model sees a frame from another camera than the one it learned.
public struct DepthInput: Sendable, Equatable {
    /// The training camera's focal length, in pixels of the model's native input.
    public enum Focal: Sendable, Equatable {
        /// The value stored in the model file (`semfuse.depth.reference_focal`), if any.
        case model
        /// No correction: the model's metres are taken as they come.
        case none
        case pixels(Double)
    }
    /// The size the (cropped) frame is resampled to before the model sees it.
    public enum Size: Sendable, Equatable {
        /// The model's own input size (e.g. FastDepth's 224x224), whatever the frame's aspect.
        case native
        /// The frame's own size (the models are fully convolutional).
        case image
        case fixed(width: Int, height: Int)
    }
    public var size: Size
    /// Central part of the frame fed to the model, as a fraction of its width and height.
    public var crop: Double
    /// With the frame's intrinsics, depth is scaled by (focal length of the model's input) /
    /// (the training camera's focal length at the native size).
    public var focal: Focal

    public init(size: Size = .native, crop: Double = 1, focal: Focal = .model) {
        self.size = size; self.crop = crop; self.focal = focal
    }
    /// The measured default (docs/results.md, "Predicted depth on another camera").
    public static let `default` = DepthInput()
}

/// A converted depth model. Its metric scale belongs to its training camera: a frame from
/// another camera is fed as `input` says, and the depth is scaled by the ratio of focal lengths.
public final class GraphDepthModel: DenseModel {
    public let network: GraphNetwork
    public let name: String
    public var classSet: ClassSet? { nil }
    public var predictsDepth: Bool { true }
    public var threads: Int { network.threads }
    public var input: DepthInput

    init(network: GraphNetwork, name: String, input: DepthInput) {
        self.network = network; self.name = name; self.input = input
    }

    /// The training focal length in use (pixels at the native input size), or nil.
    public var referenceFocal: Double? {
        switch input.focal {
        case .none: return nil
        case .pixels(let f): return f
        case .model: return network.metadata["semfuse.depth.reference_focal"].flatMap(Double.init)
        }
    }

    public func predict(_ image: ColorImage, intrinsics: Intrinsics?) throws -> DensePrediction {
        let crop = min(max(input.crop, 0.1), 1)
        var source = image
        if crop < 1 {
            let w = max(1, Int((Double(image.width) * crop).rounded())), h = max(1, Int((Double(image.height) * crop).rounded()))
            let x0 = (image.width - w) / 2, y0 = (image.height - h) / 2
            var cropped = ColorImage(width: w, height: h, repeating: RGB8(0, 0, 0))
            for y in 0..<h { for x in 0..<w { cropped.pixels[y * w + x] = image.pixels[(y + y0) * image.width + x + x0] } }
            source = cropped
        }
        let size: (width: Int, height: Int)
        switch input.size {
        case .native: size = network.nativeSize
        case .image: size = (source.width, source.height)
        case let .fixed(w, h): size = (w, h)
        }
        var depth = try network.forward(source, width: size.width, height: size.height)
        if let reference = referenceFocal, let k = intrinsics {
            // Focal length of the model's input in its own pixels (geometric mean of x and y:
            // the input may be squeezed anisotropically). A network that runs at a larger
            // input than it was trained at sees objects larger, as if closer: its training
            // focal length scales with the input too.
            let fx = abs(k.fx) * Double(size.width) / Double(source.width)
            let fy = abs(k.fy) * Double(size.height) / Double(source.height)
            let native = network.nativeSize
            let trained = reference * (Double(size.width * size.height) / Double(native.width * native.height)).squareRoot()
            let factor = Float((fx * fy).squareRoot() / trained)
            for i in depth.values.indices { depth.values[i] *= factor }
        }
        var prediction = DensePrediction(depth: depth)
        prediction.depthCrop = crop
        return prediction
    }
}

extension DensePrediction {
    /// The joint network's outputs: NYU-40 logits (the first 40 of NYU+KITTI's 46), raw depth
    /// (before `abs`), normals of 3-task checkpoints.
    public init(joint output: NetworkOutput) {
        let nyu = NetworkPredictor.nyu40Output(output)
        self.init(logits: nyu.logitMap,
                  depth: PlanarMap(channels: 1, height: output.height, width: output.width, values: output.depth),
                  normals: output.normals.map { PlanarMap(channels: 3, height: output.height, width: output.width, values: $0) })
        depthUpsampling = .bicubic
    }

    /// Softmax class probabilities at the logits' resolution, pixel-major, for fusion.
    public func classProbabilities() -> ClassProbabilityMap? { logits?.classProbabilities() }

    /// Depth in metres at the image's size: `|depth|` upsampled (`depthUpsampling`) into the
    /// crop it was predicted from; pixels outside the crop get 0 (no depth).
    public func depthImage(width: Int, height: Int) -> DepthImage? {
        guard let depth else { return nil }
        if depthUpsampling == .bicubic && depthCrop >= 1 {
            let up = resizeBicubic(depth.values, channels: 1, height: depth.height, width: depth.width, toHeight: height, width: width)
            return DepthImage(width: width, height: height, pixels: up.map { abs($0) })
        }
        let cw = max(1, Int((Double(width) * depthCrop).rounded())), ch = max(1, Int((Double(height) * depthCrop).rounded()))
        let x0 = (width - cw) / 2, y0 = (height - ch) / 2
        var image = DepthImage(width: width, height: height, repeating: 0)
        let v = depth.values
        let sx = Double(depth.width) / Double(cw), sy = Double(depth.height) / Double(ch)
        for y in 0..<ch {
            let fy = max(0, (Double(y) + 0.5) * sy - 0.5)
            let iy = min(Int(fy), depth.height - 1), iy1 = min(iy + 1, depth.height - 1), wy = Float(fy - Double(iy))
            for x in 0..<cw {
                let fx = max(0, (Double(x) + 0.5) * sx - 0.5)
                let ix = min(Int(fx), depth.width - 1), ix1 = min(ix + 1, depth.width - 1), wx = Float(fx - Double(ix))
                let top = (1 - wx) * abs(v[iy * depth.width + ix]) + wx * abs(v[iy * depth.width + ix1])
                let bottom = (1 - wx) * abs(v[iy1 * depth.width + ix]) + wx * abs(v[iy1 * depth.width + ix1])
                image.pixels[(y + y0) * width + x + x0] = (1 - wy) * top + wy * bottom
            }
        }
        return image
    }
}
