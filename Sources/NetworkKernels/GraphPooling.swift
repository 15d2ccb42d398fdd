/// TF average pooling: mean over the in-image taps only (padding is not counted), then clamp.
/// The in-image taps of a window form a rectangle, so each output pixel sums that rectangle and
/// divides by its area; the rectangle's bounds are worked out per row and per column, not per tap.
/// (The converted models pool only globally or on small maps, so this stays a direct loop.)
package func averagePool(_ input: FeatureMap, into output: FeatureMap, geometry g: ConvGeometry, clamp: Clamp, threads: Int) {
    precondition(input.channels == output.channels)
    let h = input.height, w = input.width, ho = output.height, wo = output.width
    /// The taps k in 0..<size with 0 ≤ origin + k·step < extent.
    @inline(__always) func taps(_ origin: Int, _ step: Int, _ size: Int, _ extent: Int) -> Range<Int> {
        let first = origin >= 0 ? 0 : (step - 1 - origin) / step
        let end = origin >= extent ? 0 : min(size, (extent - 1 - origin) / step + 1)
        return first..<max(first, end)
    }
    parallelRanges(output.channels * ho, threads: threads) { _, units in
        for unit in units {
            let c = unit / ho, y = unit % ho
            let src = input.channel(c), out = output.channel(c) + y * wo
            let oy = y * g.strideY - g.padTop
            let rows = taps(oy, g.dilationY, g.kernelHeight, h)
            for x in 0..<wo {
                let ox = x * g.strideX - g.padLeft
                let columns = taps(ox, g.dilationX, g.kernelWidth, w)
                var sum: Float = 0
                for ky in rows {
                    let line = src + (oy + ky * g.dilationY) * w + ox
                    for kx in columns { sum += line[kx * g.dilationX] }
                }
                let area = rows.count * columns.count
                out[x] = area == 0 ? 0 : clamped(sum / Float(area), clamp)
            }
        }
    }
}

/// Mean over each whole channel into a C×1×1 map, then clamp. Four vector accumulators per
/// channel keep the sum's rounding error small on large planes.
package func globalAveragePool(_ input: FeatureMap, into output: FeatureMap, clamp: Clamp, threads: Int) {
    precondition(output.channels == input.channels && output.height == 1 && output.width == 1)
    let n = input.plane
    parallelRanges(input.channels, threads: input.count >= 65536 ? threads : 1) { _, channels in
        for c in channels {
            let p = input.channel(c)
            var s0 = F8(), s1 = F8(), s2 = F8(), s3 = F8()
            var i = 0
            while i + 32 <= n {
                s0 += load8(p + i); s1 += load8(p + i + 8); s2 += load8(p + i + 16); s3 += load8(p + i + 24)
                i += 32
            }
            while i + 8 <= n { s0 += load8(p + i); i += 8 }
            var sum = ((s0 + s1) + (s2 + s3)).sum()
            while i < n { sum += p[i]; i += 1 }
            output.base[c] = clamped(sum / Float(n), clamp)
        }
    }
}
