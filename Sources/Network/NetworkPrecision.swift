import Foundation
import NetworkKernels

/// Arithmetic of a network's dense convolutions.
public enum NetworkPrecision: String, CaseIterable, Sendable {
    /// Float32 GEMMs (OpenBLAS): the reference.
    case float32
    /// Int8 GEMMs with int32 sums (`NetworkKernels.int8Gemm`): 8-bit weights (a converted
    /// model's own, or quantised per output channel) and activations quantised per pixel on
    /// every pass. Depthwise, pooling, resizing, the heads, the first convolution on the image
    /// and the joint network's first block (`layer2`) stay float32.
    case int8

    /// Why this precision cannot run well here, or nil. Int8 needs the AVX-512 VNNI kernels: the
    /// portable ones give the same numbers but took 4x the float32 time on DeepLab. Setting
    /// SEMFUSE_INT8_PORTABLE=1 runs them anyway (to try the fallback).
    public var unavailableReason: String? {
        guard self == .int8, !int8KernelUsesVNNI else { return nil }
        if ProcessInfo.processInfo.environment["SEMFUSE_INT8_PORTABLE"] == "1" { return nil }
        return "--precision int8 needs a CPU with AVX-512 VNNI (Intel Ice Lake / AMD Zen 4 or later), and this one has none; "
            + "its portable int8 kernels compute the same numbers but take about 4x the float32 time. Use --precision float32 "
            + "(or set SEMFUSE_INT8_PORTABLE=1 to run them anyway)."
    }
}
