// swift-tools-version:6.0
import PackageDescription

/// Release builds enable FMA/AVX2 (Haswell and later) so `SIMD.addingProduct` compiles to
/// vfmadd instead of a per-lane library call; debug builds stay portable and checked.
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"], .when(configuration: .release)),
]
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
        // Small dense solves through Eigen behind an extern "C" header (Debian: libeigen3-dev).
        .target(name: "EigenBridge", cxxSettings: [.unsafeFlags(["-O2"])]),

        .target(name: "Geometry", swiftSettings: kernelFlags, linkerSettings: libm),
        .target(name: "Imaging", dependencies: ["CPNG", "CJPEG"], swiftSettings: kernelFlags, linkerSettings: libm),
        .target(name: "Semantics", dependencies: ["Imaging"], swiftSettings: kernelFlags, linkerSettings: libm),
        .target(name: "Sequences", dependencies: ["Geometry", "Imaging", "Semantics"], swiftSettings: kernelFlags, linkerSettings: libm),
        // The joint depth + segmentation network: OpenBLAS GEMMs and SIMD kernels.
        .target(name: "Network", dependencies: ["CBLAS", "Imaging", "Semantics"], swiftSettings: kernelFlags, linkerSettings: libm),
        .target(name: "Mapping", dependencies: ["Geometry", "Imaging", "Semantics", "EigenBridge"], swiftSettings: kernelFlags, linkerSettings: libm),
        .target(name: "Export", dependencies: ["Geometry", "Imaging", "Semantics", "Mapping"], swiftSettings: kernelFlags, linkerSettings: libm),
        .target(name: "Pipeline", dependencies: [
            "Geometry", "Imaging", "Semantics", "Sequences", "Mapping", "Export", "EigenBridge", "Network",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: kernelFlags, linkerSettings: libm),
        .executableTarget(name: "semfuse", dependencies: [
            "Pipeline", "Network", "Mapping",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: kernelFlags),

        // Shared test helpers (locating ../shared, temporary folders); used by tests only.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "GeometryTests", dependencies: ["Geometry", "EigenBridge"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "TestSupport"]),
        .testTarget(name: "SemanticsTests", dependencies: ["Semantics", "TestSupport"]),
        .testTarget(name: "SequencesTests", dependencies: ["Sequences", "TestSupport"]),
        .testTarget(name: "NetworkTests", dependencies: ["Network", "Imaging", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MappingTests", dependencies: ["Mapping", "Sequences"]),
        .testTarget(name: "ExportTests", dependencies: ["Export", "Mapping", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Network", "Imaging", "Sequences", "Semantics", "Geometry", "Export", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: .cxx17
)

// Fuzzing (issue 9): every parser as a function of a file's bytes (`FuzzTargets`), replayed over
// Tests/FuzzCorpus by the normal suite; the libFuzzer harness itself is only added for
// scripts/fuzz.sh (SEMFUSE_FUZZ=1), so ordinary builds never need the fuzzer runtime.
package.targets += [
    .target(name: "FuzzTargets", dependencies: ["Imaging", "Export", "Network", "Sequences"], path: "Tests/FuzzTargets"),
    .testTarget(name: "FuzzRegressionTests", dependencies: ["FuzzTargets", "TestSupport"]),
]
if Context.environment["SEMFUSE_FUZZ"] == "1" {
    package.targets.append(.executableTarget(name: "semfuse-fuzz", dependencies: ["FuzzTargets"], path: "Fuzz"))
}
