import Foundation
import Geometry
import Imaging

/// The surfel map: ElasticFusion's model with SemanticFusion's per-surfel class distribution.
///
/// Stored as a structure of arrays (positions, normals, ... each contiguous) so kernels stream
/// through one attribute at a time and cleanup compacts cheaply. This is the one long-lived
/// mutable object of a reconstruction, hence a class; not Sendable (one fusion owns it; pass
/// `copy()` to another thread).
public final class SurfelMap {
    /// World-frame centres.
    public internal(set) var positions: [SIMD3<Float>] = []
    /// World-frame unit normals, pointing toward the cameras that observed the surface.
    public internal(set) var normals: [SIMD3<Float>] = []
    public internal(set) var radii: [Float] = []
    /// Accumulated confidence weight; stable at `FusionParameters.confidenceThreshold`.
    public internal(set) var confidences: [Float] = []
    public internal(set) var colors: [RGB8] = []
    /// Frame counter (tick, from 1) when the surfel was created / last fused.
    public internal(set) var initTimes: [Int32] = []
    public internal(set) var lastSeen: [Int32] = []
    /// Class distributions, `labelSlots` floats per surfel, surfel-major: every class
    /// probability (`.dense`), or the kept classes' probabilities and the remainder (`.topK`,
    /// see `TopKBayesUpdate`); none with `.log8` (`labelCodes`). Read them through
    /// `classProbabilities(of:)` and `label(of:)`.
    var labelValues: [Float] = []
    /// Class ids of the kept classes, `keptClasses` per surfel (`.topK` only).
    var labelClasses: [UInt16] = []
    /// Byte log-codes, `codeSlots` per surfel (`.log8` only, see `LogCodeUpdate`).
    var labelCodes: [UInt8] = []
    /// Number of label updates each surfel received (0 = never labelled).
    public internal(set) var labelUpdates: [UInt16] = []

    public let classCount: Int
    /// Class excluded from a surfel's label (e.g. NYU-13's "unlabelled"), if any.
    public let unlabelledClass: Int?
    /// How the class distributions are stored (`automatic` resolved for the class count).
    public let labelStorage: LabelStorage
    /// Classes kept per surfel (`.topK`), 0 when every class is stored or there are no classes.
    let keptClasses: Int
    /// Floats of `labelValues` per surfel.
    let labelSlots: Int
    /// Bytes of `labelCodes` per surfel.
    let codeSlots: Int

    public init(classCount: Int, unlabelledClass: Int? = nil, labelStorage: LabelStorage = .standard) {
        precondition(classCount >= 0 && classCount < Int(TopKBayesUpdate.empty))
        self.classCount = classCount
        self.unlabelledClass = unlabelledClass
        let labelStorage = labelStorage.resolved(classCount: classCount)
        self.labelStorage = labelStorage
        codeSlots = labelStorage == .log8 ? classCount : 0
        if let k = labelStorage.kept(classCount: classCount) {
            precondition(k >= 1)
            keptClasses = k
            labelSlots = k + 1
        } else {
            keptClasses = 0
            labelSlots = labelStorage == .log8 ? 0 : classCount
        }
    }

    public var count: Int { positions.count }

    /// A geometry-only map from exported surfels (e.g. a PLY read back), for rendering and
    /// evaluation. Confidence defaults to 1 and radius to 5 mm where not given.
    public convenience init(positions: [SIMD3<Float>], normals: [SIMD3<Float>], radii: [Float]?, confidences: [Float]?, colors: [RGB8]?) {
        self.init(classCount: 0)
        let n = positions.count
        precondition(normals.count == n && (radii?.count ?? n) == n && (confidences?.count ?? n) == n && (colors?.count ?? n) == n)
        self.positions = positions
        self.normals = normals
        self.radii = radii ?? [Float](repeating: 0.005, count: n)
        self.confidences = confidences ?? [Float](repeating: 1, count: n)
        self.colors = colors ?? [RGB8](repeating: RGB8(128, 128, 128), count: n)
        initTimes = [Int32](repeating: 1, count: n)
        lastSeen = [Int32](repeating: 1, count: n)
        labelUpdates = [UInt16](repeating: 0, count: n)
    }

    /// Memory held per surfel by the map's arrays, in bytes (array strides, not capacity).
    public var bytesPerSurfel: Int {
        MemoryLayout<SIMD3<Float>>.stride * 2 + MemoryLayout<Float>.stride * 2 + MemoryLayout<RGB8>.stride
            + MemoryLayout<Int32>.stride * 2 + MemoryLayout<UInt16>.stride
            + MemoryLayout<Float>.stride * labelSlots + MemoryLayout<UInt16>.stride * keptClasses + codeSlots
    }

    public func isStable(_ i: Int, threshold: Float) -> Bool { confidences[i] >= threshold }

    public func stableCount(threshold: Float) -> Int {
        confidences.reduce(0) { $0 + ($1 >= threshold ? 1 : 0) }
    }

    /// Makes room for `additional` more surfels so appending a frame's new surfels does not
    /// reallocate repeatedly.
    func reserve(additional: Int) {
        guard count + additional > positions.capacity else { return }
        let n = max(count + additional, positions.capacity * 3 / 2)
        positions.reserveCapacity(n); normals.reserveCapacity(n); radii.reserveCapacity(n)
        confidences.reserveCapacity(n); colors.reserveCapacity(n); initTimes.reserveCapacity(n)
        lastSeen.reserveCapacity(n); labelUpdates.reserveCapacity(n)
        labelValues.reserveCapacity(n * labelSlots); labelClasses.reserveCapacity(n * keptClasses)
        labelCodes.reserveCapacity(n * codeSlots)
    }

    /// Appends a surfel with a uniform class prior.
    func append(position: SIMD3<Float>, normal: SIMD3<Float>, radius: Float, confidence: Float,
                color: RGB8, time: Int32) {
        positions.append(position)
        normals.append(normal)
        radii.append(radius)
        confidences.append(confidence)
        colors.append(color)
        initTimes.append(time)
        lastSeen.append(time)
        labelUpdates.append(0)
        if keptClasses > 0 {
            labelValues.append(contentsOf: repeatElement(0, count: keptClasses))
            labelValues.append(1)
            labelClasses.append(contentsOf: repeatElement(TopKBayesUpdate.empty, count: keptClasses))
        } else if codeSlots > 0 {
            labelCodes.append(contentsOf: repeatElement(0, count: codeSlots))
        } else if classCount > 0 {
            labelValues.append(contentsOf: repeatElement(1 / Float(classCount), count: classCount))
        }
    }

    /// Appends every surfel of `other` (a map built with the same class count and label storage),
    /// moved rigidly by `transform` and with its times shifted by `timeOffset`: a piece of the
    /// scene tracked in its own frame joins this map once it has been placed in both.
    /// Class distributions are copied as stored; nothing is fused, so surface both maps hold
    /// stays twice until fusion or loop closure meets it.
    func append(contentsOf other: SurfelMap, transformedBy transform: RigidTransform, timeOffset: Int32) {
        precondition(other.classCount == classCount && other.labelStorage == labelStorage && other !== self)
        reserve(additional: other.count)
        let f = transform.float
        positions.append(contentsOf: other.positions.map { f.apply($0) })
        normals.append(contentsOf: other.normals.map { f.rotate($0) })
        radii.append(contentsOf: other.radii)
        confidences.append(contentsOf: other.confidences)
        colors.append(contentsOf: other.colors)
        initTimes.append(contentsOf: other.initTimes.map { $0 &+ timeOffset })
        lastSeen.append(contentsOf: other.lastSeen.map { $0 &+ timeOffset })
        labelUpdates.append(contentsOf: other.labelUpdates)
        labelValues.append(contentsOf: other.labelValues)
        labelClasses.append(contentsOf: other.labelClasses)
        labelCodes.append(contentsOf: other.labelCodes)
    }

    /// Which surfels of `other`, moved by `transform`, lie on surface this map has: within the
    /// larger of the two radii of one of its surfels, with normals less than 37 degrees apart
    /// (the flags, and how many are set). Surfels are found through a hash of 2 cm cells, so
    /// radii beyond 2 cm (far, oblique views) are compared only with the neighbouring cells.
    func overlap(_ other: SurfelMap, transformedBy transform: RigidTransform) -> (flags: [Bool], count: Int) {
        let size: Float = 0.02
        func cell(_ p: SIMD3<Float>) -> SIMD3<Int32>? {
            let c = (p / size).rounded(.down), limit = Float(Int32.max / 2)
            guard abs(c.x) < limit, abs(c.y) < limit, abs(c.z) < limit else { return nil }
            return SIMD3<Int32>(Int32(c.x), Int32(c.y), Int32(c.z))
        }
        var cells: [SIMD3<Int32>: [Int32]] = [:]
        for i in 0..<count { if let c = cell(positions[i]) { cells[c, default: []].append(Int32(i)) } }
        let f = transform.float
        var flags = [Bool](repeating: false, count: other.count), found = 0
        for j in 0..<other.count {
            let p = f.apply(other.positions[j]), n = f.rotate(other.normals[j])
            guard let c = cell(p) else { continue }
            search: for dx: Int32 in -1...1 { for dy: Int32 in -1...1 { for dz: Int32 in -1...1 {
                for i in cells[c &+ SIMD3(dx, dy, dz)] ?? [] {
                    let r = max(radii[Int(i)], other.radii[j]), d = positions[Int(i)] - p
                    if (d * d).sum() <= r * r && (normals[Int(i)] * n).sum() > 0.8 {
                        flags[j] = true
                        found += 1
                        break search
                    }
                }
            } } }
        }
        return (flags, found)
    }

    /// Where a compaction (`remove(where:)`) put the surfels: those below `newCount` that were
    /// kept stay where they are; those at or beyond it moved into the holes.
    struct Compaction {
        let newCount: Int
        /// New index of old surfel `newCount + j`, or -1 if it was removed.
        let tail: [Int32]

        /// New index of old surfel `old`, or -1 if it was removed (`removed`: its flag).
        @inline(__always)
        func newIndex(_ old: Int, removed: Bool) -> Int32 {
            old >= newCount ? tail[old - newCount] : (removed ? -1 : Int32(old))
        }
    }

    /// Removes the `removed` surfels whose flag is set by moving surfels from the end into the
    /// holes (O(removed) moves instead of shifting the whole map every frame): the lowest hole
    /// takes the last surviving surfel, and so on. Class distributions move with their surfels,
    /// as SemanticFusion's table follows ElasticFusion's compaction.
    @discardableResult
    func remove(where flags: [Bool], removed: Int) -> Compaction {
        precondition(flags.count == count && removed >= 0 && removed <= count)
        let oldCount = count, newCount = count - removed
        var tail = [Int32](repeating: -1, count: removed)
        let slots = labelSlots, kept = keptClasses, codes = codeSlots
        flags.withKernelInput { flags in
        tail.withKernelOutput { tail in
        withKernelViews { m in
            var j = oldCount - 1
            for i in 0..<newCount where flags[i] {
                while flags[j] { j -= 1 }   // stays ≥ newCount: as many survivors there as holes here
                precondition(j >= newCount, "remove(where:): \(removed) is not the number of flags set")
                m.positions[i] = m.positions[j]; m.normals[i] = m.normals[j]; m.radii[i] = m.radii[j]
                m.confidences[i] = m.confidences[j]; m.colors[i] = m.colors[j]
                m.initTimes[i] = m.initTimes[j]; m.lastSeen[i] = m.lastSeen[j]; m.labelUpdates[i] = m.labelUpdates[j]
                for k in 0..<slots { m.labelValues[i * slots + k] = m.labelValues[j * slots + k] }
                for k in 0..<kept { m.labelClasses[i * kept + k] = m.labelClasses[j * kept + k] }
                for k in 0..<codes { m.labelCodes[i * codes + k] = m.labelCodes[j * codes + k] }
                tail[j - newCount] = Int32(i)
                j -= 1
            }
        }}}
        if removed > 0 {
            positions.removeLast(removed); normals.removeLast(removed); radii.removeLast(removed)
            confidences.removeLast(removed); colors.removeLast(removed)
            initTimes.removeLast(removed); lastSeen.removeLast(removed); labelUpdates.removeLast(removed)
            labelValues.removeLast(removed * slots); labelClasses.removeLast(removed * kept)
            labelCodes.removeLast(removed * codes)
        }
        return Compaction(newCount: newCount, tail: tail)
    }

    /// Puts the surfels in Z-order (Morton order) of a grid of cubes over the map's bounding box,
    /// `cell` metres wide or wider so that 1,024 span every axis; surfels in one cube keep their
    /// relative order. Returns each old surfel's new index. No surfel changes, only where it is
    /// stored.
    ///
    /// Why: the per-frame kernels project the surfels in array order into per-pixel images
    /// larger than the cache. The swap-compaction moves the newest surfels into holes all over
    /// the array, so after a few hundred frames consecutive surfels land on unrelated pixels and
    /// nearly every projection misses the cache. Sorted, consecutive surfels lie within a few
    /// centimetres and land on neighbouring pixels.
    @discardableResult
    func sortSpatially(cell requested: Float, threads: Int) -> [Int32] {
        precondition(requested > 0 && count <= Int(Int32.max))
        let n = count
        let codes = zOrderCodes(cell: requested, threads: threads)
        var keys = [UInt64](repeating: 0, count: n)
        for i in 0..<n { keys[i] = UInt64(codes[i]) << 32 | UInt64(i) }
        keys.sort()
        let order = keys.map { Int32(truncatingIfNeeded: $0) }
        var newIndex = [Int32](repeating: 0, count: n)
        for (j, i) in order.enumerated() { newIndex[Int(i)] = Int32(j) }
        positions = positions.gatheringRows(order, width: 1, threads: threads)
        normals = normals.gatheringRows(order, width: 1, threads: threads)
        radii = radii.gatheringRows(order, width: 1, threads: threads)
        confidences = confidences.gatheringRows(order, width: 1, threads: threads)
        colors = colors.gatheringRows(order, width: 1, threads: threads)
        initTimes = initTimes.gatheringRows(order, width: 1, threads: threads)
        lastSeen = lastSeen.gatheringRows(order, width: 1, threads: threads)
        labelUpdates = labelUpdates.gatheringRows(order, width: 1, threads: threads)
        labelValues = labelValues.gatheringRows(order, width: labelSlots, threads: threads)
        labelClasses = labelClasses.gatheringRows(order, width: keptClasses, threads: threads)
        labelCodes = labelCodes.gatheringRows(order, width: codeSlots, threads: threads)
        return newIndex
    }

    /// Each surfel's cube on a grid over the map's bounding box (`cell` metres or wider, so that
    /// 1,024 span every axis) as a 30-bit Z-order (Morton) code: x in the lowest bit, then y,
    /// then z. Non-finite positions get 2^30, after every cube.
    func zOrderCodes(cell requested: Float, threads: Int) -> [UInt32] {
        let n = count
        var low = SIMD3<Float>(repeating: .infinity), high = SIMD3<Float>(repeating: -.infinity)
        for p in positions where p.x.isFinite && p.y.isFinite && p.z.isFinite {
            low = pointwiseMin(low, p); high = pointwiseMax(high, p)
        }
        let extent = n > 0 && low.x.isFinite ? (high - low).max() : 0
        let cell = max(requested, extent / 1023.5)
        var codes = [UInt32](repeating: 1 << 30, count: n)
        positions.withKernelInput { positions in
        codes.withKernelOutput { codes in
            ParallelFor.run(n, chunks: threads, threads: threads) { _, range in
                for i in range {
                    let q = (positions[i] - low) / cell
                    guard q.x.isFinite && q.y.isFinite && q.z.isFinite else { continue }
                    let c = SIMD3<UInt32>(clamping: SIMD3<Int32>(pointwiseMin(pointwiseMax(q, .zero), SIMD3(repeating: 1023)),
                                                                  rounding: .towardZero))
                    codes[i] = Self.spreadBits(c.x) | Self.spreadBits(c.y) << 1 | Self.spreadBits(c.z) << 2
                }
            }
        }}
        return codes
    }

    /// Surfel indices in creation order, surfels made in the same frame in Z-order of where they
    /// are and then by their coordinates' bits: an order that depends on the surfels, not on
    /// where the map stores them (only exact duplicates fall back to their indices).
    func creationOrder() -> [Int32] {
        struct Key: Comparable {
            var timeAndCube: UInt64, x: UInt32, y: UInt32, z: UInt32, index: Int32
            static func < (a: Key, b: Key) -> Bool {
                (a.timeAndCube, a.x, a.y, a.z, a.index) < (b.timeAndCube, b.x, b.y, b.z, b.index)
            }
        }
        let codes = zOrderCodes(cell: 0.01, threads: 1)
        var keys = [Key]()
        keys.reserveCapacity(count)
        for i in 0..<count {
            let p = positions[i]
            keys.append(Key(timeAndCube: UInt64(UInt32(bitPattern: initTimes[i] ^ Int32.min)) << 32 | UInt64(codes[i]),
                            x: p.x.bitPattern, y: p.y.bitPattern, z: p.z.bitPattern, index: Int32(i)))
        }
        keys.sort()
        return keys.map(\.index)
    }

    /// The 10 low bits of `x` spread to every third bit (one axis of a 30-bit Morton code).
    @inline(__always) static func spreadBits(_ x: UInt32) -> UInt32 {
        var x = x & 0x3FF
        x = (x | x << 16) & 0x0300_00FF
        x = (x | x << 8) & 0x0300_F00F
        x = (x | x << 4) & 0x030C_30C3
        x = (x | x << 2) & 0x0924_9249
        return x
    }

    /// The most likely class of surfel `i` and its probability, or nil if it was never labelled.
    /// Ties go to the lower class id.
    public func label(of i: Int) -> (classId: Int, probability: Float)? {
        guard classCount > 0, labelUpdates[i] > 0 else { return nil }
        if codeSlots > 0 {
            // The smallest code is the most likely class (ties: the lower id); its probability
            // is its weight over all classes' (as `classProbabilities` normalises, bit for bit).
            let base = i * codeSlots
            var total: Float = 0
            var best = -1
            var bestWeight: Float = -1
            for k in 0..<classCount {
                let w = LogCodeUpdate.weights[Int(labelCodes[base + k])]
                total += w
                if k != unlabelledClass && w > bestWeight { bestWeight = w; best = k }
            }
            return best >= 0 ? (best, bestWeight / total) : nil
        }
        let base = i * labelSlots
        guard keptClasses > 0 else {
            var best = -1
            var bestP: Float = -1
            for k in 0..<classCount where k != unlabelledClass && labelValues[base + k] > bestP {
                bestP = labelValues[base + k]; best = k
            }
            return best >= 0 ? (best, bestP) : nil
        }
        // Kept classes are sorted, and each is at least as likely as the remainder's even share,
        // so the first kept class that is not the unlabelled one is the label.
        let idBase = i * keptClasses
        var held = 0
        for s in 0..<keptClasses {
            let id = labelClasses[idBase + s]
            if id == TopKBayesUpdate.empty { break }
            if Int(id) != unlabelledClass { return (Int(id), labelValues[base + s]) }
            held += 1
        }
        // Nothing or only the unlabelled class is kept: every other class holds the remainder's
        // share; the lowest id wins, as in the dense argmax's ties.
        let rest = classCount - held
        guard rest > 0 else { return nil }
        let share = labelValues[base + keptClasses] / Float(rest)
        guard let best = (0..<classCount).first(where: { $0 != unlabelledClass }), share > 0 else { return nil }
        return (best, share)
    }

    /// Class probability vector of surfel `i`, all `classCount` classes (the classes a top-k
    /// map does not keep share its remainder evenly).
    public func classProbabilities(of i: Int) -> [Float] {
        if codeSlots > 0 {
            let base = i * codeSlots
            var p = (0..<classCount).map { LogCodeUpdate.weights[Int(labelCodes[base + $0])] }
            let total = p.reduce(0, +)
            for k in 0..<classCount { p[k] /= total }
            return p
        }
        let base = i * labelSlots
        guard keptClasses > 0 else { return Array(labelValues[base..<(base + classCount)]) }
        let idBase = i * keptClasses
        var held = 0
        while held < keptClasses && labelClasses[idBase + held] != TopKBayesUpdate.empty { held += 1 }
        let rest = classCount - held
        var p = [Float](repeating: rest > 0 ? labelValues[base + keptClasses] / Float(rest) : 0, count: classCount)
        for s in 0..<held { p[Int(labelClasses[idBase + s])] = labelValues[base + s] }
        return p
    }

    /// Deep copy, e.g. to keep a snapshot while fusion goes on.
    public func copy() -> SurfelMap {
        let m = SurfelMap(classCount: classCount, unlabelledClass: unlabelledClass, labelStorage: labelStorage)
        m.positions = positions; m.normals = normals; m.radii = radii; m.confidences = confidences
        m.colors = colors; m.initTimes = initTimes; m.lastSeen = lastSeen
        m.labelValues = labelValues; m.labelClasses = labelClasses; m.labelUpdates = labelUpdates
        m.labelCodes = labelCodes
        return m
    }

    /// Views of every attribute for one kernel call (`KernelMemory.swift`).
    struct KernelViews {
        let positions: KernelOutput<SIMD3<Float>>, normals: KernelOutput<SIMD3<Float>>
        let radii: KernelOutput<Float>, confidences: KernelOutput<Float>, colors: KernelOutput<RGB8>
        let initTimes: KernelOutput<Int32>, lastSeen: KernelOutput<Int32>
        let labelValues: KernelOutput<Float>, labelClasses: KernelOutput<UInt16>, labelUpdates: KernelOutput<UInt16>
        let labelCodes: KernelOutput<UInt8>
    }

    /// Read-only views of the attributes the renderers and tests read.
    struct KernelInputs {
        let positions: KernelInput<SIMD3<Float>>, normals: KernelInput<SIMD3<Float>>
        let radii: KernelInput<Float>, confidences: KernelInput<Float>, colors: KernelInput<RGB8>
        let initTimes: KernelInput<Int32>, lastSeen: KernelInput<Int32>
    }

    /// Runs `body` with read-write views of every attribute: the one place the kernels open the
    /// map's storage for writing. Appending or removing surfels inside `body` is not allowed.
    func withKernelViews<R>(_ body: (KernelViews) throws -> R) rethrows -> R {
        try positions.withKernelOutput { positions in
        try normals.withKernelOutput { normals in
        try radii.withKernelOutput { radii in
        try confidences.withKernelOutput { confidences in
        try colors.withKernelOutput { colors in
        try initTimes.withKernelOutput { initTimes in
        try lastSeen.withKernelOutput { lastSeen in
        try labelValues.withKernelOutput { labelValues in
        try labelClasses.withKernelOutput { labelClasses in
        try labelUpdates.withKernelOutput { labelUpdates in
        try labelCodes.withKernelOutput { labelCodes in
            try body(KernelViews(positions: positions, normals: normals, radii: radii, confidences: confidences, colors: colors,
                                 initTimes: initTimes, lastSeen: lastSeen, labelValues: labelValues, labelClasses: labelClasses,
                                 labelUpdates: labelUpdates, labelCodes: labelCodes))
        }}}}}}}}}}}
    }

    /// Runs `body` with read-only views of the geometric attributes.
    func withKernelInputs<R>(_ body: (KernelInputs) throws -> R) rethrows -> R {
        try positions.withKernelInput { positions in
        try normals.withKernelInput { normals in
        try radii.withKernelInput { radii in
        try confidences.withKernelInput { confidences in
        try colors.withKernelInput { colors in
        try initTimes.withKernelInput { initTimes in
        try lastSeen.withKernelInput { lastSeen in
            try body(KernelInputs(positions: positions, normals: normals, radii: radii, confidences: confidences, colors: colors,
                                  initTimes: initTimes, lastSeen: lastSeen))
        }}}}}}}
    }
}
