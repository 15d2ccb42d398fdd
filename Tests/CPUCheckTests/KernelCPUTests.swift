import CPUCheck
import XCTest

/// The decision whether the AVX2/FMA kernels may run, fed with CPUID words of real CPUs.
final class KernelCPUTests: XCTestCase {
    /// Core i7-4770 (Haswell), Linux with AVX state enabled.
    let haswell = KernelCPU(maxLeaf: 0xD, leaf1ECX: 0x7FFA_FBBF, leaf7EBX: 0x0000_27AB, extendedLeaf1ECX: 0x21, xcr0: 0x7)
    /// Core i7-2600 (Sandy Bridge): AVX but no AVX2, FMA, F16C, MOVBE, BMI or LZCNT.
    let sandyBridge = KernelCPU(maxLeaf: 0xD, leaf1ECX: 0x1FBA_E3FF, leaf7EBX: 0, extendedLeaf1ECX: 0x1, xcr0: 0x7)

    func testHaswellRunsTheKernels() {
        XCTAssertEqual(haswell.missingFeatures, [])
        XCTAssertTrue(haswell.isSupported)
        XCTAssertNil(haswell.unsupportedMessage)
    }

    func testSandyBridgeIsToldWhatItLacks() {
        XCTAssertEqual(sandyBridge.missingFeatures, ["FMA", "MOVBE", "F16C", "BMI1", "AVX2", "BMI2", "LZCNT"])
        let message = try? XCTUnwrap(sandyBridge.unsupportedMessage)
        XCTAssertTrue(message?.contains("needs an x86-64 CPU with AVX2 and FMA") == true, message ?? "")
        XCTAssertTrue(message?.contains("lacks FMA, MOVBE, F16C, BMI1, AVX2, BMI2, LZCNT") == true, message ?? "")
    }

    /// A CPU with AVX2 under an OS (or hypervisor) that does not save the YMM registers cannot
    /// run AVX code either.
    func testAVXStateNotEnabledByTheOS() {
        var cpu = haswell
        cpu.xcr0 = 0x3   // x87 + SSE only
        XCTAssertEqual(cpu.missingFeatures, ["OS support for AVX state (XCR0)"])
        cpu = haswell
        cpu.leaf1ECX &= ~(1 << 27)   // OSXSAVE clear: XCR0 unreadable
        XCTAssertEqual(cpu.missingFeatures, ["OS support for AVX state (XCR0)"])
    }

    /// Leaf 7 words mean nothing when the CPU's highest leaf is below 7.
    func testLeaf7IgnoredBelowItsLeaf() {
        var cpu = haswell
        cpu.maxLeaf = 6
        XCTAssertEqual(cpu.missingFeatures, ["BMI1", "AVX2", "BMI2"])
    }

    func testOtherArchitecturesAreNotChecked() {
        let arm = KernelCPU(isX86: false, maxLeaf: 0, leaf1ECX: 0, leaf7EBX: 0, extendedLeaf1ECX: 0, xcr0: 0)
        XCTAssertTrue(arm.isSupported)
    }

    /// The machine running the suite runs the kernels in other tests, so it must pass the check.
    func testThisMachine() {
        XCTAssertEqual(KernelCPU.current.missingFeatures, [])
        XCTAssertNil(KernelCPU.problemHere)
    }
}
