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

    /// The default, chosen by measurement: the kitchen and synthetic-room maps keep the labels
    /// of the dense map (docs/results.md).
    public static let standard = LabelStorage.topK(4)

    /// Parses `dense` or `topK` such as `top4` / `top-4`.
    public init?(_ text: String) {
        let t = text.lowercased()
        if t == "dense" { self = .dense; return }
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
        }
    }

    /// Classes kept per surfel for `classCount` classes, or nil when every class is stored.
    func kept(classCount: Int) -> Int? {
        switch self {
        case .dense: return nil
        case .topK(let k): return classCount > 0 ? k : nil
        }
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
