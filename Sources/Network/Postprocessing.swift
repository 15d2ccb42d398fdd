import CPUCheck
import Imaging
import NetworkKernels
import Semantics

/// Turning raw logits into what people and fusion use, for any model's `C x h x w` logits.
extension PlanarMap {
    /// Softmax class probabilities at the logits' resolution, pixel-major, for label fusion
    /// (which samples lower-resolution maps by nearest lookup, as SemanticFusion does with CNN
    /// outputs).
    public func classProbabilities() -> ClassProbabilityMap {
        let plane = height * width, n = channels
        var probabilities = [Float](repeating: 0, count: plane * n)
        values.withUnsafeBufferPointer { l in
            probabilities.withUnsafeMutableBufferPointer { v in
                for i in 0..<plane {
                    var top = -Float.infinity
                    for c in 0..<n { top = max(top, l[c * plane + i]) }
                    var sum: Float = 0
                    for c in 0..<n { let e = expf(l[c * plane + i] - top); v[i * n + c] = e; sum += e }
                    let inv = 1 / sum
                    for c in 0..<n { v[i * n + c] *= inv }
                }
            }
        }
        return ClassProbabilityMap(width: width, height: height, classCount: n, values: probabilities)
    }

    /// Per-pixel argmax of the logits, upsampled to `height` x `width` with OpenCV-style bicubic
    /// interpolation of the logits first, as the joint network's notebooks do.
    public func labels(height fullHeight: Int, width fullWidth: Int, threads: Int = 1) -> LabelImage {
        PlanarMap(channels: channels, height: fullHeight, width: fullWidth,
                  values: resizeBicubic(values, channels: channels, height: height, width: width,
                                        toHeight: fullHeight, width: fullWidth, threads: threads)).labelsAtOutputResolution()
    }

    /// Argmax at the logits' own resolution (ties to the lowest class).
    public func labelsAtOutputResolution() -> LabelImage {
        let plane = height * width
        var labels = LabelImage(width: width, height: height, repeating: 0)
        values.withUnsafeBufferPointer { l in
            for i in 0..<plane {
                var best = 0, bestValue = l[i]
                for c in 1..<max(channels, 1) where l[c * plane + i] > bestValue { best = c; bestValue = l[c * plane + i] }
                labels.pixels[i] = UInt8(best)
            }
        }
        return labels
    }
}

/// The joint network's raw stride-4 outputs.
extension NetworkOutput {
    /// The logits as a map.
    public var logitMap: PlanarMap { PlanarMap(channels: classCount, height: height, width: width, values: logits) }

    public func classProbabilities() -> ClassProbabilityMap { logitMap.classProbabilities() }
    public func labels(height fullHeight: Int, width fullWidth: Int, threads: Int = 1) -> LabelImage {
        logitMap.labels(height: fullHeight, width: fullWidth, threads: threads)
    }
    public func labelsAtOutputResolution() -> LabelImage { logitMap.labelsAtOutputResolution() }

    /// Depth in metres at `height` x `width`: bicubic upsampling, then `abs`, as the notebooks do.
    /// No clamp is applied (the reference has none); fusion applies its own range limits.
    public func depthImage(height fullHeight: Int, width fullWidth: Int) -> DepthImage {
        let up = resizeBicubic(depth, channels: 1, height: height, width: width, toHeight: fullHeight, width: fullWidth)
        return DepthImage(width: fullWidth, height: fullHeight, pixels: up.map { abs($0) })
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bicubic resize as OpenCV's `INTER_CUBIC` for float images (a = −0.75, half-pixel centres,
/// indices clamped at the borders), which the authors' notebooks use to bring the stride-4
/// outputs to full resolution. Plain CHW arrays in and out. (The public door to the kernel:
/// checks the CPU first, see `KernelCPU`.)
public func resizeBicubic(_ input: [Float], channels: Int, height: Int, width: Int,
                          toHeight: Int, width toWidth: Int, threads: Int = 1) -> [Float] {
    KernelCPU.requireSupported()
    return resizeBicubicKernel(input, channels: channels, height: height, width: width, toHeight: toHeight, width: toWidth,
                               threads: threads)
}
