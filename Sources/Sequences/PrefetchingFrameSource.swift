import Dispatch
import Foundation
import Geometry
import Semantics

/// Reads the next frame on a background thread while the caller works on the current one, so
/// decoding (JPEG, zlib, PNG) overlaps with fusion instead of adding to it.
///
/// After `frame(at: i)` it starts reading `i + step`, where `step` is the distance between the
/// last two requests (1 at first; `--every n` gives n), and hands that frame over when it is
/// asked for. At most one frame is read ahead, so memory does not grow. Every call to the wrapped
/// source runs on one serial queue, so sources that are not thread-safe stay correct; a request
/// that was not predicted waits for the read in flight and then reads as usual. Errors of a
/// prefetched frame are thrown when that frame is asked for, exactly as without prefetching.
public final class PrefetchingFrameSource: FrameSource, @unchecked Sendable {
    public let inner: FrameSource
    private let queue = DispatchQueue(label: "semfuse.prefetch")
    /// The frame being read ahead, and its result once read (guarded by `lock`).
    private var pendingIndex: Int?
    private var pendingResult: Result<Frame, Error>?
    private let lock = NSCondition()
    private var lastIndex: Int?
    /// Requests answered from the read-ahead, for tests and the summary.
    public private(set) var prefetchHits = 0
    /// Seconds the caller spent inside `frame(at:)`: waiting for a frame read ahead, or reading
    /// one that was not. What reading still costs the fusion thread, with or without read-ahead.
    public private(set) var waitSeconds = 0.0
    /// Frames handed out.
    public private(set) var requests = 0
    /// false: no read-ahead; frames are read when asked for, and only `waitSeconds` is kept (so
    /// runs with and without the overlap report the same measure).
    public let readAhead: Bool

    public init(_ inner: FrameSource, readAhead: Bool = true) {
        self.inner = inner
        self.readAhead = readAhead
    }

    public var name: String { inner.name }
    public var layout: String { inner.layout }
    public var intrinsics: Intrinsics { inner.intrinsics }
    public var frameCount: Int { inner.frameCount }
    public var capabilities: SequenceCapabilities { inner.capabilities }
    public var classSet: ClassSet? { inner.classSet }
    public var assumptions: [String] { inner.assumptions }
    public var warnings: [String] { inner.warnings }

    public func frame(at index: Int) throws -> Frame {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            requests += 1
        }
        guard readAhead else { return try inner.frame(at: index) }
        let result: Result<Frame, Error>
        lock.lock()
        if pendingIndex == index {
            while pendingResult == nil { lock.wait() }
            result = pendingResult!
            pendingIndex = nil
            pendingResult = nil
            lock.unlock()
            prefetchHits += 1
        } else {
            lock.unlock()
            // A mispredicted request: the read in flight (if any) finishes first on the queue.
            result = queue.sync { Result { try inner.frame(at: index) } }
            lock.lock()
            if pendingResult != nil { pendingIndex = nil; pendingResult = nil }
            lock.unlock()
        }
        let step = lastIndex.map { index - $0 } ?? 1
        lastIndex = index
        let next = index + (step > 0 ? step : 1)
        if case .success = result, next < frameCount { schedule(next) }
        return try result.get()
    }

    public func groundTruth(at index: Int) throws -> (timestamp: Double, pose: RigidTransform?, poseError: SequenceError?) {
        try queue.sync { try inner.groundTruth(at: index) }
    }

    private func schedule(_ index: Int) {
        lock.lock()
        let busy = pendingIndex != nil
        if !busy { pendingIndex = index; pendingResult = nil }
        lock.unlock()
        guard !busy else { return }
        queue.async { [self] in
            let result = Result { try inner.frame(at: index) }
            lock.lock()
            if pendingIndex == index { pendingResult = result }
            lock.broadcast()
            lock.unlock()
        }
    }
}
