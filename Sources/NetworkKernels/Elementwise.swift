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
            scaleReLU6(src.channel(c), by: scale[c], into: dst.channel(c), count: plane)
        }
    }
}

/// dst = min(max(src · s, 0), 6) over `count` floats: the heads' depthwise 1x1 + ReLU6, for a
/// whole plane or for one row as a kernel reads it.
@inline(__always)
package func scaleReLU6(_ src: UnsafePointer<Float>, by s: Float, into dst: UnsafeMutablePointer<Float>, count: Int) {
    let w = F8(repeating: s)
    var x = 0
    while x + 8 <= count { store8(clamp6(load8(src + x) * w), dst + x); x += 8 }
    while x < count { dst[x] = min(max(src[x] * s, 0), 6); x += 1 }
}

/// `dst += src` over `count` floats.
@inline(__always)
package func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
    var i = 0
    while i + 8 <= count { store8(load8(dst + i) + load8(src + i), dst + i); i += 8 }
    while i < count { dst[i] += src[i]; i += 1 }
}
