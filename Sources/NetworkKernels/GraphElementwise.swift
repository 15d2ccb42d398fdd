import Foundation

package enum ElementwiseOperation { case add, multiply }

/// out = clamp(a ∘ b) with numpy broadcasting on (C, H, W): each of a's and b's dims is either 1
/// or out's. Every pattern reduces to rows of out's width (or, when neither side broadcasts within
/// a channel, one row per channel plane) whose operands are each either a full row or one repeated
/// scalar, so four SIMD row loops cover same-shape, per-channel (C×1×1), scalar (1×1×1), 1×H×W and
/// the rarer mixes alike; the broadcast choice is made per row, never per pixel.
package func elementwise(_ operation: ElementwiseOperation, _ a: FeatureMap, _ b: FeatureMap, into output: FeatureMap,
                 clamp: Clamp, threads: Int) {
    let c = output.channels, h = output.height, w = output.width
    func broadcasts(_ side: FeatureMap) -> Bool {
        (side.channels == 1 || side.channels == c) && (side.height == 1 || side.height == h) && (side.width == 1 || side.width == w)
    }
    precondition(broadcasts(a) && broadcasts(b), "elementwise: operand does not broadcast to the output")
    let aFull = a.height == h && a.width == w, bFull = b.height == h && b.width == w
    // Whole planes as single rows when neither operand broadcasts inside a plane.
    let rowsPerChannel = aFull && bFull ? 1 : h
    let rowLength = aFull && bFull ? h * w : w
    parallelRanges(c * rowsPerChannel, threads: threads) { _, units in
        for unit in units {
            let ch = unit / rowsPerChannel, y = unit % rowsPerChannel
            let out = output.channel(ch) + y * rowLength
            let pa = a.channel(a.channels == 1 ? 0 : ch) + (a.height == 1 ? 0 : y) * a.width
            let pb = b.channel(b.channels == 1 ? 0 : ch) + (b.height == 1 ? 0 : y) * b.width
            let aRow = a.width != 1 || rowLength == 1 || (aFull && bFull)
            let bRow = b.width != 1 || rowLength == 1 || (aFull && bFull)
            switch operation {
            case .add: combineRow(pa, aRow, pb, bRow, out, rowLength, clamp, { $0 + $1 }, { $0 + $1 })
            case .multiply: combineRow(pa, aRow, pb, bRow, out, rowLength, clamp, { $0 * $1 }, { $0 * $1 })
            }
        }
    }
}

/// `out[i] = clamp(f(a[i or 0], b[i or 0]))` over `n` floats; a `false` row flag means that
/// operand is one scalar repeated along the row.
@inline(__always)
private func combineRow(_ a: UnsafeMutablePointer<Float>, _ aRow: Bool, _ b: UnsafeMutablePointer<Float>, _ bRow: Bool,
                        _ out: UnsafeMutablePointer<Float>, _ n: Int, _ clamp: Clamp,
                        _ f: (F8, F8) -> F8, _ s: (Float, Float) -> Float) {
    let (lo, hi) = clamp.vectors
    var i = 0
    switch (aRow, bRow) {
    case (true, true):
        while i + 8 <= n { store8(clamped(f(load8(a + i), load8(b + i)), lo, hi), out + i); i += 8 }
        while i < n { out[i] = clamped(s(a[i], b[i]), clamp); i += 1 }
    case (true, false):
        let bs = b[0], bv = F8(repeating: bs)
        while i + 8 <= n { store8(clamped(f(load8(a + i), bv), lo, hi), out + i); i += 8 }
        while i < n { out[i] = clamped(s(a[i], bs), clamp); i += 1 }
    case (false, true):
        let as_ = a[0], av = F8(repeating: as_)
        while i + 8 <= n { store8(clamped(f(av, load8(b + i)), lo, hi), out + i); i += 8 }
        while i < n { out[i] = clamped(s(as_, b[i]), clamp); i += 1 }
    case (false, false):
        out.initialize(repeating: clamped(s(a[0], b[0]), clamp), count: n)
    }
}

/// Applies `f` lane-wise (and `s` to the tail) from `input` to `output`, then the clamp; the map
/// is split over channels, or over whole-plane chunks when there are fewer channels than threads.
@inline(__always)
private func mapElements(_ input: FeatureMap, into output: FeatureMap, clamp: Clamp, threads: Int,
                         _ f: (F8) -> F8, _ s: (Float) -> Float) {
    precondition(input.count == output.count)
    let count = input.count
    // Chunks of whole vectors; a few per thread so uneven channel sizes do not matter.
    let chunk = max(4096, (count / max(1, threads * 4) + 7) & ~7)
    let (lo, hi) = clamp.vectors
    parallelRanges((count + chunk - 1) / chunk, threads: threads) { _, chunks in
        for block in chunks {
            let src = input.base + block * chunk, dst = output.base + block * chunk
            let n = min(chunk, count - block * chunk)
            var i = 0
            while i + 8 <= n { store8(clamped(f(load8(src + i)), lo, hi), dst + i); i += 8 }
            while i < n { dst[i] = clamped(s(src[i]), clamp); i += 1 }
        }
    }
}

/// In place clamp of a whole map (no-op for .none).
package func applyClamp(_ map: FeatureMap, _ clamp: Clamp, threads: Int) {
    guard !clamp.isNone else { return }
    mapElements(map, into: map, clamp: clamp, threads: threads, { $0 }, { $0 })
}

/// x · relu6(x + 3) / 6, then clamp.
package func hardSwish(_ input: FeatureMap, into output: FeatureMap, clamp: Clamp, threads: Int) {
    let three = F8(repeating: 3), sixth = F8(repeating: 1 / 6)
    mapElements(input, into: output, clamp: clamp, threads: threads,
                { $0 * clamp6($0 + three) * sixth }, { $0 * min(max($0 + 3, 0), 6) * (1 / 6) })
}

/// 1 / (1 + exp(−x)), then clamp.
package func logistic(_ input: FeatureMap, into output: FeatureMap, clamp: Clamp, threads: Int) {
    let one = F8(repeating: 1)
    mapElements(input, into: output, clamp: clamp, threads: threads,
                { one / (one + vexp(-$0)) }, { 1 / (1 + Foundation.exp(-$0)) })
}

/// exp for eight lanes (Cephes `expf`: exp(x) = 2ⁿ·exp(r), |r| ≤ ln2/2, a degree-5 polynomial for
/// exp(r), n folded into the exponent bits); within a few ulp of `expf` over the clamped range
/// [−87.3, 88.3], whose ends stay normal and finite. A per-element libm call was ten times slower.
@inline(__always)
package func vexp(_ x: F8) -> F8 {
    let x = vmin(vmax(x, F8(repeating: -87.3)), F8(repeating: 88.3))
    // n = round(x·log2 e) by the 1.5·2²³ trick, whose sum also holds n in its low mantissa bits
    // (the standard library's SIMD `rounded` and float→int conversions run lane by lane).
    let magic = F8(repeating: 12582912)
    let shifted = x * F8(repeating: 1.44269504088896341) + magic
    let n = shifted - magic
    // r = x − n·ln2, with ln2 split in two so the first product is exact.
    let r = x - n * F8(repeating: 0.693359375) + n * F8(repeating: 2.12194440e-4)
    var p = F8(repeating: 1.9875691500e-4)
    p = p * r + F8(repeating: 1.3981999507e-3)
    p = p * r + F8(repeating: 8.3334519073e-3)
    p = p * r + F8(repeating: 4.1665795894e-2)
    p = p * r + F8(repeating: 1.6666665459e-1)
    p = p * r + F8(repeating: 5.0000001201e-1)
    let expR = p * (r * r) + r + F8(repeating: 1)
    let exponent = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self) &+ 127) &<< 23
    return expR * unsafeBitCast(exponent, to: F8.self)
}

/// Zero padding: output is zeroed, input is placed with its channel 0 at output channel
/// `channelOffset`, row 0 at `top`, column 0 at `left` (TF PAD with zeros, any of the three axes).
package func pad(_ input: FeatureMap, into output: FeatureMap, top: Int, left: Int, channelOffset: Int, threads: Int) {
    precondition(top >= 0 && left >= 0 && channelOffset >= 0)
    precondition(channelOffset + input.channels <= output.channels && top + input.height <= output.height
                 && left + input.width <= output.width, "pad: input does not fit in the output")
    let w = input.width, wo = output.width
    parallelRanges(output.channels, threads: threads) { _, channels in
        for c in channels {
            let dst = output.channel(c)
            let inside = c >= channelOffset && c < channelOffset + input.channels
            guard inside else { dst.initialize(repeating: 0, count: output.plane); continue }
            let src = input.channel(c - channelOffset)
            // Zero only what the copy leaves: the rows above and below, and each row's margins.
            dst.initialize(repeating: 0, count: top * wo)
            for y in 0..<input.height {
                let row = dst + (top + y) * wo
                row.initialize(repeating: 0, count: left)
                (row + left).update(from: src + y * w, count: w)
                (row + left + w).initialize(repeating: 0, count: wo - left - w)
            }
            let below = (top + input.height) * wo
            (dst + below).initialize(repeating: 0, count: output.plane - below)
        }
    }
}
