import Foundation

/// A CHW float32 feature map living in workspace memory: channel `c` is the plane starting at
/// `base + c * plane`. A view, not an owner; valid until its workspace buffer is reused.
package struct FeatureMap {
    package let base: UnsafeMutablePointer<Float>
    package let channels: Int
    package let height: Int
    package let width: Int
    package init(base: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int) {
        self.base = base; self.channels = channels; self.height = height; self.width = width
    }
    package var plane: Int { height * width }
    package var count: Int { channels * height * width }
    @inline(__always) package func channel(_ c: Int) -> UnsafeMutablePointer<Float> { base + c * plane }
}

/// Named, reusable buffers. Each forward pass asks for the same buffers in the same order, so
/// after the first frame at a given size (or any smaller one) nothing is allocated: the buffer
/// plan is fixed per input size, without having to spell it out separately from the forward code.
package final class Workspace {
    private struct Buffer { var pointer: UnsafeMutableRawPointer; var bytes: Int }
    private var buffers: [String: Buffer] = [:]
    /// Every allocation made so far (for tests that check steady-state frames allocate nothing).
    package private(set) var allocationCount = 0

    /// Trailing bytes every buffer keeps, so SIMD kernels may read (never use) a few lanes past
    /// the end of a plane.
    package static let slackBytes = 256

    package init() {}

    package func raw(_ key: String, bytes: Int) -> UnsafeMutableRawPointer {
        if let buffer = buffers[key], buffer.bytes >= bytes { return buffer.pointer }
        if let old = buffers[key] { old.pointer.deallocate() }
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: bytes + Self.slackBytes, alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: bytes + Self.slackBytes)
        buffers[key] = Buffer(pointer: pointer, bytes: bytes)
        allocationCount += 1
        return pointer
    }

    package func floats(_ key: String, count: Int) -> UnsafeMutablePointer<Float> {
        raw(key, bytes: count * MemoryLayout<Float>.stride).assumingMemoryBound(to: Float.self)
    }

    package func map(_ key: String, channels: Int, height: Int, width: Int) -> FeatureMap {
        FeatureMap(base: floats(key, count: channels * height * width), channels: channels, height: height, width: width)
    }

    package var totalBytes: Int { buffers.values.reduce(0) { $0 + $1.bytes } }

    deinit { for buffer in buffers.values { buffer.pointer.deallocate() } }
}

/// Splits `count` items into at most `threads` contiguous ranges and runs them concurrently
/// (serially for one thread); `body` gets the worker index, for per-worker scratch.
@inline(__always)
package func parallelRanges(_ count: Int, threads: Int, _ body: (Int, Range<Int>) -> Void) {
    let workers = max(1, min(threads, count))
    if workers == 1 { body(0, 0..<count); return }
    KernelThreads.shared.run(workers) { worker in
        let start = count * worker / workers, end = count * (worker + 1) / workers
        if start < end { body(worker, start..<end) }
    }
}
