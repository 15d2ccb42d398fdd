/// Shared vocabulary of the graph kernels (the converted TFLite models' operators): output clamps
/// and convolution/pooling window geometry. The graph executor builds these from `docs/graph-format.md`.

/// Output clamp: fused activation merged with a quantised tensor's range. lo/hi may be ±infinity.
package struct Clamp: Equatable {
    package var lo: Float
    package var hi: Float
    package init(lo: Float, hi: Float) { self.lo = lo; self.hi = hi }
    package static let none = Clamp(lo: -.infinity, hi: .infinity)
    package static let relu6 = Clamp(lo: 0, hi: 6)
    package var isNone: Bool { lo == -.infinity && hi == .infinity }

    /// The bounds as vectors, hoisted out of the kernels' inner loops. An infinite bound is the
    /// identity under `vmax`/`vmin`, so kernels clamp unconditionally rather than branch per case.
    package var vectors: (lo: F8, hi: F8) { (F8(repeating: lo), F8(repeating: hi)) }
}

@inline(__always) package func clamped(_ v: F8, _ lo: F8, _ hi: F8) -> F8 { vmin(vmax(v, lo), hi) }
@inline(__always) package func clamped(_ v: Float, _ clamp: Clamp) -> Float { min(max(v, clamp.lo), clamp.hi) }

/// Geometry of a 2-D convolution or pooling window. Padding on the bottom/right is whatever the
/// output size implies; out-of-image taps read zero (convolutions) or are skipped (average pooling).
package struct ConvGeometry: Equatable {
    package var kernelHeight: Int, kernelWidth: Int
    package var strideY: Int, strideX: Int
    package var dilationY: Int, dilationX: Int
    package var padTop: Int, padLeft: Int
    package init(kernelHeight: Int, kernelWidth: Int, strideY: Int, strideX: Int, dilationY: Int, dilationX: Int,
                 padTop: Int, padLeft: Int) {
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth; self.strideY = strideY; self.strideX = strideX
        self.dilationY = dilationY; self.dilationX = dilationX; self.padTop = padTop; self.padLeft = padLeft
    }
}

/// `p[i] = clamp(p[i] + bias + residual[i])` over `count` floats: the generalisation of
/// `biasEpilogue` to any clamp. The residual test is per call, not per pixel.
@inline(__always)
package func clampEpilogue(_ p: UnsafeMutablePointer<Float>, count: Int, bias: Float, residual: UnsafePointer<Float>?, clamp: Clamp) {
    let b = F8(repeating: bias), (lo, hi) = clamp.vectors
    var i = 0
    if let residual {
        while i + 8 <= count { store8(clamped(load8(p + i) + b + load8(residual + i), lo, hi), p + i); i += 8 }
        while i < count { p[i] = clamped(p[i] + bias + residual[i], clamp); i += 1 }
    } else {
        while i + 8 <= count { store8(clamped(load8(p + i) + b, lo, hi), p + i); i += 8 }
        while i < count { p[i] = clamped(p[i] + bias, clamp); i += 1 }
    }
}
