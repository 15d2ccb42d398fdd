import CCPUID

/// Whether this CPU can run the SIMD kernels.
///
/// The kernel targets (`NetworkKernels`, unchecked, and `Mapping`, checked) are compiled with
/// `-target-cpu haswell`: AVX2 for
/// 8-lane SIMD and FMA so `addingProduct` is one `vfmadd` instead of a library call per lane.
/// Any instruction in them, even a plain vector move (VEX-encoded under AVX), raises SIGILL on a
/// CPU without AVX, so every entry point checks here first and fails with a sentence instead of
/// "Illegal instruction". The rest of the package (this check, semfuse's entry point) is compiled
/// for the baseline x86-64, so it runs anywhere.
///
/// The features required are the x86-64-v3 level (what a compiler may emit for Haswell without
/// intrinsics): Haswell and later Intel, Excavator/Zen and later AMD.
public struct KernelCPU: Equatable, Sendable {
    /// The raw CPUID/XGETBV words (see `CCPUID.h`).
    public var isX86: Bool
    public var maxLeaf: UInt32
    public var leaf1ECX: UInt32
    public var leaf7EBX: UInt32
    public var extendedLeaf1ECX: UInt32
    public var xcr0: UInt64

    public init(isX86: Bool = true, maxLeaf: UInt32, leaf1ECX: UInt32, leaf7EBX: UInt32, extendedLeaf1ECX: UInt32, xcr0: UInt64) {
        self.isX86 = isX86; self.maxLeaf = maxLeaf; self.leaf1ECX = leaf1ECX; self.leaf7EBX = leaf7EBX
        self.extendedLeaf1ECX = extendedLeaf1ECX; self.xcr0 = xcr0
    }

    /// This machine, read once.
    public static let current: KernelCPU = {
        let w = semfuse_read_cpu_words()
        return KernelCPU(isX86: w.is_x86_64 != 0, maxLeaf: w.max_leaf, leaf1ECX: w.leaf1_ecx, leaf7EBX: w.leaf7_ebx,
                         extendedLeaf1ECX: w.ext1_ecx, xcr0: w.xcr0)
    }()

    enum Word: Sendable { case leaf1ECX, leaf7EBX, extendedLeaf1ECX }

    /// (name, CPUID word, bit) of every feature the kernels may use.
    static let required: [(name: String, word: Word, bit: UInt32)] = [
        ("SSE3", .leaf1ECX, 0), ("SSSE3", .leaf1ECX, 9), ("FMA", .leaf1ECX, 12), ("CMPXCHG16B", .leaf1ECX, 13),
        ("SSE4.1", .leaf1ECX, 19), ("SSE4.2", .leaf1ECX, 20), ("MOVBE", .leaf1ECX, 22), ("POPCNT", .leaf1ECX, 23),
        ("XSAVE", .leaf1ECX, 26), ("AVX", .leaf1ECX, 28), ("F16C", .leaf1ECX, 29),
        ("BMI1", .leaf7EBX, 3), ("AVX2", .leaf7EBX, 5), ("BMI2", .leaf7EBX, 8),
        ("LAHF/SAHF", .extendedLeaf1ECX, 0), ("LZCNT", .extendedLeaf1ECX, 5),
    ]

    func value(_ word: Word) -> UInt32 {
        switch word {
        case .leaf1ECX: return leaf1ECX
        case .leaf7EBX: return maxLeaf >= 7 ? leaf7EBX : 0   // leaf 7 means nothing if the CPU lacks it
        case .extendedLeaf1ECX: return extendedLeaf1ECX
        }
    }

    /// Names of the required features this CPU (or its operating system) lacks; empty when the
    /// kernels can run. Not x86: empty (the kernel flags apply to x86-64 builds only).
    public var missingFeatures: [String] {
        guard isX86 else { return [] }
        var missing = Self.required.filter { value($0.word) & (1 << $0.bit) == 0 }.map(\.name)
        // AVX needs the OS to save the YMM registers on a context switch: OSXSAVE set and XCR0
        // bits 1 (SSE state) and 2 (AVX state).
        if leaf1ECX & (1 << 27) == 0 || xcr0 & 0b110 != 0b110 { missing.append("OS support for AVX state (XCR0)") }
        return missing
    }

    public var isSupported: Bool { missingFeatures.isEmpty }

    /// The sentence to show when the kernels cannot run here; nil when they can.
    public var unsupportedMessage: String? {
        let missing = missingFeatures
        guard !missing.isEmpty else { return nil }
        return "this build of semfuse needs an x86-64 CPU with AVX2 and FMA (x86-64-v3: Intel Haswell, AMD Excavator "
            + "or later); this CPU lacks \(missing.joined(separator: ", ")). Build it for another CPU by changing "
            + "`kernelCPU` in Package.swift."
    }

    /// Whether this build's kernels were compiled for x86-64-v3 (release builds; debug builds
    /// compile them for the baseline and run anywhere).
    public static let kernelsNeedCheck: Bool = {
        #if KERNELS_NEED_X86_64_V3
        return true
        #else
        return false
        #endif
    }()

    /// Why this build's kernels cannot run on this machine; nil when they can.
    public static var problemHere: String? { kernelsNeedCheck ? current.unsupportedMessage : nil }

    /// Stops the process with `problemHere` before any kernel runs, for library entry points
    /// that cannot throw (a kernel would die of SIGILL a moment later anyway).
    public static func requireSupported() {
        if let message = problemHere { preconditionFailure(message) }
    }
}
