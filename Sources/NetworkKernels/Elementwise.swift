/// Per-channel epilogues that follow a GEMM: add the folded BatchNorm bias, optionally a
/// residual, then optionally clamp to ReLU6. One pass over the map.
package func addBias(_ map: FeatureMap, bias: UnsafePointer<Float>?, residual: FeatureMap? = nil,
             relu6: Bool, threads: Int) {
    let plane = map.plane
    parallelRanges(map.channels, threads: threads) { _, channels in
        for c in channels {
            biasEpilogue(map.channel(c), count: plane, bias: bias?[c] ?? 0, residual: residual?.channel(c), relu6: relu6)
        }
    }
}

/// `p[i] = relu6?(p[i] + bias + residual[i])` over `count` floats.
@inline(__always)
package func biasEpilogue(_ p: UnsafeMutablePointer<Float>, count: Int, bias: Float, residual: UnsafeMutablePointer<Float>?, relu6: Bool) {
    clampEpilogue(p, count: count, bias: bias, residual: residual.map { UnsafePointer($0) }, clamp: relu6 ? .relu6 : .none)
}

/// `dst[c] = relu6(scale[c] · src[c])`: the heads' depthwise 1x1 convolution and its activation.
package func scaleChannelsReLU6(_ src: FeatureMap, scale: UnsafePointer<Float>, into dst: FeatureMap, threads: Int) {
    let plane = src.plane
    parallelRanges(src.channels, threads: threads) { _, channels in
        for c in channels {
            let s = src.channel(c), d = dst.channel(c)
            let w = F8(repeating: scale[c])
            var i = 0
            while i + 8 <= plane { store8(clamp6(load8(s + i) * w), d + i); i += 8 }
            while i < plane { d[i] = min(max(s[i] * scale[c], 0), 6); i += 1 }
        }
    }
}

/// `dst += src` over `count` floats.
@inline(__always)
package func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
    var i = 0
    while i + 8 <= count { store8(load8(dst + i) + load8(src + i), dst + i); i += 8 }
    while i < count { dst[i] += src[i]; i += 1 }
}
