import Foundation
import Imaging
import Network
import Semantics
import Sequences

/// The joint network behind the predictor seam: NYU-40 class probabilities (softmax of the
/// logits at output stride 4; fusion samples them by nearest lookup) and, when asked, depth in
/// metres at the frame's resolution (bicubic upsampling and `abs`, as the authors' notebooks).
///
/// Runs on every `every`-th frame it is asked about (SemanticFusion runs its CNN every 10th);
/// for the others it returns nil, so those frames get no label update — and, when fusion relies
/// on predicted depth, are not fused at all.
public final class NetworkPredictor: Predictor {
    public let network: JointNetwork
    public let classSet: ClassSet = .nyu40
    public let every: Int
    public let predictsDepth: Bool
    public let weightsPath: String
    /// Frames the predictor was asked about, and the ones the network ran on.
    public private(set) var framesSeen = 0
    public private(set) var runs = 0
    /// Milliseconds per network run (forward pass and post-processing).
    public private(set) var milliseconds: [Double] = []

    public var name: String {
        "network \(URL(fileURLWithPath: weightsPath).lastPathComponent) (every \(every == 1 ? "frame" : "\(every)th frame")\(predictsDepth ? ", depth predicted" : ""))"
    }

    /// - Throws: when the weights cannot be loaded, or the checkpoint's classes are not NYU-40
    ///   (the NYU+KITTI checkpoint's 46 logits are accepted: channels 0-39 are NYU).
    public init(weights url: URL, every: Int, predictsDepth: Bool, threads: Int) throws {
        guard every >= 1 else { throw PipelineError.invalidOption("--network-every must be at least 1") }
        let weights = try NetworkWeights.load(url)
        let classes = weights.architecture.classCount
        guard classes == 40 || classes == 46 else {
            throw PipelineError.invalidOption("\(url.path): the checkpoint predicts \(classes) classes; semfuse fuses NYU-40 labels (40 logits, or 46 for NYU+KITTI)")
        }
        network = JointNetwork(weights: weights, threads: threads)
        self.every = every
        self.predictsDepth = predictsDepth
        weightsPath = url.path
    }

    public func predict(_ frame: Frame) throws -> Prediction? {
        defer { framesSeen += 1 }
        guard framesSeen % every == 0 else { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        let output = network.forward(try NetworkInput(image: frame.color))
        var prediction = Prediction(probabilities: Self.nyu40Probabilities(output))
        if predictsDepth { prediction.depth = output.depthImage(height: frame.color.height, width: frame.color.width) }
        runs += 1
        milliseconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        return prediction
    }

    /// Softmax over the NYU logits only (for the 46-logit NYU+KITTI checkpoint, channels 0-39).
    static func nyu40Probabilities(_ output: NetworkOutput) -> ClassProbabilityMap {
        nyu40Output(output).classProbabilities()
    }

    /// One line for summaries: how often the network ran and how long it took.
    public var report: String {
        let sorted = milliseconds.sorted()
        let median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        return "Network: ran on \(runs) of \(framesSeen) frames (every \(every)), median \(String(format: "%.0f", median)) ms per run, \(network.threads) thread(s)"
    }
}
