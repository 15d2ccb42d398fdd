import Imaging
import Semantics
import Sequences

/// What a predictor says about one frame.
public struct Prediction: @unchecked Sendable {
    /// Per-pixel class probabilities (any resolution), or nil.
    public var probabilities: ClassProbabilityMap?
    /// Predicted depth in metres, or nil (the network predictor will fill this).
    public var depth: DepthImage?
    public init(probabilities: ClassProbabilityMap? = nil, depth: DepthImage? = nil) {
        self.probabilities = probabilities; self.depth = depth
    }
}

/// The seam between per-frame prediction and fusion: ground-truth labels, recorded
/// probabilities, a simulated segmenter or (later) the joint network all look the same to the
/// reconstruction loop.
public protocol Predictor: AnyObject {
    /// Shown in progress and summaries.
    var name: String { get }
    var classSet: ClassSet { get }
    /// Prediction for `frame`, or nil if this predictor has nothing for it (e.g. a frame without
    /// recorded probabilities). Throws with the frame's source on bad data.
    func predict(_ frame: Frame) throws -> Prediction?
}

/// Turns ground-truth label images into probabilities with a stated confidence (the labelled
/// class gets `confidence`, the others share the rest). Useful for evaluation and for building
/// maps from annotated sequences.
public final class LabelImagePredictor: Predictor {
    public let classSet: ClassSet
    public let confidence: Double
    public var name: String { "ground-truth labels (confidence \(confidence))" }

    public init(classSet: ClassSet, confidence: Double) throws {
        guard confidence > 1 / Double(classSet.count), confidence < 1 else { throw SemanticsError.invalidConfidence(confidence) }
        self.classSet = classSet
        self.confidence = confidence
    }

    public func predict(_ frame: Frame) throws -> Prediction? {
        guard let labels = frame.labels else { return nil }
        return Prediction(probabilities: try ClassProbabilityMap(labels: labels, classCount: classSet.count,
                                                                 confidence: confidence, source: frame.source))
    }
}

/// Replays per-frame class probabilities recorded with the sequence (no network needed).
public final class RecordedPredictor: Predictor {
    public let classSet: ClassSet
    public var name: String { "recorded probabilities" }
    public init(classSet: ClassSet) { self.classSet = classSet }

    public func predict(_ frame: Frame) throws -> Prediction? {
        guard let probabilities = frame.probabilities else { return nil }
        guard probabilities.classCount == classSet.count else {
            throw SemanticsError.invalidProbabilities(source: frame.source,
                                                      reason: "\(probabilities.classCount) classes, expected \(classSet.count) (\(classSet.name))")
        }
        return Prediction(probabilities: probabilities)
    }
}

/// An imperfect segmenter simulated from the sequence's ground-truth labels (see
/// `SimulatedSegmenter`): shows what label fusion fixes without needing a trained network.
public final class SimulatedSegmenterPredictor: Predictor {
    public let segmenter: SimulatedSegmenter
    public var classSet: ClassSet { segmenter.classSet }
    public var name: String { "simulated segmenter (seed \(segmenter.seed))" }

    public init(classSet: ClassSet, seed: UInt64) {
        segmenter = SimulatedSegmenter(classSet: classSet, seed: seed)
    }

    public func predict(_ frame: Frame) throws -> Prediction? {
        guard let labels = frame.labels else { return nil }
        return Prediction(probabilities: segmenter.predict(labels: labels, frameIndex: frame.index))
    }
}

/// Fuses another predictor's output in a coarser class set (e.g. NYU-40 predictions into an
/// NYU-13 map, as SemanticFusion evaluates): probabilities of merged classes are summed.
public final class ClassMappingPredictor: Predictor {
    public let inner: Predictor
    public let mapping: ClassMapping
    public var classSet: ClassSet { mapping.target }
    public var name: String { "\(inner.name) mapped \(mapping.source.name) → \(mapping.target.name)" }

    public init(_ inner: Predictor, mapping: ClassMapping) {
        self.inner = inner
        self.mapping = mapping
    }

    public func predict(_ frame: Frame) throws -> Prediction? {
        guard var prediction = try inner.predict(frame) else { return nil }
        prediction.probabilities = prediction.probabilities.map(mapping.map)
        return prediction
    }
}
