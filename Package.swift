// swift-tools-version:6.0
import PackageDescription

/// Release builds keep Swift's checks everywhere (`-O`: out-of-bounds indices and integer
/// overflow trap instead of being undefined behaviour; the parsers read untrusted files) and,
/// except the two below, compile for the baseline x86-64, so any CPU can start the program and
/// be told what it lacks.
///
/// Only the SIMD kernel target (`NetworkKernels`: raw-pointer loops over buffers whose sizes
/// the graph planner has already checked) is built `-Ounchecked` for `kernelCPU`: AVX2 for the
/// 8-lane vectors and FMA so `SIMD.addingProduct` is one vfmadd instead of a per-lane libm call.
/// Code compiled for it dies of SIGILL on an older CPU, so its callers check the CPU first
/// (`CPUCheck.KernelCPU`, which knows the feature set this name implies: x86-64-v3).
let kernelCPU = "haswell"
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", kernelCPU], .when(configuration: .release)),
]
/// Mapping's per-pixel loops are checked (`-O`) but also compiled for `kernelCPU`: on the baseline
/// x86-64 (SSE2, 4 lanes, no vector floor) the bilateral filter ran 3x slower. Its entry points
/// check the CPU like the network's (`SurfelFusion.init`; semfuse checks before anything).
let checkedKernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", kernelCPU], .when(configuration: .release)),
]
/// Tells `CPUCheck` that the kernels were compiled for `kernelCPU` (release builds only).
let kernelCPUDefine: [SwiftSetting] = [.define("KERNELS_NEED_X86_64_V3", .when(configuration: .release))]
let libm: [LinkerSetting] = [.linkedLibrary("m")]

let package = Package(
    name: "SemanticSurfels",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "semfuse", targets: ["semfuse"]),
        .library(name: "SemanticSurfels", targets: ["Pipeline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // System-library shims (Debian: libopenblas-dev, libpng-dev); JPEG needs a C wrapper for
        // libjpeg's longjmp error path (Debian: libjpeg62-turbo-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "CJPEG", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("jpeg")]),
        // zlib streams for .klg and ScanNet .sens depth behind a caller-sized buffer (Debian: zlib1g-dev).
        .target(name: "CZlib", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("z")]),
        // Small dense solves through Eigen behind an extern "C" header (Debian: libeigen3-dev).
        .target(name: "EigenBridge", cxxSettings: [.unsafeFlags(["-O2"])]),
        // CPUID behind a C function, and the decision whether the kernels can run here.
        .target(name: "CCPUID"),
        .target(name: "CPrefetch"),
        // The int8 GEMM of the quantised network path: an AVX-512 VNNI kernel chosen at run time,
        // and a portable one with the same results.
        .target(name: "CInt8", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "CAllocator"),
        .target(name: "CPUCheck", dependencies: ["CCPUID"], swiftSettings: kernelCPUDefine),

        .target(name: "Geometry", linkerSettings: libm),
        .target(name: "Imaging", dependencies: ["CPNG", "CJPEG"], linkerSettings: libm),
        .target(name: "Semantics", dependencies: ["Imaging"], linkerSettings: libm),
        .target(name: "Sequences", dependencies: ["CZlib", "Geometry", "Imaging", "Semantics"], linkerSettings: libm),
        // The SIMD and BLAS kernels of both networks (the only unchecked, AVX2 code).
        .target(name: "NetworkKernels", dependencies: ["CBLAS", "CInt8", "CPrefetch"], swiftSettings: kernelFlags, linkerSettings: libm),
        // The joint depth + segmentation network and the converted-model executor.
        .target(name: "Network", dependencies: ["CBLAS", "CPUCheck", "Imaging", "NetworkKernels", "Semantics"], linkerSettings: libm),
        .target(name: "Mapping", dependencies: ["CPUCheck", "CPrefetch", "Geometry", "Imaging", "Semantics", "EigenBridge"],
                swiftSettings: checkedKernelFlags, linkerSettings: libm),
        .target(name: "Export", dependencies: ["Geometry", "Imaging", "Semantics", "Mapping"], linkerSettings: libm),
        // Surfels to triangle meshes: a sparse signed-distance volume and marching cubes (checked:
        // it reads PLY files users give it).
        .target(name: "Meshing", dependencies: ["Export", "Imaging", "Semantics"], linkerSettings: libm),
        .target(name: "Pipeline", dependencies: [
            "Geometry", "Imaging", "Semantics", "Sequences", "Mapping", "Export", "Meshing", "EigenBridge", "Network",
            .product(name: "Logging", package: "swift-log"),
        ], linkerSettings: libm),
        .executableTarget(name: "semfuse", dependencies: [
            "CAllocator", "CPUCheck", "Pipeline", "Network", "Mapping", "Meshing", "Export",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Shared test helpers (locating ../shared, temporary folders); used by tests only.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CPUCheckTests", dependencies: ["CPUCheck", "CAllocator"]),
        .testTarget(name: "GeometryTests", dependencies: ["Geometry", "EigenBridge"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "TestSupport"]),
        .testTarget(name: "SemanticsTests", dependencies: ["Semantics", "TestSupport"]),
        .testTarget(name: "SequencesTests", dependencies: ["Sequences", "TestSupport"]),
        .testTarget(name: "NetworkTests", dependencies: ["Network", "NetworkKernels", "CInt8", "CPUCheck", "Imaging", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MappingTests", dependencies: ["Mapping", "Sequences"]),
        .testTarget(name: "ExportTests", dependencies: ["Export", "Mapping", "TestSupport"]),
        .testTarget(name: "MeshingTests", dependencies: ["Meshing", "Export", "Semantics"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Network", "Imaging", "Sequences", "Semantics", "Geometry", "Export", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: .cxx17
)

// Fuzzing (issue 9): every parser as a function of a file's bytes (`FuzzTargets`), replayed over
// Tests/FuzzCorpus by the normal suite; the libFuzzer harness itself is only added for
// scripts/fuzz.sh (SEMFUSE_FUZZ=1), so ordinary builds never need the fuzzer runtime.
package.targets += [
    .target(name: "FuzzTargets", dependencies: ["Imaging", "Export", "Meshing", "Network", "Sequences"], path: "Tests/FuzzTargets"),
    .testTarget(name: "FuzzRegressionTests", dependencies: ["FuzzTargets", "TestSupport"]),
]
if Context.environment["SEMFUSE_FUZZ"] == "1" {
    package.targets.append(.executableTarget(name: "semfuse-fuzz", dependencies: ["FuzzTargets"], path: "Fuzz"))
}
