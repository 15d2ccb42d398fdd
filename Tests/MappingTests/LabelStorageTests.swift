import XCTest
import Geometry
import Imaging
import Semantics
@testable import Mapping

/// The compact class distributions (`LabelStorage.topK`) against the dense Float32 table.
final class LabelStorageTests: XCTestCase {
    /// The top-k semantics written out plainly: the classes not kept share the remainder evenly,
    /// then p ← normalise(max(normalise(p ⊙ q), floor)), then the k largest are kept (ties: the
    /// lower id) and the rest summed into the remainder.
    private struct ReferenceTopK {
        var kept: [(id: Int, p: Double)] = []
        var remainder: Double = 1
        let classCount: Int, k: Int, floor: Double

        func full() -> [Double] {
            let rest = classCount - kept.count
            var p = [Double](repeating: rest > 0 ? remainder / Double(rest) : 0, count: classCount)
            for e in kept { p[e.id] = e.p }
            return p
        }

        mutating func update(_ q: [Double]) {
            let prior = full()
            let product = (0..<classCount).map { prior[$0] * q[$0] }
            let total = product.reduce(0, +)
            var v = product.map { max($0 / total, floor) }
            let resum = v.reduce(0, +)
            v = v.map { $0 / resum }
            let order = (0..<classCount).sorted { v[$0] > v[$1] || (v[$0] == v[$1] && $0 < $1) }
            kept = order.prefix(k).map { ($0, v[$0]) }
            remainder = order.dropFirst(k).reduce(0) { $0 + v[$1] }
        }
    }

    /// Random softmax-like distributions: one class dominant by a random margin, the others noise;
    /// one in three raises several classes at once, so that more classes than the kept ones
    /// overtake them (the path where `apply` looks past the pixel's ranking).
    private func randomDistributions(_ n: Int, classCount c: Int, seed: UInt64) -> [[Float]] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            var q = (0..<c).map { _ in Float(rng.nextDouble()) * 0.05 + 0.005 }
            let raised = rng.next() % 3 == 0 ? 3 + Int(rng.next() % 4) : 1
            for _ in 0..<raised { q[Int(rng.next() % UInt64(c))] += Float(rng.nextDouble()) * 2 }
            let s = q.reduce(0, +)
            return q.map { $0 / s }
        }
    }

    /// Runs the kernel over a sequence of distributions for one surfel; returns the full vector
    /// after each update.
    private func runKernel(_ qs: [[Float]], classCount c: Int, k: Int, floor: Float) -> [[Float]] {
        var ids = [UInt16](repeating: TopKBayesUpdate.empty, count: k)
        var p = [Float](repeating: 0, count: k + 1)
        p[k] = 1
        var scratch = [Float](repeating: 0, count: TopKBayesUpdate.scratchCount(kept: k))
        var order = [UInt16](repeating: 0, count: TopKBayesUpdate.rankingCount(kept: k, classCount: c))
        var out: [[Float]] = []
        for q in qs {
            let qSum = q.withUnsafeBufferPointer { qb in
                TopKBayesUpdate.rank(qb.baseAddress!, classCount: c, into: &order, count: order.count)
            }
            let ok = q.withUnsafeBufferPointer { qb in
                TopKBayesUpdate.apply(ids: &ids, p: &p, kept: k, q: qb.baseAddress!, classCount: c, qSum: qSum,
                                      order: order, orderCount: order.count, floor: floor, scratch: &scratch)
            }
            XCTAssertTrue(ok)
            let rest = c - ids.filter { $0 != TopKBayesUpdate.empty }.count
            var full = [Float](repeating: rest > 0 ? p[k] / Float(rest) : 0, count: c)
            for s in 0..<k where ids[s] != TopKBayesUpdate.empty { full[Int(ids[s])] = p[s] }
            // Kept classes in decreasing order, each at least the remainder's share.
            for s in 1..<k where ids[s] != TopKBayesUpdate.empty { XCTAssertGreaterThanOrEqual(p[s - 1], p[s]) }
            out.append(full)
        }
        return out
    }

    func testKernelFollowsThePlainTopKDefinition() {
        for (c, k, floor) in [(40, 4, Float(1e-6)), (13, 2, 1e-6), (40, 1, 1e-6), (7, 3, 1e-3), (150, 4, 1e-6), (40, 6, 1e-6)] {
            let qs = randomDistributions(200, classCount: c, seed: UInt64(c * 10 + k))
            let got = runKernel(qs, classCount: c, k: k, floor: floor)
            var reference = ReferenceTopK(classCount: c, k: k, floor: Double(floor))
            for (t, q) in qs.enumerated() {
                reference.update(q.map(Double.init))
                let want = reference.full()
                for j in 0..<c {
                    XCTAssertEqual(Double(got[t][j]), want[j], accuracy: 1e-4 * max(want[j], 1e-3),
                                   "classes \(c), k \(k), update \(t), class \(j)")
                }
                XCTAssertEqual(got[t].reduce(0, +), 1, accuracy: 1e-5)
            }
        }
    }

    /// Kept classes that the evidence still ranks first but whose tiny probabilities every other
    /// class overtakes: more classes enter than the pixel's ranking holds.
    func testClassesBeyondThePixelsRankingEnterTheKeptSet() {
        let c = 10, k = 4
        var ids: [UInt16] = [0, 1, 2, 3]
        var p: [Float] = [0.5, 1e-4, 1e-4, 1e-4, 1 - 0.5 - 3e-4]
        var q = [Float](repeating: 0.2 / 6, count: c)
        for j in 0..<4 { q[j] = 0.2 }
        var reference = ReferenceTopK(kept: (0..<4).map { ($0, Double(p[$0])) }, remainder: Double(p[4]), classCount: c, k: k, floor: 1e-6)
        reference.update(q.map(Double.init))
        var order = [UInt16](repeating: 0, count: TopKBayesUpdate.rankingCount(kept: k, classCount: c))
        var scratch = [Float](repeating: 0, count: TopKBayesUpdate.scratchCount(kept: k))
        let qSum = TopKBayesUpdate.rank(q, classCount: c, into: &order, count: order.count)
        XCTAssertEqual(order, [0, 1, 2, 3, 4, 5])
        XCTAssertTrue(TopKBayesUpdate.apply(ids: &ids, p: &p, kept: k, q: q, classCount: c, qSum: qSum,
                                            order: order, orderCount: order.count, floor: 1e-6, scratch: &scratch))
        XCTAssertEqual(ids, reference.kept.map { UInt16($0.id) })
        XCTAssertEqual(ids, [0, 4, 5, 6])
        for s in 0..<k { XCTAssertEqual(Double(p[s]), reference.kept[s].p, accuracy: 1e-6) }
        XCTAssertEqual(Double(p[k]), reference.remainder, accuracy: 1e-6)
    }

    /// The ranking against its definition: a stable sort by probability, largest first, so equal
    /// probabilities keep the lower class first (ties are common: quantised or uniform outputs).
    func testRankingIsTheStableDescendingOrder() {
        var rng = SplitMix64(seed: 5)
        for c in [1, 3, 5, 8, 13, 40, 150] {
            for trial in 0..<60 {
                // Few distinct values, so many ties, some at the cut-off.
                let levels = 1 + trial % 5
                var q = [Float](repeating: 0, count: c)
                for j in 0..<c { q[j] = Float(rng.next() % UInt64(levels)) / Float(levels) }
                for m in Set([1, min(c, 3), min(c, 6), c]) {
                    var order = [UInt16](repeating: 0, count: m)
                    let sum = TopKBayesUpdate.rank(q, classCount: c, into: &order, count: m)
                    func before(_ a: Int, _ b: Int) -> Bool { q[a] != q[b] ? q[a] > q[b] : a < b }
                    let sorted: [Int] = (0..<c).sorted(by: before)
                    let expected: [UInt16] = sorted.prefix(m).map { UInt16($0) }
                    XCTAssertEqual(order, expected, "c \(c), m \(m), q \(q)")
                    XCTAssertEqual(sum, q.reduce(0, +), accuracy: 1e-4 * Float(c))
                }
            }
        }
    }

    func testEveryClassKeptEqualsTheDenseUpdate() {
        for c in [5, 8, 16] {
            let qs = randomDistributions(40, classCount: c, seed: UInt64(c))
            let got = runKernel(qs, classCount: c, k: c, floor: 1e-6)
            var dense = [Float](repeating: 1 / Float(c), count: c)
            for (t, q) in qs.enumerated() {
                q.withUnsafeBufferPointer { qb in
                    _ = BayesUpdate.apply(&dense, qb.baseAddress!, count: c, floor: 1e-6, uniform: 1 / Float(c))
                }
                for j in 0..<c { XCTAssertEqual(got[t][j], dense[j], accuracy: 2e-6 + 1e-5 * dense[j]) }
            }
        }
    }

    func testNoEvidenceLeavesTheSurfelAndUnderflowResetsIt() {
        let c = 6, k = 2
        var ids: [UInt16] = [3, 1]
        var p: [Float] = [0.7, 0.2, 0.1]
        var scratch = [Float](repeating: 0, count: TopKBayesUpdate.scratchCount(kept: k))
        let order: [UInt16] = [0, 1, 2, 3]
        let zeros = [Float](repeating: 0, count: c)
        XCTAssertFalse(TopKBayesUpdate.apply(ids: &ids, p: &p, kept: k, q: zeros, classCount: c, qSum: 0,
                                             order: order, orderCount: 4, floor: 1e-6, scratch: &scratch))
        XCTAssertEqual(ids, [3, 1]); XCTAssertEqual(p, [0.7, 0.2, 0.1])
        // Evidence only where the surfel has (almost) none: the product underflows to the reset.
        var tiny: [UInt16] = [3, 1]
        var pt: [Float] = [1, 0, 0]
        var q = [Float](repeating: 0, count: c)
        q[0] = 1e-30
        XCTAssertTrue(TopKBayesUpdate.apply(ids: &tiny, p: &pt, kept: k, q: q, classCount: c, qSum: 1e-30,
                                            order: order, orderCount: 4, floor: 1e-6, scratch: &scratch))
        XCTAssertEqual(tiny, [TopKBayesUpdate.empty, TopKBayesUpdate.empty]); XCTAssertEqual(pt, [0, 0, 1])
    }

    private func fusePlane(storage: LabelStorage, classCount: Int, unlabelled: Int? = nil, frames: Int = 30,
                           probabilities: (Int) -> ClassProbabilityMap) throws -> SurfelMap {
        let scene = PlaneScene()
        var params = FusionParameters()
        params.labelStorage = storage
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: classCount, unlabelledClass: unlabelled, parameters: params)
        for i in 0..<frames {
            let pose = scene.pose(i)
            try fusion.integrate(depth: scene.depth(pose), color: scene.color(), worldFromCamera: pose, probabilities: probabilities(i))
        }
        return fusion.map
    }

    /// Per-frame evidence that changes its mind: a left and right half with different classes,
    /// a third class winning on a pseudo-random 30 % of frames.
    private func flickering(classCount c: Int) -> (Int) -> ClassProbabilityMap {
        var rng = SplitMix64(seed: 11)
        let wrong = (0..<64).map { _ in rng.nextDouble() < 0.3 }
        return { i in
            let w = 24, h = 18
            var v = [Float](repeating: 0.1 / Float(c), count: w * h * c)
            for y in 0..<h {
                for x in 0..<w {
                    let right = x >= w / 2
                    let base = (y * w + x) * c
                    v[base + (right ? 1 : 2)] += wrong[i] ? 0.3 : 0.6
                    v[base + 4] += wrong[i] ? 0.6 : 0.3
                    let s = v[base..<(base + c)].reduce(0, +)
                    for j in 0..<c { v[base + j] /= s }
                }
            }
            return ClassProbabilityMap(width: w, height: h, classCount: c, values: v)
        }
    }

    func testTopKMapShowsTheDenseMapsLabelsAndDistributions() throws {
        let c = 12
        let dense = try fusePlane(storage: .dense, classCount: c, probabilities: flickering(classCount: c))
        let compact = try fusePlane(storage: .topK(3), classCount: c, probabilities: flickering(classCount: c))
        let full = try fusePlane(storage: .topK(c), classCount: c, probabilities: flickering(classCount: c))
        XCTAssertEqual(dense.count, compact.count, "label storage must not change the geometry")
        XCTAssertEqual(dense.positions, compact.positions)
        XCTAssertGreaterThan(dense.count, 3000)
        var agree = 0, labelled = 0
        for i in 0..<dense.count {
            XCTAssertEqual(dense.labelUpdates[i], compact.labelUpdates[i])
            guard let d = dense.label(of: i) else { XCTAssertNil(compact.label(of: i)); continue }
            labelled += 1
            let t = try XCTUnwrap(compact.label(of: i))
            if t.classId == d.classId { agree += 1 }
            XCTAssertEqual(compact.classProbabilities(of: i).reduce(0, +), 1, accuracy: 1e-4)
            // Keeping every class reproduces the dense table (the compaction moves ids too).
            let f = full.classProbabilities(of: i), e = dense.classProbabilities(of: i)
            for j in 0..<c { XCTAssertEqual(f[j], e[j], accuracy: 1e-5) }
        }
        XCTAssertGreaterThan(labelled, 2000)
        XCTAssertEqual(agree, labelled, "three kept classes hold the two-class evidence of every surfel")
        XCTAssertEqual(dense.bytesPerSurfel - compact.bytesPerSurfel, 4 * c - (4 * 3 + 4 + 2 * 3))
    }

    func testUnlabelledClassIsSkippedInTheTopKLabel() throws {
        // Class 0 ("unlabelled") dominates the evidence; the label is the best other class.
        let c = 5
        let map = try fusePlane(storage: .topK(2), classCount: c, unlabelled: 0, frames: 6) { _ in
            var v = [Float](repeating: 0.05, count: 8 * 6 * c)
            for p in 0..<(8 * 6) { v[p * c] = 0.6; v[p * c + 3] = 0.25 }
            return ClassProbabilityMap(width: 8, height: 6, classCount: c, values: v)
        }
        var checked = 0
        for i in 0..<map.count {
            guard let (label, p) = map.label(of: i) else { continue }
            XCTAssertEqual(label, 3)
            XCTAssertEqual(p, map.classProbabilities(of: i)[3])
            checked += 1
        }
        XCTAssertGreaterThan(checked, 1000)
    }

    func testParsing() {
        XCTAssertEqual(LabelStorage("dense"), .dense)
        XCTAssertEqual(LabelStorage("top4"), .topK(4))
        XCTAssertEqual(LabelStorage("Top-2"), .topK(2))
        XCTAssertNil(LabelStorage("top0"))
        XCTAssertNil(LabelStorage("top"))
        XCTAssertNil(LabelStorage("top65"))
        XCTAssertNil(LabelStorage("sparse"))
        XCTAssertEqual(LabelStorage.topK(3).description, "top3")
        XCTAssertEqual(LabelStorage("log8"), .log8)
        XCTAssertEqual(LabelStorage("auto"), .automatic)
        XCTAssertEqual(LabelStorage.automatic.resolved(classCount: 40), .log8)
        XCTAssertEqual(LabelStorage.automatic.resolved(classCount: 47), .log8)
        XCTAssertEqual(LabelStorage.automatic.resolved(classCount: 150), .topK(4))
        XCTAssertEqual(LabelStorage.dense.resolved(classCount: 40), .dense)
        // auto keeps a map of up to 47 classes within 100 bytes per surfel.
        XCTAssertEqual(SurfelMap(classCount: 47).bytesPerSurfel, 100)
        XCTAssertEqual(SurfelMap(classCount: 40).labelStorage, .log8)
    }
}

/// The byte log-codes (`LabelStorage.log8`): encoding against ln, the update against its integer
/// definition, and a run of updates against SemanticFusion's Float32 update.
final class LogCodeTests: XCTestCase {
    /// Codes are round(−ln(q_j / max q) / Δ) held in 0...255, in the vector lanes and the tail
    /// alike; zeros and ratios below 10⁻⁷ code 255; a pixel without evidence is refused.
    func testEncodingFollowsTheLogarithm() {
        var rng = SplitMix64(seed: 21)
        let step = Double(LogCodeUpdate.step)
        var checked = 0
        for c in [1, 3, 7, 8, 13, 40, 150] {
            for trial in 0..<200 {
                var q = (0..<c).map { _ in Float(pow(10, -7 * rng.nextDouble())) }   // ratios over 7 decades
                if trial % 5 == 0 && c > 1 { q[Int(rng.next() % UInt64(c))] = 0 }
                if trial % 7 == 0 { q[Int(rng.next() % UInt64(c))] = 1e-9 }
                var u = [UInt8](repeating: 0, count: c)
                XCTAssertTrue(LogCodeUpdate.encode(q, count: c, into: &u))
                let largest = Double(q.max()!)
                for j in 0..<c {
                    let ratio = Double(q[j]) / largest
                    if ratio < 1e-7 { XCTAssertEqual(u[j], 255); continue }
                    let exact = -log(ratio) / step
                    // Away from a rounding boundary the code is the rounded value (held at 255).
                    guard abs(exact - exact.rounded(.down) - 0.5) > 1e-3 else { continue }
                    XCTAssertEqual(Int(u[j]), min(255, Int((exact + 0.5).rounded(.down))), "c \(c), ratio \(ratio)")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 40_000)
        var u = [UInt8](repeating: 7, count: 9)
        XCTAssertFalse(LogCodeUpdate.encode([Float](repeating: 0, count: 9), count: 9, into: &u))
        XCTAssertEqual(u, [UInt8](repeating: 7, count: 9))
    }

    /// s ← min(255, s + u − min(s + u)), eight lanes and tail.
    func testUpdateIsTheIntegerDefinition() {
        var rng = SplitMix64(seed: 4)
        for c in [1, 5, 8, 13, 40, 150] {
            for _ in 0..<300 {
                var s = (0..<c).map { _ in UInt8(truncatingIfNeeded: rng.next() % 256) }
                let u = (0..<c).map { _ in UInt8(truncatingIfNeeded: rng.next() % 256) }
                let sums = (0..<c).map { Int(s[$0]) + Int(u[$0]) }
                let low = sums.min()!
                let expected = sums.map { UInt8(min(255, $0 - low)) }
                LogCodeUpdate.apply(&s, u, count: c)
                XCTAssertEqual(s, expected)
                XCTAssertTrue(s.contains(0))
            }
        }
    }

    /// Thirty updates with changing evidence against the Float32 update: the distributions stay
    /// within the rounding's reach (Δ/2 per update on each log-ratio) and the label is the same
    /// wherever the Float32 map is decided by more than that.
    func testUpdatesTrackTheFloat32Update() {
        var rng = SplitMix64(seed: 9)
        let c = 40, floor: Float = 1e-6
        var decidedChecks = 0
        for _ in 0..<200 {
            var dense = [Float](repeating: 1 / Float(c), count: c)
            var codes = [UInt8](repeating: 0, count: c)
            let favourite = Int(rng.next() % UInt64(c)), rival = Int(rng.next() % UInt64(c))
            for _ in 0..<30 {
                var q = (0..<c).map { _ in Float(rng.nextDouble()) * 0.02 + 0.001 }
                q[favourite] += Float(rng.nextDouble()); q[rival] += Float(rng.nextDouble()) * 0.9
                let total = q.reduce(0, +)
                q = q.map { $0 / total }
                _ = BayesUpdate.apply(&dense, q, count: c, floor: floor, uniform: 1 / Float(c))
                var u = [UInt8](repeating: 0, count: c)
                XCTAssertTrue(LogCodeUpdate.encode(q, count: c, into: &u))
                LogCodeUpdate.apply(&codes, u, count: c)
            }
            let best = dense.indices.max { dense[$0] < dense[$1] }!
            let step = Double(LogCodeUpdate.step)
            for j in 0..<c where dense[j] > 1e-5 {
                // Log-ratio to the best class, from both; 30 roundings of at most Δ/2 each.
                let want = -log(Double(dense[j]) / Double(dense[best])) / step
                XCTAssertEqual(Double(codes[j]) - Double(codes[best]), want, accuracy: 15.5, "class \(j)")
            }
            let sorted = dense.sorted(by: >)
            if log(Double(sorted[0]) / Double(sorted[1])) > 30 * step / 2 {
                XCTAssertEqual(codes.firstIndex(of: 0), best)
                decidedChecks += 1
            }
        }
        XCTAssertGreaterThan(decidedChecks, 50)
    }

    /// Reading a log8 surfel through the weight table gives, bit for bit, what the definition
    /// gives: exp(−code·Δ) per class, normalised, and the label the argmax of that (first of
    /// equal values, never the unlabelled class), on random codes with many ties.
    func testReadingCodesMatchesTheDefinition() {
        var random = SplitMix64(seed: 5)
        for unlabelled in [nil, 0, 7] as [Int?] {
            let map = SurfelMap(classCount: 40, unlabelledClass: unlabelled, labelStorage: .log8)
            for _ in 0..<300 {
                map.append(position: .zero, normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1, color: RGB8(0, 0, 0), time: 1)
            }
            map.withKernelViews { m in
                for i in 0..<300 {
                    m.labelUpdates[i] = 1
                    let levels = [1, 3, 256][i % 3]   // few distinct codes: ties everywhere
                    for k in 0..<40 { m.labelCodes[i * 40 + k] = UInt8(Int(random.next() % UInt64(levels)) * (255 / max(1, levels - 1)) % 256) }
                }
            }
            for i in 0..<300 {
                var p = (0..<40).map { Float(exp(-Double(map.labelCodes[i * 40 + $0]) * Double(LogCodeUpdate.step))) }
                let total = p.reduce(0, +)
                for k in 0..<40 { p[k] /= total }
                var best = -1
                var bestP: Float = -1
                for k in 0..<40 where k != unlabelled && p[k] > bestP { bestP = p[k]; best = k }
                XCTAssertEqual(map.classProbabilities(of: i), p)
                let label = map.label(of: i)
                XCTAssertEqual(label?.classId, best, "surfel \(i)")
                XCTAssertEqual(label?.probability, bestP, "surfel \(i)")
            }
        }
    }

    /// A log8 map: new surfels are uniform, probabilities come back from the codes, the label is
    /// the smallest code (skipping the unlabelled class), and compaction moves the codes.
    func testMapStorageReadsAndCompactsCodes() {
        let map = SurfelMap(classCount: 3, unlabelledClass: 0, labelStorage: .log8)
        XCTAssertEqual(map.bytesPerSurfel, 53 + 3)
        for i in 0..<4 {
            map.append(position: SIMD3(Float(i), 0, 0), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1,
                       color: RGB8(0, 0, 0), time: 1)
        }
        XCTAssertEqual(map.classProbabilities(of: 2), [Float](repeating: 1 / 3, count: 3))
        map.withKernelViews { m in
            for i in 0..<4 {
                m.labelCodes[i * 3] = 0; m.labelCodes[i * 3 + 1] = UInt8(10 * i); m.labelCodes[i * 3 + 2] = 20
                m.labelUpdates[i] = 1
            }
        }
        let step = LogCodeUpdate.step
        let p = map.classProbabilities(of: 1)
        let weights = [1, exp(-10 * step), exp(-20 * step)]
        for k in 0..<3 { XCTAssertEqual(p[k], weights[k] / weights.reduce(0, +), accuracy: 1e-6) }
        // Class 0 (unlabelled) has the smallest code; the label is the best of the others.
        XCTAssertEqual(map.label(of: 1)?.classId, 1)
        XCTAssertEqual(map.label(of: 3)?.classId, 2)   // codes 0, 30, 20
        map.remove(where: [false, true, false, false], removed: 1)
        XCTAssertEqual(map.count, 3)
        XCTAssertEqual(map.label(of: 1)?.classId, 2, "surfel 3 moved into the hole with its codes")
        let moved = [1, exp(-30 * step), exp(-20 * step)]
        XCTAssertEqual(map.classProbabilities(of: 1)[1], moved[1] / moved.reduce(0, +), accuracy: 1e-6)
    }
}

/// `SurfelMap.remove(where:removed:)`: the lowest hole takes the last surviving surfel, labels
/// move with their surfels, and the compaction says where each old surfel went.
final class SurfelMapCompactionTests: XCTestCase {
    func testHolesTakeTheLastSurvivorsAndLabelsMoveWithThem() {
        let map = SurfelMap(classCount: 6, labelStorage: .topK(2))
        for i in 0..<10 {
            map.append(position: SIMD3(Float(i), 0, 0), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 1,
                       color: RGB8(0, 0, 0), time: 1)
        }
        // Give each surfel a label equal to its index mod 6, through the map's own storage.
        map.withKernelViews { m in
            for i in 0..<10 {
                m.labelClasses[i * 2] = UInt16(i % 6); m.labelValues[i * 3] = 0.9; m.labelValues[i * 3 + 2] = 0.1
                m.labelUpdates[i] = 1
            }
        }
        var flags = [Bool](repeating: false, count: 10)
        for i in [1, 4, 8, 9] { flags[i] = true }
        let compaction = map.remove(where: flags, removed: 4)
        XCTAssertEqual(map.count, 6)
        // Holes 1 and 4 take survivors 7 and 6 (8 and 9 were removed themselves).
        XCTAssertEqual(map.positions.map { Int($0.x) }, [0, 7, 2, 3, 6, 5])
        XCTAssertEqual((0..<6).map { map.label(of: $0)?.classId }, [0, 1, 2, 3, 0, 5])
        XCTAssertEqual((0..<10).map { compaction.newIndex($0, removed: flags[$0]) }, [0, -1, 2, 3, -1, 5, 4, 1, -1, -1])
    }

    /// `SurfelMap.sortSpatially`: Z-order of the cubes (x is the lowest bit, then y, then z),
    /// index order within a cube, non-finite positions last, and every attribute and class
    /// distribution moves with its surfel.
    func testSpatialOrderIsZOrderAndSurfelsMoveWhole() {
        // The eight corners of a 1 m cube, in scrambled order, two surfels in the first corner.
        let corners: [SIMD3<Float>] = [SIMD3(1, 1, 1), SIMD3(0, 0, 0), SIMD3(0, 1, 0), SIMD3(1, 0, 1), SIMD3(0, 0, 1),
                                       SIMD3(1, 0, 0), SIMD3(0, 1, 1), SIMD3(.nan, 0, 0), SIMD3(1, 1, 0), SIMD3(0.1, 0.1, 0.1)]
        for storage in [LabelStorage.dense, .topK(2), .log8] {
            let map = SurfelMap(classCount: 4, labelStorage: storage)
            for (i, p) in corners.enumerated() {
                map.append(position: p, normal: SIMD3(0, 0, -1), radius: Float(i), confidence: Float(i),
                           color: RGB8(UInt8(i), 0, 0), time: Int32(i + 1))
            }
            map.withKernelViews { m in
                for i in 0..<corners.count {
                    m.labelUpdates[i] = 1
                    switch storage {
                    case .log8: for k in 0..<4 { m.labelCodes[i * 4 + k] = k == i % 4 ? 0 : 50 }
                    case .topK: m.labelClasses[i * 2] = UInt16(i % 4); m.labelValues[i * 3] = 0.9; m.labelValues[i * 3 + 2] = 0.1
                    default: for k in 0..<4 { m.labelValues[i * 4 + k] = k == i % 4 ? 0.7 : 0.1 }
                    }
                }
            }
            let before = (0..<map.count).map { map.classProbabilities(of: $0) }
            let newIndex = map.sortSpatially(cell: 0.5, threads: 2)
            // (0,0,0) and (0.1,0.1,0.1) share the first cube (index order), then x, y, xy, z, xz, yz, xyz; NaN last.
            XCTAssertEqual(map.radii.map { Int($0) }, [1, 9, 5, 2, 8, 4, 3, 6, 0, 7], "\(storage)")
            XCTAssertEqual(Set(newIndex), Set((0..<10).map(Int32.init)))
            for old in 0..<corners.count {
                let i = Int(newIndex[old])
                XCTAssertEqual(map.radii[i], Float(old)); XCTAssertEqual(map.confidences[i], Float(old))
                XCTAssertEqual(map.colors[i], RGB8(UInt8(old), 0, 0)); XCTAssertEqual(map.initTimes[i], Int32(old + 1))
                XCTAssertEqual(map.lastSeen[i], Int32(old + 1))
                XCTAssertEqual(map.label(of: i)?.classId, old % 4, "\(storage)")
                XCTAssertEqual(map.classProbabilities(of: i), before[old], "\(storage)")
            }
        }
    }

    /// `SurfelMap.append(contentsOf:transformedBy:timeOffset:)` (a separate piece joining the
    /// map): every attribute of the other map's surfels arrives, positions and normals moved
    /// rigidly, times shifted, class distributions as they were, in every label storage; the
    /// map's own surfels do not change.
    func testAppendingAPieceMovesItsSurfelsAndKeepsTheirLabels() {
        let motion = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 0, 1), angle: .pi / 2), translation: SIMD3(1, 2, 3))
        for storage in [LabelStorage.dense, .topK(2), .log8] {
            let map = SurfelMap(classCount: 4, labelStorage: storage), piece = SurfelMap(classCount: 4, labelStorage: storage)
            map.append(position: SIMD3(5, 5, 5), normal: SIMD3(0, 0, -1), radius: 0.01, confidence: 7, color: RGB8(9, 9, 9), time: 3)
            for i in 0..<3 {
                piece.append(position: SIMD3(Float(i), 0, 0), normal: SIMD3(1, 0, 0), radius: Float(i + 1) / 100, confidence: Float(i + 2),
                             color: RGB8(UInt8(i), 1, 2), time: Int32(i + 1))
            }
            piece.withKernelViews { m in
                for i in 0..<3 {
                    m.labelUpdates[i] = UInt16(i + 1)
                    switch storage {
                    case .log8: for k in 0..<4 { m.labelCodes[i * 4 + k] = k == i ? 0 : 40 }
                    case .topK: m.labelClasses[i * 2] = UInt16(i); m.labelValues[i * 3] = 0.8; m.labelValues[i * 3 + 2] = 0.2
                    default: for k in 0..<4 { m.labelValues[i * 4 + k] = k == i ? 0.7 : 0.1 }
                    }
                }
            }
            let mapBefore = map.classProbabilities(of: 0)
            map.append(contentsOf: piece, transformedBy: motion, timeOffset: 100)
            XCTAssertEqual(map.count, 4)
            XCTAssertEqual(map.positions[0], SIMD3(5, 5, 5)); XCTAssertEqual(map.initTimes[0], 3)
            XCTAssertEqual(map.classProbabilities(of: 0), mapBefore, "\(storage)")
            for i in 0..<3 {
                let j = i + 1
                let expected = SIMD3<Float>(1, 2 + Float(i), 3)   // (i, 0, 0) turned 90 deg about z, then moved
                XCTAssertLessThan(((map.positions[j] - expected) * (map.positions[j] - expected)).sum(), 1e-10, "\(storage) \(i)")
                XCTAssertLessThan(((map.normals[j] - SIMD3(0, 1, 0)) * (map.normals[j] - SIMD3(0, 1, 0))).sum(), 1e-10)
                XCTAssertEqual(map.radii[j], piece.radii[i]); XCTAssertEqual(map.confidences[j], piece.confidences[i])
                XCTAssertEqual(map.colors[j], piece.colors[i]); XCTAssertEqual(map.labelUpdates[j], UInt16(i + 1))
                XCTAssertEqual(map.initTimes[j], Int32(i + 101)); XCTAssertEqual(map.lastSeen[j], Int32(i + 101))
                XCTAssertEqual(map.classProbabilities(of: j), piece.classProbabilities(of: i), "\(storage)")
                XCTAssertEqual(map.label(of: j)?.classId, i, "\(storage)")
            }
        }
    }
}
