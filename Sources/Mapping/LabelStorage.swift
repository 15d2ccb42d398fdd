import Foundation

/// How a surfel map stores each surfel's class distribution.
///
/// SemanticFusion keeps every class probability per surfel as Float32: 160 of a surfel's 213
/// bytes with 40 classes. After a few observations almost all of the mass sits on one to three
/// classes, so `topK` keeps those exactly and folds the rest into one remainder shared evenly
/// by the classes not kept (docs/results.md, "Compact class distributions", measures k).
public enum LabelStorage: Hashable, Sendable, CustomStringConvertible {
    /// Every class probability as Float32: 4·C bytes per surfel.
    case dense
    /// The `k` most likely classes (UInt16 id and Float32 probability each) and the remaining
    /// mass (Float32): 6k + 4 bytes per surfel, whatever the class count.
    case topK(Int)
    /// Every class as one byte: its log-probability below the most likely class's, in steps of
    /// ln(10⁶)/255 nats (`LogCodeUpdate`). C bytes per surfel; the Bayesian update is integer
    /// additions. A class more than 10⁶ times less likely than the best stays at that ratio
    /// (the floor, fixed at the default `probabilityFloor`).
    case log8
    /// `log8` up to `automaticLogClasses` classes (at most 100 bytes per surfel), `top4` beyond
    /// (`resolved(classCount:)`).
    case automatic

    /// The default, chosen by measurement (docs/results.md, "Byte log-codes"): on the kitchen and
    /// the synthetic room log8 keeps the dense map's labels best, and its update is the fastest.
    public static let standard = LabelStorage.automatic

    /// Most classes `automatic` stores as `log8`: 53 bytes of geometry and one per class stay
    /// within 100 bytes per surfel.
    public static let automaticLogClasses = 47

    /// The storage a map with `classCount` classes uses.
    public func resolved(classCount: Int) -> LabelStorage {
        guard self == .automatic else { return self }
        return classCount <= Self.automaticLogClasses ? .log8 : .topK(4)
    }

    /// Parses `dense`, `log8`, `auto` or `topK` such as `top4` / `top-4`.
    public init?(_ text: String) {
        let t = text.lowercased()
        if t == "dense" { self = .dense; return }
        if t == "log8" { self = .log8; return }
        if t == "auto" { self = .automatic; return }
        guard t.hasPrefix("top") else { return nil }
        var digits = t.dropFirst(3)
        if digits.first == "-" { digits = digits.dropFirst() }
        guard let k = Int(digits), (1...LabelStorage.maxKept).contains(k) else { return nil }
        self = .topK(k)
    }

    /// Upper bound on `k`: beyond it `dense` is smaller for any class count worth compacting.
    public static let maxKept = 64

    public var description: String {
        switch self {
        case .dense: return "dense"
        case .topK(let k): return "top\(k)"
        case .log8: return "log8"
        case .automatic: return "auto"
        }
    }

    /// Classes kept per surfel for `classCount` classes, or nil when every class is stored.
    func kept(classCount: Int) -> Int? {
        switch self {
        case .dense, .log8, .automatic: return nil
        case .topK(let k): return classCount > 0 ? k : nil
        }
    }
}

/// The per-surfel Bayesian update on byte log-codes (`LabelStorage.log8`).
///
/// A surfel stores s_j = −ln(p_j / p_max) / Δ, rounded, in 0...255 (0 for its most likely
/// classes); a prediction pixel is coded the same way, u_j = −ln(q_j / q_max) / Δ (`encode`).
/// p ⊙ q then normalised is s_j + u_j less its minimum, held at 255: the floor, as a ratio to
/// the most likely class instead of to the total (the same wherever one class dominates).
/// Rounding each u_j costs at most Δ/2 per update; the test bounds what that does to labels.
enum LogCodeUpdate {
    /// Δ, nats per code step: 255 steps span a probability ratio of 10⁶.
    static let step = Float(log(1e6) / 255)

    /// exp(−c·Δ) for every code c: a class's weight before normalising, so reading a surfel's
    /// distribution takes no `exp` per class.
    static let weights: [Float] = (0...255).map { Float(exp(-Double($0) * Double(step))) }

    /// One surfel: codes `s` updated with the pixel's codes `u`, `c` classes; sixteen at a
    /// time, then eight, then one by one.
    @inline(__always)
    static func apply(_ s: UnsafeMutablePointer<UInt8>, _ u: UnsafePointer<UInt8>, count c: Int) {
        let sr = UnsafeMutableRawPointer(s), ur = UnsafeRawPointer(u)
        @inline(__always) func sum16(_ j: Int) -> SIMD16<UInt16> {
            SIMD16<UInt16>(truncatingIfNeeded: sr.loadUnaligned(fromByteOffset: j, as: SIMD16<UInt8>.self))
                &+ SIMD16<UInt16>(truncatingIfNeeded: ur.loadUnaligned(fromByteOffset: j, as: SIMD16<UInt8>.self))
        }
        @inline(__always) func sum8(_ j: Int) -> SIMD8<UInt16> {
            SIMD8<UInt16>(truncatingIfNeeded: sr.loadUnaligned(fromByteOffset: j, as: SIMD8<UInt8>.self))
                &+ SIMD8<UInt16>(truncatingIfNeeded: ur.loadUnaligned(fromByteOffset: j, as: SIMD8<UInt8>.self))
        }
        var low8 = SIMD8<UInt16>(repeating: .max)
        var j = 0
        while j + 16 <= c {
            let t = sum16(j)
            low8.replace(with: t.lowHalf, where: t.lowHalf .< low8)
            low8.replace(with: t.highHalf, where: t.highHalf .< low8)
            j += 16
        }
        if j + 8 <= c {
            let t = sum8(j)
            low8.replace(with: t, where: t .< low8)
            j += 8
        }
        var l4 = low8.lowHalf
        l4.replace(with: low8.highHalf, where: low8.highHalf .< l4)
        var lowest = min(min(l4[0], l4[1]), min(l4[2], l4[3]))
        while j < c { lowest = min(lowest, UInt16(s[j]) + UInt16(u[j])); j += 1 }
        j = 0
        while j + 16 <= c {
            var t = sum16(j) &- SIMD16<UInt16>(repeating: lowest)
            t.replace(with: 255, where: t .> SIMD16<UInt16>(repeating: 255))
            sr.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: t), toByteOffset: j, as: SIMD16<UInt8>.self)
            j += 16
        }
        if j + 8 <= c {
            var t = sum8(j) &- SIMD8<UInt16>(repeating: lowest)
            t.replace(with: 255, where: t .> SIMD8<UInt16>(repeating: 255))
            sr.storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: t), toByteOffset: j, as: SIMD8<UInt8>.self)
            j += 8
        }
        while j < c { s[j] = UInt8(min(255, UInt16(s[j]) + UInt16(u[j]) - lowest)); j += 1 }
    }

    /// Codes of one prediction pixel's distribution `q` (non-negative, `c` classes) into `u`.
    /// Returns false, leaving `u` as it was, when q carries no evidence (all zero). Eight
    /// classes at a time; the tail with the same arithmetic lane by lane (`code(ratio:)`).
    @inline(__always)
    static func encode(_ q: UnsafePointer<Float>, count c: Int, into u: UnsafeMutablePointer<UInt8>) -> Bool {
        let raw = UnsafeRawPointer(q), out = UnsafeMutableRawPointer(u)
        var largest: Float = 0
        var j = 0
        if c >= 8 {
            var top = SIMD8<Float>()
            while j + 8 <= c {
                let v = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
                top.replace(with: v, where: v .> top)
                j += 8
            }
            for l in 0..<8 { largest = max(largest, top[l]) }
        }
        while j < c { largest = max(largest, q[j]); j += 1 }
        guard largest > 0 else { return false }
        let inverse = 1 / largest
        j = 0
        while j + 8 <= c {
            let codes = code(ratio: raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) * inverse)
            out.storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: codes), toByteOffset: j, as: SIMD8<UInt8>.self)
            j += 8
        }
        while j < c {
            u[j] = UInt8(truncatingIfNeeded: code(ratio: SIMD8<Float>(repeating: q[j] * inverse))[0])
            j += 1
        }
        return true
    }

    /// −log2(ratio) · ln 2 / Δ rounded half up, held in 0...255 (255 below a ratio of 10⁻⁷). log2
    /// from the exponent and an odd series in t = (m − 1)/(m + 1) for the mantissa m ∈ [√½, √2)
    /// (|t| < 0.172: error below 1e-7, far below the step).
    @inline(__always)
    static func code(ratio: SIMD8<Float>) -> SIMD8<Int32> {
        let bits = unsafeBitCast(ratio, to: SIMD8<UInt32>.self)
        var e = SIMD8<Int32>(truncatingIfNeeded: bits &>> 23) &- 127
        var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F80_0000, to: SIMD8<Float>.self)
        let high = m .> SIMD8<Float>(repeating: Float(2).squareRoot())
        m.replace(with: m * 0.5, where: high)
        e.replace(with: e &+ 1, where: high)
        let one = SIMD8<Float>(repeating: 1)
        let t: SIMD8<Float> = (m - one) / (m + one)
        let t2: SIMD8<Float> = t * t
        var series = SIMD8<Float>(repeating: 2.0 / 7) * t2 + SIMD8<Float>(repeating: 2.0 / 5)
        series = series * t2 + SIMD8<Float>(repeating: 2.0 / 3)
        series = (series * t2 + SIMD8<Float>(repeating: 2)) * t   // ln(m)
        let ln2 = SIMD8<Float>(repeating: Float(M_LN2))
        // Int ↔ Float through the 2²³ bias (exact for these small integers): the SIMD
        // initialisers convert lane by lane through a generic call.
        let eBits = unsafeBitCast(e &+ 1024, to: SIMD8<UInt32>.self) | 0x4B00_0000
        let eFloat = unsafeBitCast(eBits, to: SIMD8<Float>.self) - SIMD8<Float>(repeating: 8_389_632)
        let log2: SIMD8<Float> = eFloat + series / ln2
        let scaled: SIMD8<Float> = log2 * SIMD8<Float>(repeating: -Float(M_LN2) / step) + SIMD8<Float>(repeating: 0.5)
        var code = scaled.rounded(.down)
        code.replace(with: 255, where: code .> 255)
        code.replace(with: 0, where: code .< 0)
        code.replace(with: 255, where: ratio .< 1e-7)
        let codeBits = unsafeBitCast(code + SIMD8<Float>(repeating: 8_388_608), to: SIMD8<Int32>.self)
        return codeBits & 0xFF
    }
}

/// The per-surfel Bayesian update on a top-k distribution: the same
/// p ← normalise(max(normalise(p ⊙ q), floor)) as `BayesUpdate`, where each class not kept
/// starts from an even share of the remainder, followed by keeping the k largest.
///
/// Layout of one surfel: `ids[0..<k]` class ids sorted by decreasing probability, `UInt16.max`
/// for an empty slot (empty slots come last); `p[0..<k]` their probabilities and `p[k]` the
/// remainder. With k ≥ classCount nothing is folded and the result equals the dense update up to
/// rounding.
///
/// Why it is cheap: every class not kept has the same prior, so their posteriors are ordered as
/// their q is. The best of them are the first classes of the prediction pixel's own ranking
/// (`rank`, once per pixel and frame, shared by every surfel seen through that pixel) that are
/// not kept, and once they sink to the floor the remainder is known without a pass over q.
enum TopKBayesUpdate {
    static let empty = UInt16.max

    /// Floats of workspace `apply` needs per worker.
    static func scratchCount(kept k: Int) -> Int { 4 * k }

    /// Length of the per-pixel ranking `apply` reads: the kept classes and two more cover the
    /// usual cases; `apply` looks further in q when more classes than that rise above the kept.
    static func rankingCount(kept k: Int, classCount c: Int) -> Int { min(c, k + 2) }

    /// Returns false (and leaves the surfel unchanged) when `q` carries no evidence. Resets to the
    /// uniform distribution (all mass in the remainder) when the product underflows or is not
    /// finite, as `BayesUpdate` does. `qSum` is Σ q and `order` the `rankingCount` classes of
    /// largest q, largest first (`rank`); `scratch` holds `scratchCount(kept:)` floats.
    @inline(__always)
    static func apply(ids: UnsafeMutablePointer<UInt16>, p: UnsafeMutablePointer<Float>, kept k: Int,
                      q: UnsafePointer<Float>, classCount c: Int, qSum evidence: Float,
                      order: UnsafePointer<UInt16>, orderCount: Int, floor: Float,
                      scratch: UnsafeMutablePointer<Float>) -> Bool {
        guard evidence > 0 else { return false }
        // Workspace: the kept classes' posteriors and ids, then the best other classes'.
        let heldValue = scratch, heldId = scratch + k, candValue = scratch + 2 * k, candId = scratch + 3 * k
        var held = 0
        while held < k && ids[held] != empty { held += 1 }
        let rest = c - held
        let share = rest > 0 ? p[k] / Float(rest) : 0
        var heldQ: Float = 0, total: Float = 0
        for s in 0..<held {
            let j = Int(ids[s])
            heldQ += q[j]
            heldValue[s] = p[s] * q[j]
            heldId[s] = Float(j)
            total += heldValue[s]
        }
        total += share * max(0, evidence - heldQ)
        guard total > 1e-30, total.isFinite else {
            for s in 0..<k { ids[s] = empty; p[s] = 0 }
            p[k] = 1
            return true
        }
        let inv = 1 / total
        let scale = share * inv   // a class not kept: posterior max(scale · q_j, floor)
        // Kept classes by their new posterior (insertion sort of ≤ k).
        var resum: Float = 0
        for s in 0..<held {
            heldValue[s] = max(heldValue[s] * inv, floor)
            resum += heldValue[s]
            let v = heldValue[s], id = heldId[s]
            var t = s
            while t > 0 && heldValue[t - 1] < v {
                heldValue[t] = heldValue[t - 1]; heldId[t] = heldId[t - 1]
                t -= 1
            }
            heldValue[t] = v; heldId[t] = id
        }
        // The best classes not kept, best first, from the pixel's ranking: those that fill an
        // empty slot or beat the smallest kept posterior (usually none).
        let slots = min(k, c)
        let threshold = held == slots ? heldValue[held - 1] : -Float.infinity
        var chosen = 0, bestOther: Float = 0, exhausted = true
        for t in 0..<orderCount where chosen < slots {
            let id = order[t]
            var isHeld = false
            for s in 0..<held where ids[s] == id { isHeld = true }
            if isHeld { continue }
            let v = scale * q[Int(id)]
            if chosen == 0 { bestOther = v }
            guard v > threshold else { exhausted = false; break }
            candValue[chosen] = max(v, floor); candId[chosen] = Float(id)
            chosen += 1
        }
        if exhausted && chosen < slots && orderCount < c {
            // More classes beat the threshold than the ranking holds (evidence turned against
            // most kept classes at once): find the rest in q, in order.
            for j in 0..<c {
                let id = UInt16(truncatingIfNeeded: j)
                var seen = false
                for s in 0..<held where ids[s] == id { seen = true }
                for t in 0..<orderCount where order[t] == id { seen = true }
                let v = scale * q[j]
                guard !seen, v > threshold else { continue }
                let value = max(v, floor)
                if chosen == slots {
                    guard value > candValue[slots - 1] else { continue }
                    chosen -= 1
                }
                var t = chosen
                while t > 0 && candValue[t - 1] < value {
                    candValue[t] = candValue[t - 1]; candId[t] = candId[t - 1]
                    t -= 1
                }
                candValue[t] = value; candId[t] = Float(j)
                chosen += 1
            }
        }
        // Mass of the classes not kept: all at the floor when the best of them is, else summed.
        var restSum = Float(rest) * floor
        if bestOther > floor {
            restSum = flooredSum(q, count: c, scale: scale, floor: floor)
            for s in 0..<held { restSum -= max(scale * q[Int(heldId[s])], floor) }
            restSum = max(0, restSum)
        }
        resum += restSum
        // Merge the two sorted lists into the slots, normalised as they go (scaling them after
        // the scalar stores made the wide reload stall on store forwarding); what is left over
        // joins the remainder.
        let inv2 = 1 / resum
        var a = 0, b = 0, out = 0
        var tail = restSum
        while out < slots && (a < held || b < chosen) {
            if b >= chosen || (a < held && heldValue[a] >= candValue[b]) {
                p[out] = heldValue[a] * inv2; ids[out] = UInt16(heldId[a]); a += 1
            } else {
                p[out] = candValue[b] * inv2; ids[out] = UInt16(candId[b]); tail -= candValue[b]; b += 1
            }
            out += 1
        }
        while a < held { tail += heldValue[a]; a += 1 }
        for s in out..<k { ids[s] = empty; p[s] = 0 }
        p[k] = max(0, tail) * inv2
        return true
    }

    /// Σ q, and the `count` classes of largest q, largest first (ties: lower id first), into
    /// `order`. Each round finds the class that follows the last one found in that order with one
    /// vectorised pass over q, which is only read: marking found classes in a copy stalled every
    /// round's loads on the forwarding of the scalar store, and a one-pass insertion sort
    /// mispredicted. q must be non-negative and finite (`ClassProbabilityMap` checks).
    @inline(__always)
    static func rank(_ q: UnsafePointer<Float>, classCount c: Int, into order: UnsafeMutablePointer<UInt16>,
                     count m: Int) -> Float {
        let raw = UnsafeRawPointer(q)
        var total: Float = 0
        var j = 0
        if c >= 8 {
            var acc = SIMD8<Float>()
            while j + 8 <= c {
                acc += raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
                j += 8
            }
            total = acc.sum()
        }
        while j < c { total += q[j]; j += 1 }
        let vectorEnd = c & ~7
        var lastValue = Float.infinity, last = -1
        for t in 0..<m {
            // The largest (value, then lowest id) among classes after (lastValue, last).
            var bestValue = -Float.infinity, best = -1
            if vectorEnd > 0 {
                let lv = SIMD8<Float>(repeating: lastValue), li = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: last))
                var top = SIMD8<Float>(repeating: -.infinity), index = SIMD8<Int32>(repeating: .max)
                var lane = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
                let step = SIMD8<Int32>(repeating: 8)
                var i = 0
                while i < vectorEnd {
                    let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                    let after = (v .< lv) .| ((v .== lv) .& (lane .> li))
                    let better = after .& (v .> top)
                    top.replace(with: v, where: better)
                    index.replace(with: lane, where: better)
                    lane &+= step
                    i += 8
                }
                // The largest lane value and the lowest id holding it, by halving (SIMD's max()
                // and min() are generic calls here, not inlined; lane loops branch).
                var m4 = top.lowHalf
                m4.replace(with: top.highHalf, where: top.highHalf .> m4)
                var m2 = m4.lowHalf
                m2.replace(with: m4.highHalf, where: m4.highHalf .> m2)
                bestValue = m2[1] > m2[0] ? m2[1] : m2[0]
                var ix = SIMD8<Int32>(repeating: .max)
                ix.replace(with: index, where: top .== SIMD8(repeating: bestValue))
                var i4 = ix.lowHalf
                i4.replace(with: ix.highHalf, where: ix.highHalf .< i4)
                var i2 = i4.lowHalf
                i2.replace(with: i4.highHalf, where: i4.highHalf .< i2)
                if bestValue > -.infinity { best = Int(i2[1] < i2[0] ? i2[1] : i2[0]) }
            }
            for i in vectorEnd..<c {
                let v = q[i]
                guard v < lastValue || (v == lastValue && i > last) else { continue }
                if v > bestValue { bestValue = v; best = i }
            }
            guard best >= 0 else { break }   // fewer than m classes (m > c)
            order[t] = UInt16(truncatingIfNeeded: best)
            lastValue = bestValue; last = best
        }
        return total
    }

    /// Σ max(scale · q_j, floor), eight at a time when the count allows.
    @inline(__always)
    private static func flooredSum(_ q: UnsafePointer<Float>, count c: Int, scale: Float, floor: Float) -> Float {
        var total: Float = 0
        var j = 0
        if c >= 8 {
            let raw = UnsafeRawPointer(q)
            let s8 = SIMD8<Float>(repeating: scale), f8 = SIMD8<Float>(repeating: floor)
            var acc = SIMD8<Float>()
            while j + 8 <= c {
                var v = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) * s8
                v.replace(with: f8, where: v .< f8)
                acc += v
                j += 8
            }
            total = acc.sum()
        }
        while j < c { total += max(scale * q[j], floor); j += 1 }
        return total
    }
}
