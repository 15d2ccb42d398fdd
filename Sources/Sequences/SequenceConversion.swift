import Foundation
import Imaging
import Semantics

/// Copies frames of any readable sequence into any writable layout (`semfuse convert`).
public enum SequenceConversion {
    public struct Result {
        /// Frames written.
        public var written: Int
        /// Frames selected.
        public var selected: Int
        /// The error that stopped reading (the frames before it were written and the output
        /// completed), or nil when every selected frame was converted.
        public var failure: Error?
        /// Interrupted before this position.
        public var interruptedAt: Int?
        /// What the target layout could not keep (labels, probabilities, poses), for the user.
        public var dropped: [String]
    }

    /// Reader options for converting: every depth the source stores is kept (no near or far cut).
    public static func readerOptions(_ base: ReaderOptions = ReaderOptions()) -> ReaderOptions {
        var options = base
        options.minDepth = 0
        options.maxDepth = Float(InputLimits.maxDepth.upperBound)
        return options
    }

    /// The depth unit a semfuse target keeps: the source's own where known (millimetres for
    /// 7-Scenes, .klg and ScanNet; 5000 per metre for TUM and ICL-NUIM), so values survive exactly.
    public static func depthScale(of source: FrameSource) -> Double {
        if let semfuse = source as? SemfuseSequenceReader { return semfuse.manifest.depthScale }
        return ["tum", "icl-nuim"].contains(source.layout) ? 5000 : 1000
    }

    /// Writes `positions` of `source` through `writer` and completes it. A frame that cannot be
    /// read stops the copy; what was read before it is still completed into a valid output.
    public static func run(source: FrameSource, positions: [Int], format: SequenceFormat, writer: SequenceWriting,
                           shouldStop: () -> Bool = { false }, progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        var dropped: [String] = []
        let caps = source.capabilities
        if !format.holdsSemantics {
            if caps.hasLabels { dropped.append("label images (a \(format.rawValue) sequence cannot hold them; convert to a semfuse folder to keep them)") }
            if caps.hasProbabilities { dropped.append("recorded class probabilities (a \(format.rawValue) sequence cannot hold them; convert to a semfuse folder to keep them)") }
        }
        var posed = 0
        var result = Result(written: 0, selected: positions.count, failure: nil, interruptedAt: nil, dropped: dropped)
        for position in positions {
            if shouldStop() { result.interruptedAt = position; break }
            let frame: Frame
            do { frame = try source.frame(at: position) } catch {
                result.failure = error
                break
            }
            try writer.append(frame)
            if frame.worldFromCamera != nil { posed += 1 }
            result.written += 1
            progress?(result.written, positions.count)
        }
        // Every layout but 7-Scenes stores poses for all frames or none.
        if format != .sevenScenes && posed > 0 && posed < result.written {
            result.dropped.append("ground-truth poses (\(posed) of \(result.written) frames have one; a \(format.rawValue) sequence stores poses for every frame or none; 7-Scenes folders keep them per frame)")
        }
        if result.written > 0 { try writer.complete() }
        return result
    }
}
