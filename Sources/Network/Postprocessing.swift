import Imaging
import Semantics

/// Turning raw stride-4 outputs into what people and fusion use.
extension NetworkOutput {
    /// Softmax class probabilities at output resolution, pixel-major, for label fusion (which
    /// samples lower-resolution maps by nearest lookup, as SemanticFusion does with CNN outputs).
    public func classProbabilities() -> ClassProbabilityMap {
        let plane = height * width, n = classCount
        var values = [Float](repeating: 0, count: plane * n)
        logits.withUnsafeBufferPointer { l in
            values.withUnsafeMutableBufferPointer { v in
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
        return ClassProbabilityMap(width: width, height: height, classCount: n, values: values)
    }

    /// Per-pixel argmax of the logits, upsampled to `height` x `width` with OpenCV-style bicubic
    /// interpolation of the logits first, as the authors' notebooks do.
    public func labels(height fullHeight: Int, width fullWidth: Int, threads: Int = 1) -> LabelImage {
        let up = resizeBicubic(logits, channels: classCount, height: height, width: width,
                               toHeight: fullHeight, width: fullWidth, threads: threads)
        let plane = fullHeight * fullWidth
        var labels = LabelImage(width: fullWidth, height: fullHeight, repeating: 0)
        up.withUnsafeBufferPointer { u in
            for i in 0..<plane {
                var best = 0, bestValue = u[i]
                for c in 1..<classCount where u[c * plane + i] > bestValue { best = c; bestValue = u[c * plane + i] }
                labels.pixels[i] = UInt8(best)
            }
        }
        return labels
    }

    /// Argmax at output resolution (no upsampling).
    public func labelsAtOutputResolution() -> LabelImage {
        let plane = height * width
        var labels = LabelImage(width: width, height: height, repeating: 0)
        for i in 0..<plane {
            var best = 0, bestValue = logits[i]
            for c in 1..<classCount where logits[c * plane + i] > bestValue { best = c; bestValue = logits[c * plane + i] }
            labels.pixels[i] = UInt8(best)
        }
        return labels
    }

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
