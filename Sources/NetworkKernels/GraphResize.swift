import Foundation

/// TF resize coordinate modes: halfPixel (half_pixel_centers), alignCorners, legacy (neither: src = dst·in/out).
package enum ResizeMode { case halfPixel, alignCorners, legacy }

/// TF's resize scale, in float as TF computes it: (in−1)/(out−1) for align_corners (0 for a
/// one-pixel output), in/out otherwise.
@inline(__always)
private func resizeScale(_ inputSize: Int, _ outputSize: Int, _ mode: ResizeMode) -> Float {
    mode == .alignCorners
        ? (outputSize > 1 ? Float(inputSize - 1) / Float(outputSize - 1) : 0)
        : Float(inputSize) / Float(outputSize)
}

extension BilinearTap {
    /// TF's taps for `mode`. TF takes lower = max(floor(src), 0), upper = min(ceil(src), in−1)
    /// and weight src − floor(src) on the unclamped src; for src < 0 (half-pixel's first outputs)
    /// both indices are 0 and the weight is moot, which is the same as clamping src at 0 first,
    /// as done here. Upper = lower + 1 (clamped) with weight 0 at integral src is the same value.
    init(destination d: Int, outputSize: Int, inputSize: Int, mode: ResizeMode) {
        let scale = resizeScale(inputSize, outputSize, mode)
        let raw = mode == .halfPixel ? (Float(d) + 0.5) * scale - 0.5 : Float(d) * scale
        let src = max(raw, 0)
        let lower = min(Int(src), inputSize - 1)
        i0 = lower
        i1 = min(lower + 1, inputSize - 1)
        w1 = min(src - Float(lower), 1)
        w0 = 1 - w1
    }
}

/// TF ResizeBilinear for each mode. Separable: each needed input row is first resized
/// horizontally (a table of two taps per output column) into a per-worker row cache that holds
/// the two most recent input rows, then output rows are vertical SIMD blends of two cached rows.
/// Upsampling by f thus gathers only 1/f of the outputs' columns; downsampling resizes each input
/// row at most once. The exact-2x half-pixel case keeps its constant-weight fast path.
package func resizeBilinear(_ input: FeatureMap, into output: FeatureMap, mode: ResizeMode, workspace: Workspace, threads: Int) {
    precondition(input.channels == output.channels)
    let hi = input.height, wi = input.width, ho = output.height, wo = output.width
    if mode == .halfPixel && ho == 2 * hi && wo == 2 * wi && wi >= 2 {
        upsample2x(input, into: output, workspace: workspace, threads: threads)
        return
    }
    let table = workspace.raw("graph.bilinear.table", bytes: (wo + ho) * MemoryLayout<BilinearTap>.stride)
        .assumingMemoryBound(to: BilinearTap.self)
    for x in 0..<wo { table[x] = BilinearTap(destination: x, outputSize: wo, inputSize: wi, mode: mode) }
    for y in 0..<ho { table[wo + y] = BilinearTap(destination: y, outputSize: ho, inputSize: hi, mode: mode) }
    let columns = UnsafePointer(table), rows = UnsafePointer(table + wo)
    // With fewer channels than threads (a depth map), split each channel's rows instead.
    let byRows = input.channels < threads
    let workers = max(1, min(threads, byRows ? ho : input.channels))
    let rowFloats = (wo + 15) & ~7
    let scratch = workspace.floats("graph.bilinear.rows", count: 2 * rowFloats * workers)
    parallelRanges(byRows ? ho : input.channels, threads: workers) { worker, range in
        let cache = BilinearRowCache(rows: scratch + 2 * rowFloats * worker, stride: rowFloats)
        if byRows {
            for c in 0..<input.channels {
                cache.resizeRows(range, source: input.channel(c), width: wi, into: output.channel(c), outputWidth: wo,
                                 columns: columns, rows: rows)
            }
        } else {
            for c in range {
                cache.resizeRows(0..<ho, source: input.channel(c), width: wi, into: output.channel(c), outputWidth: wo,
                                 columns: columns, rows: rows)
            }
        }
    }
}

/// Two horizontally resized input rows, tagged with their input row index.
private struct BilinearRowCache {
    let rows: UnsafeMutablePointer<Float>
    let stride: Int

    func resizeRows(_ outputRows: Range<Int>, source: UnsafeMutablePointer<Float>, width wi: Int,
                    into destination: UnsafeMutablePointer<Float>, outputWidth wo: Int,
                    columns: UnsafePointer<BilinearTap>, rows taps: UnsafePointer<BilinearTap>) {
        var tags = (-1, -1)
        let slots = (rows, rows + stride)
        /// The slot holding input row `i`, filling the slot not holding `keep` if needed.
        func row(_ i: Int, keeping keep: Int) -> UnsafeMutablePointer<Float> {
            if tags.0 == i { return slots.0 }
            if tags.1 == i { return slots.1 }
            let useFirst = tags.0 != keep
            let slot = useFirst ? slots.0 : slots.1
            if useFirst { tags.0 = i } else { tags.1 = i }
            let line = source + i * wi
            for x in 0..<wo {
                let t = columns[x]
                slot[x] = t.w0 * line[t.i0] + t.w1 * line[t.i1]
            }
            return slot
        }
        for y in outputRows {
            let t = taps[y]
            let top = row(t.i0, keeping: -1), bottom = row(t.i1, keeping: t.i0)
            let out = destination + y * wo
            let w0 = F8(repeating: t.w0), w1 = F8(repeating: t.w1)
            var x = 0
            while x + 8 <= wo { store8(w0 * load8(top + x) + w1 * load8(bottom + x), out + x); x += 8 }
            while x < wo { out[x] = t.w0 * top[x] + t.w1 * bottom[x]; x += 1 }
        }
    }
}

/// TF ResizeNearestNeighbor: legacy src = floor(d·in/out); halfPixel src = floor((d+0.5)·in/out);
/// alignCorners src = round(d·(in−1)/(out−1)) (half away from zero); all clamped to in−1.
/// Source columns come from a table; an output row whose source row equals the previous output
/// row's is a copy of it (every row after the first, when upsampling by an integer factor).
package func resizeNearest(_ input: FeatureMap, into output: FeatureMap, mode: ResizeMode, threads: Int) {
    precondition(input.channels == output.channels)
    let hi = input.height, wi = input.width, ho = output.height, wo = output.width
    let sy = resizeScale(hi, ho, mode), sx = resizeScale(wi, wo, mode)
    @inline(__always) func source(_ d: Int, _ scale: Float, _ size: Int) -> Int {
        let s: Float
        switch mode {
        case .legacy: s = (Float(d) * scale).rounded(.down)
        case .halfPixel: s = ((Float(d) + 0.5) * scale).rounded(.down)
        case .alignCorners: s = (Float(d) * scale).rounded(.toNearestOrAwayFromZero)
        }
        return max(0, min(Int(s), size - 1))
    }
    let byRows = input.channels < threads
    parallelRanges(byRows ? ho : input.channels, threads: threads) { _, range in
        let channels = byRows ? 0..<input.channels : range
        let outputRows = byRows ? range : 0..<ho
        // The column table lives on the worker's stack (no workspace in this kernel's contract).
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: wo) { table in
            for x in 0..<wo { table[x] = Int32(source(x, sx, wi)) }
            // Exact doubling (every column twice, in order: decoders' 2x upsampling) copies four
            // inputs into eight outputs at a time; the same values as the table's gather.
            let doubling = (0..<wo).allSatisfy { table[$0] == Int32($0 / 2) }
            for c in channels {
                let src = input.channel(c), dst = output.channel(c)
                var previous = -1
                for y in outputRows {
                    let iy = source(y, sy, hi)
                    let out = dst + y * wo
                    if iy == previous {
                        out.update(from: out - wo, count: wo)
                    } else {
                        let line = src + iy * wi
                        var x = 0
                        if doubling {
                            while x + 8 <= wo {
                                let v = UnsafeRawPointer(line + x / 2).loadUnaligned(as: SIMD4<Float>.self)
                                store8(F8(v[0], v[0], v[1], v[1], v[2], v[2], v[3], v[3]), out + x)
                                x += 8
                            }
                        }
                        while x < wo { out[x] = line[Int(table[x])]; x += 1 }
                    }
                    previous = iy
                }
            }
        }
    }
}
