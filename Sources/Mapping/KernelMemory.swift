import CPrefetch

/// The mapping kernels' memory access, in one place (as `NetworkKernels` keeps its SIMD loads
/// and workspace): views for the duration of one kernel call, and owned fixed-address storage
/// for the per-pixel and per-worker workspaces.
///
/// Rules: a view is made by `withKernelInput`/`withKernelOutput` (arrays), `SurfelMap`'s
/// `withKernelViews`/`withKernelInputs`, or a `KernelBuffer` its caller owns, and is used only
/// inside the call that made it (passed into `ParallelFor.run`, never stored). Views are
/// Sendable because the chunks of one `ParallelFor` share them; each chunk writes disjoint
/// indices. Indexing is unchecked like the `UnsafeBufferPointer` it replaces: the kernels derive
/// every index from the image and map sizes their callers validated.

/// Read access to `count` contiguous elements.
struct KernelInput<Element>: @unchecked Sendable {
    let base: UnsafePointer<Element>
    let count: Int

    init(_ buffer: UnsafeBufferPointer<Element>) {
        // An empty array may have no storage; its view is never dereferenced.
        base = buffer.baseAddress ?? UnsafePointer(bitPattern: MemoryLayout<Element>.alignment)!
        count = buffer.count
    }

    @inline(__always) subscript(i: Int) -> Element { base[i] }
    /// Address of element `i`, for kernels that stream a run of elements (class distributions).
    @inline(__always) func address(_ i: Int) -> UnsafePointer<Element> { base + i }
}

/// Read and write access to `count` contiguous elements.
struct KernelOutput<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    let count: Int

    init(_ buffer: UnsafeMutableBufferPointer<Element>) {
        base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: MemoryLayout<Element>.alignment)!
        count = buffer.count
    }

    init(base: UnsafeMutablePointer<Element>, count: Int) { self.base = base; self.count = count }

    @inline(__always) subscript(i: Int) -> Element {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }
    @inline(__always) func address(_ i: Int) -> UnsafeMutablePointer<Element> { base + i }
    /// Starts loading the cache line of element `i` (a hint: no access, no fault), for kernels
    /// that know which scattered elements they will update a few iterations ahead.
    @inline(__always) func prefetch(_ i: Int) { semfuse_prefetch_for_write(UnsafeRawPointer(base + i)) }
    /// Elements `range` as a view of their own (e.g. one worker's z-buffer of several).
    @inline(__always) func slice(_ range: Range<Int>) -> KernelOutput<Element> {
        KernelOutput(base: base + range.lowerBound, count: range.count)
    }
    /// Sets every element to `value`.
    @inline(__always) func fill(_ value: Element) { base.update(repeating: value, count: count) }
    var input: KernelInput<Element> { KernelInput(UnsafeBufferPointer(start: base, count: count)) }
}

extension Array {
    /// Runs `body` with a read view of the array's elements.
    @inline(__always)
    func withKernelInput<R>(_ body: (KernelInput<Element>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body(KernelInput($0)) }
    }

    /// Runs `body` with a read-write view of the array's elements.
    @inline(__always)
    mutating func withKernelOutput<R>(_ body: (KernelOutput<Element>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { try body(KernelOutput($0)) }
    }
}

extension Array {
    /// The rows `order[0], order[1], …` of `width` elements each, in that order (a gather), as
    /// a new array with at least this one's capacity. Every entry of `order` must be a row of
    /// this array (checked); chunks of rows are copied in parallel.
    func gatheringRows(_ order: [Int32], width: Int, threads: Int) -> [Element] {
        precondition(width >= 0)
        guard width > 0 else { return self }
        let rows = count / width
        precondition(rows * width == count && order.allSatisfy { $0 >= 0 && Int($0) < rows }, "gatheringRows: not rows of this array")
        return withUnsafeBufferPointer { source in
            [Element](unsafeUninitializedCapacity: Swift.max(capacity, order.count * width)) { target, initialized in
                let from = KernelInput(source), to = KernelOutput(target)
                order.withKernelInput { order in
                    ParallelFor.run(order.count, chunks: threads, threads: threads) { _, range in
                        if width == 1 {
                            for j in range { to[j] = from[Int(order[j])] }
                        } else {
                            for j in range {
                                to.address(j * width).initialize(from: from.address(Int(order[j]) * width), count: width)
                            }
                        }
                    }
                }
                initialized = order.count * width
            }
        }
    }
}

/// Owned storage for a kernel workspace (per-pixel association results, per-worker z-buffers):
/// allocated when its size changes and otherwise reused frame after frame, at a fixed address,
/// so a kernel takes views of several workspaces without a closure each. Its views stay valid
/// while the buffer is alive and not resized; the owner takes them in the method that runs the
/// kernel. A reference type because it owns memory; not Sendable (views are what crosses threads).
/// A buffer whose memory can be given back (`SurfelFusion.releaseWorkspace`).
protocol KernelBufferReleasable: AnyObject {
    func clear()
}

final class KernelBuffer<Element>: KernelBufferReleasable {
    private(set) var count = 0
    private var storage: UnsafeMutablePointer<Element>?

    init() {}

    init(count: Int, repeating value: Element) { resize(count, repeating: value) }

    deinit { release() }

    /// Gives the memory back; the next `resize` allocates it again.
    func clear() { release() }

    private func release() {
        guard let storage else { return }
        storage.deinitialize(count: count)
        storage.deallocate()
        self.storage = nil
        count = 0
    }

    /// Makes the buffer `count` elements long, all `value`, if it is not that long already
    /// (contents are kept otherwise). Returns whether it was reallocated.
    @discardableResult
    func resize(_ count: Int, repeating value: Element) -> Bool {
        precondition(count >= 0)
        guard count != self.count || storage == nil else { return false }
        release()
        let memory = UnsafeMutablePointer<Element>.allocate(capacity: max(count, 1))
        memory.initialize(repeating: value, count: count)
        storage = memory
        self.count = count
        return true
    }

    /// Sets every element to `value`.
    func fill(_ value: Element) { storage?.update(repeating: value, count: count) }

    /// Bounds-checked element access, for code outside the kernels.
    subscript(i: Int) -> Element {
        get { precondition(i >= 0 && i < count, "index out of range"); return storage![i] }
        set { precondition(i >= 0 && i < count, "index out of range"); storage![i] = newValue }
    }

    var input: KernelInput<Element> { output.input }
    var output: KernelOutput<Element> {
        KernelOutput(base: storage ?? UnsafeMutablePointer(bitPattern: MemoryLayout<Element>.alignment)!, count: count)
    }

    /// A copy of the contents.
    var array: [Element] { Array(UnsafeBufferPointer(start: storage, count: count)) }
}
