#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Geometry
import Imaging
import Network
import Semantics
import Sequences

/// Networks behind the predictor seam: class probabilities from a segmenter (softmax of the
/// logits at the model's output resolution; fusion samples them by nearest lookup) and, when
/// asked, depth in metres at the frame's resolution, from the same model (the joint network)
/// or from a second one (a depth model paired with a segmenter).
///
/// Runs on every `every`-th frame it is asked about (SemanticFusion runs its CNN every 10th);
/// for the others it returns nil, so those frames get no label update — and, when fusion relies
/// on predicted depth, are not fused at all.
public final class NetworkPredictor: Predictor {
    public let segmenter: DenseModel
    /// The model that supplies depth when `predictsDepth` (may be the segmenter itself).
    public let depthModel: DenseModel?
    public let classSet: ClassSet
    public let every: Int
    public let predictsDepth: Bool
    /// The sequence's camera, for depth models' focal-length correction.
    public let intrinsics: Intrinsics?
    /// Frames the predictor was asked about, and the ones the network ran on.
    public private(set) var framesSeen = 0
    public private(set) var runs = 0
    /// Milliseconds per network run (forward passes and post-processing).
    public private(set) var milliseconds: [Double] = []

    public var name: String {
        var text = "network \(segmenter.name)"
        if predictsDepth, let depthModel, depthModel !== segmenter { text += " + depth \(depthModel.name)" }
        return text + " (every \(every == 1 ? "frame" : "\(every)th frame")\(predictsDepth ? ", depth predicted" : ""))"
    }

    /// - Throws: when `segmenter` predicts no classes, or depth is wanted and no model gives it.
    public init(segmenter: DenseModel, depthModel: DenseModel? = nil, every: Int, predictsDepth: Bool, intrinsics: Intrinsics? = nil) throws {
        guard every >= 1 else { throw PipelineError.invalidOption("--network-every must be at least 1") }
        guard let classSet = segmenter.classSet else {
            throw PipelineError.invalidOption("\(segmenter.name) predicts no classes; give a segmenter with --network and the depth model with --depth-network")
        }
        let depth = depthModel ?? (segmenter.predictsDepth ? segmenter : nil)
        if predictsDepth && depth == nil {
            throw PipelineError.invalidOption("\(segmenter.name) predicts no depth; add a depth model (--depth-network fastdepth) for --depth predicted")
        }
        self.segmenter = segmenter
        self.depthModel = depth
        self.classSet = classSet
        self.every = every
        self.predictsDepth = predictsDepth
        self.intrinsics = intrinsics
    }

    /// The joint network from a weights file (kept for callers that only have the paper's model).
    public convenience init(weights url: URL, every: Int, predictsDepth: Bool, threads: Int) throws {
        try self.init(segmenter: JointModel(weights: NetworkWeights.load(url), name: url.lastPathComponent, threads: threads),
                      every: every, predictsDepth: predictsDepth)
    }

    public func predict(_ frame: Frame) throws -> Prediction? {
        defer { framesSeen += 1 }
        guard framesSeen % every == 0 else { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        let output = try segmenter.predict(frame.color, intrinsics: intrinsics)
        var prediction = Prediction(probabilities: output.classProbabilities())
        if predictsDepth, let depthModel {
            let depthOutput = depthModel === segmenter ? output : try depthModel.predict(frame.color, intrinsics: intrinsics)
            prediction.depth = depthOutput.depthImage(width: frame.color.width, height: frame.color.height)
        }
        runs += 1
        milliseconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        return prediction
    }

    /// One line for summaries: how often the network ran and how long it took.
    public var report: String {
        let sorted = milliseconds.sorted()
        let median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        return "Network: ran on \(runs) of \(framesSeen) frames (every \(every)), median \(String(format: "%.0f", median)) ms per run, \(segmenter.threads) thread(s)"
    }
}
