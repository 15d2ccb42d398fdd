import Export
import Foundation
import Imaging
import Semantics

/// Gives mesh vertices the attributes of the surfels around them, and puts them on the
/// surfels' surface.
///
/// Each vertex fuses the surfels within 2σ of it, σ being the surfel's radius kept between half
/// a voxel and one voxel, with weight confidence x Gaussian of the distance: colours, normals
/// and (where no disc covers the vertex) class probabilities are averaged with those weights and
/// renormalised (a confidence-weighted fusion, not a copy of the nearest surfel's label). The
/// kernel is narrower than the one that builds the volume so labels stay as sharp at class
/// boundaries as the surfels'. A vertex no surfel reaches (rare: vertices lie within a voxel of
/// surfels) takes the nearest surfel within reach of the grid.
///
/// With `labelsFromDiscs` (the default), a vertex whose final position lies inside surfels'
/// discs (within a surfel's radius of its centre along its plane and of its plane) takes its
/// class distribution from those surfels alone, fused as the map fuses them: Σ confidence x
/// probability. That is the label the map itself shows at that point, so the mesh shows the
/// map's labels where the map has them; the Gaussian differs from it where neighbouring surfels
/// disagree (docs/meshing.md, "Label agreement"). With only `label`/`label_confidence` columns (no
/// probabilities), each surfel votes for its label with weight x label confidence, and the
/// vertex's confidence is its label's share of the votes. As in the map, surfels without a
/// label (no prediction reached them: label -1, uniform probabilities) give no class evidence,
/// a vertex only they reach (or inside only their discs) stays unlabelled (-1), and the class
/// set's "unlabelled" class (NYU-13's 0) never wins.
///
/// Positions: marching cubes places a vertex where the linearly interpolated distance crosses
/// zero on a voxel edge, which is off the surfels by a fraction of a voxel wherever the
/// surface curves or the volume's Gaussians blur it. With `refinePositions`, each vertex moves
/// along the fused normal by the weighted mean of its signed distances to the surrounding
/// surfels' planes (one moving-least-squares projection step), at most `maximumShift` voxels.
enum AttributeTransfer {
    /// Largest move of a vertex onto the surfels, in voxels: a vertex of a cube the surface
    /// crosses lies within a voxel of it; a larger correction would be an outlier's pull.
    static let maximumShift: Float = 1
    static func transfer(to positions: [SIMD3<Float>], faces: [SIMD3<UInt32>], from cloud: PointCloud, surfels: Surfels,
                         voxel: Float, colorMode: MeshColor, includeProbabilities: Bool, refinePositions: Bool = true,
                         labelsFromDiscs: Bool = true, grid prebuilt: SurfelGrid? = nil,
                         threads: Int) -> PointCloud {
        let n = positions.count
        let grid = prebuilt ?? SurfelGrid(surfels: surfels, cell: 2 * voxel)
        precondition(grid.cell == 2 * voxel, "AttributeTransfer: the grid's cell must be two voxels")
        let discs = DiscLookup(surfels: surfels, grid: grid)
        let probabilities = cloud.classProbabilities
        let classCount = probabilities?.classCount ?? (cloud.classSet?.count ?? 0)
        let hasLabels = cloud.labels != nil || probabilities != nil
        var normals = [SIMD3<Float>](repeating: .zero, count: n)
        var refined = positions
        var colors = [RGB8](repeating: RGB8(128, 128, 128), count: n)
        var labels = [Int32](repeating: -1, count: n)
        var labelConfidence = [Float](repeating: 0, count: n)
        var fused = includeProbabilities && classCount > 0 ? [Float](repeating: 0, count: n * classCount) : []
        let wantProbabilities = !fused.isEmpty
        let unlabelledClass = cloud.classSet?.unlabelledId
        let evidence = probabilities.map { hasEvidence(cloud, $0) } ?? []
        let faceNormals = vertexNormalsFromFaces(positions, faces)
        normals.withUnsafeMutableBufferPointer { normalsOut in
        refined.withUnsafeMutableBufferPointer { positionsOut in
        colors.withUnsafeMutableBufferPointer { colorsOut in
        labels.withUnsafeMutableBufferPointer { labelsOut in
        labelConfidence.withUnsafeMutableBufferPointer { confidenceOut in
        fused.withUnsafeMutableBufferPointer { fusedOut in
            nonisolated(unsafe) let normalsOut = normalsOut, positionsOut = positionsOut, colorsOut = colorsOut, labelsOut = labelsOut
            nonisolated(unsafe) let confidenceOut = confidenceOut, fusedOut = fusedOut
            parallelFor(n, threads: threads) { v in
              // Scores on the stack: no heap allocation per vertex (900k for the 500-frame map).
              withUnsafeTemporaryAllocation(of: Float.self, capacity: max(classCount, 1)) { scores in
                scores.initialize(repeating: 0)
                let p = positions[v]
                var total: Float = 0, labelled: Float = 0
                var normal = SIMD3<Float>(), rgb = SIMD3<Float>()
                var planeDistance: Float = 0
                var nearest = -1, nearestDistance = Float.infinity
                func accumulate(_ k: Int, _ w: Float) {
                    total += w
                    normal += w * surfels.normal[k]
                    planeDistance += w * (surfels.normal[k] * (p - surfels.position[k])).sum()
                    if let colors = cloud.colors {
                        let c = colors[surfels.usable[k]]
                        rgb += w * SIMD3(Float(c.r), Float(c.g), Float(c.b))
                    }
                }
                // A surfel that never received a prediction (label -1 in the map) shows no
                // label; its uniform probabilities are not evidence.
                func addEvidence(_ i: Int, _ w: Float) {
                    if let probabilities, evidence[i] {
                        let base = i * probabilities.classCount
                        for c in 0..<classCount { scores[c] += w * probabilities.values[base + c] }
                        labelled += w
                    } else if let label = cloud.labels?[i], label >= 0, Int(label) < classCount {
                        scores[Int(label)] += w * (cloud.labelConfidence?[i] ?? 1)
                        labelled += w
                    }
                }
                // The Gaussian neighbourhood: its weight of surfel k at the vertex, if it reaches.
                func gaussian(_ k: Int) -> Float? {
                    let d = p - surfels.position[k]
                    let d2 = (d * d).sum()
                    let s = min(max(surfels.radius[k], 0.5 * voxel), voxel)
                    guard d2 <= 4 * s * s else { return nil }
                    return surfels.weight[k] * exp(-d2 / (2 * s * s))
                }
                grid.forEach(near: p) { k in
                    let d = p - surfels.position[k]
                    let d2 = (d * d).sum()
                    if d2 < nearestDistance { nearestDistance = d2; nearest = k }
                    if let w = gaussian(k) { accumulate(k, w) }
                }
                let reached = total > 0
                if !reached && nearest >= 0 { accumulate(nearest, 1) }
                let length = (normal * normal).sum().squareRoot()
                normalsOut[v] = length > 0 ? normal / length : faceNormals[v]
                if refinePositions, reached, length > 0 {
                    let limit = maximumShift * voxel
                    let shift = min(max(planeDistance / total, -limit), limit)
                    positionsOut[v] = p - shift * (normal / length)
                }
                if total > 0, cloud.colors != nil {
                    let c = rgb / total
                    colorsOut[v] = RGB8(UInt8(clamping: Int(c.x.rounded())), UInt8(clamping: Int(c.y.rounded())), UInt8(clamping: Int(c.z.rounded())))
                }
                guard classCount > 0 else { return }
                var covered = false
                if labelsFromDiscs {
                    // Where the vertex (at its final position) lies inside surfels' discs, its
                    // label is what the map shows there: those surfels fused as the map fuses
                    // them (Σ confidence x probability).
                    let q = positionsOut[v]
                    discs.forEachDisc(containing: q, grid: grid) { k in
                        covered = true
                        addEvidence(surfels.usable[k], surfels.weight[k])
                    }
                }
                if !covered {
                    // Only where no disc covers the vertex does the Gaussian neighbourhood decide
                    // its classes (the same surfels and weights as its geometry above).
                    grid.forEach(near: p) { k in
                        if let w = gaussian(k) { addEvidence(surfels.usable[k], w) }
                    }
                    if !reached && nearest >= 0 { addEvidence(surfels.usable[nearest], 1) }
                }
                if wantProbabilities, labelled == 0 {
                    // No evidence: uniform, as the map writes such surfels.
                    for c in 0..<classCount { fusedOut[v * classCount + c] = 1 / Float(classCount) }
                }
                guard classCount > 0, labelled > 0 else { return }
                var best = -1
                for c in 0..<classCount where c != unlabelledClass && (best < 0 || scores[c] > scores[best]) { best = c }
                guard best >= 0 else { return }
                if probabilities != nil {
                    let sum = scores.reduce(0, +)
                    guard sum > 0 else { return }
                    labelsOut[v] = Int32(best)
                    confidenceOut[v] = scores[best] / sum
                    if wantProbabilities { for c in 0..<classCount { fusedOut[v * classCount + c] = scores[c] / sum } }
                } else if scores[best] > 0 {
                    labelsOut[v] = Int32(best)
                    confidenceOut[v] = scores[best] / labelled
                }
              }
            }
        }}}}}}
        var out = PointCloud(positions: refined)
        out.normals = normals
        if hasLabels, classCount > 0 {
            out.labels = labels
            out.labelConfidence = labelConfidence
            if wantProbabilities { out.classProbabilities = (classCount: classCount, values: fused) }
        }
        if colorMode == .semantic, hasLabels, let classSet = cloud.classSet {
            out.colors = labels.map { $0 >= 0 && Int($0) < classSet.count ? classSet.color(of: Int($0)) : RGB8(128, 128, 128) }
        } else if colorMode != .none, cloud.colors != nil {
            out.colors = colors
        }
        return out
    }

    /// Whether each surfel's probabilities carry evidence: its map label is not -1 (the map
    /// writes -1 for surfels no prediction reached), or, without a label column, its
    /// probabilities are not all equal.
    static func hasEvidence(_ cloud: PointCloud, _ probabilities: (classCount: Int, values: [Float])) -> [Bool] {
        if let labels = cloud.labels { return labels.map { $0 >= 0 } }
        let c = probabilities.classCount
        return (0..<cloud.count).map { i in
            let row = probabilities.values[(i * c)..<((i + 1) * c)]
            guard let lo = row.min(), let hi = row.max() else { return false }
            return hi > lo
        }
    }

    /// Area-weighted normals of the faces around each vertex, for vertices no surfel reaches.
    static func vertexNormalsFromFaces(_ positions: [SIMD3<Float>], _ faces: [SIMD3<UInt32>]) -> [SIMD3<Float>] {
        var normals = [SIMD3<Float>](repeating: .zero, count: positions.count)
        for f in faces {
            let a = positions[Int(f.x)], b = positions[Int(f.y)], c = positions[Int(f.z)]
            let e1 = b - a, e2 = c - a
            let cross = SIMD3(e1.y * e2.z - e1.z * e2.y, e1.z * e2.x - e1.x * e2.z, e1.x * e2.y - e1.y * e2.x)
            normals[Int(f.x)] += cross; normals[Int(f.y)] += cross; normals[Int(f.z)] += cross
        }
        return normals.map { let l = ($0 * $0).sum().squareRoot(); return l > 0 ? $0 / l : $0 }
    }
}

/// Surfels bucketed in a uniform grid (sorted by cell, with a hash of cell → range) for
/// neighbourhood queries.
struct SurfelGrid {
    let cell: Float
    private var order: [Int32] = []
    private var ranges = CellRanges()

    init(surfels: Surfels, cell: Float) {
        self.init(positions: surfels.position, ids: nil, cell: cell)
    }

    /// A grid of `positions`; `forEach` reports `ids[j]` for position j (j itself without ids).
    init(positions: [SIMD3<Float>], ids: [Int32]?, cell: Float) {
        self.cell = cell
        let keys = positions.map { Self.key($0, cell) }
        let sorted = keys.indices.sorted { a, b in
            let ka = keys[a], kb = keys[b]
            return (ka.x, ka.y, ka.z, a) < (kb.x, kb.y, kb.z, b)
        }
        order = sorted.map { ids?[$0] ?? Int32($0) }
        var cells: [(SIMD3<Int32>, Range<Int>)] = []
        var i = 0
        while i < sorted.count {
            let k = keys[sorted[i]]
            var j = i + 1
            while j < sorted.count && keys[sorted[j]] == k { j += 1 }
            cells.append((k, i..<j))
            i = j
        }
        ranges = CellRanges(cells)
    }

    @inline(__always) static func key(_ p: SIMD3<Float>, _ cell: Float) -> SIMD3<Int32> {
        let q = (p / cell).rounded(.down)
        return SIMD3(Int32(clamping: Int(q.x)), Int32(clamping: Int(q.y)), Int32(clamping: Int(q.z)))
    }

    /// Calls `body` with the surfels in the 27 cells around `p`, the cell of `p` first, until it
    /// returns false: a search that has what it needs stops inside a crowded cell.
    func scan(near p: SIMD3<Float>, _ body: (Int) -> Bool) {
        let c = Self.key(p, cell)
        if let range = ranges.range(of: c) {
            for j in range where !body(Int(order[j])) { return }
        }
        for dz in -1...1 {
            for dy in -1...1 {
                for dx in -1...1 where dx != 0 || dy != 0 || dz != 0 {
                    guard let range = ranges.range(of: c &+ SIMD3(Int32(dx), Int32(dy), Int32(dz))) else { continue }
                    for j in range where !body(Int(order[j])) { return }
                }
            }
        }
    }

    /// Calls `body` with every surfel in the 27 cells around `p` (all within one cell of it).
    func forEach(near p: SIMD3<Float>, _ body: (Int) -> Void) {
        let c = Self.key(p, cell)
        for dz in -1...1 {
            for dy in -1...1 {
                for dx in -1...1 {
                    guard let range = ranges.range(of: c &+ SIMD3(Int32(dx), Int32(dy), Int32(dz))) else { continue }
                    for j in range { body(Int(order[j])) }
                }
            }
        }
    }
}

/// Finds the surfels whose discs contain a point (`DiscIndex.contains`, the test
/// `LabelAgreementMeasure` applies to the map), wherever their centres are.
///
/// A disc containing q has its centre within r·√2 of q. The attribute grid reaches one cell
/// (two voxels) around a point, so it finds every disc up to r = √2 voxels; at a voxel of the
/// median radius that misses many far and oblique surfels' discs. The wider discs go into
/// further grids by size, each with cells twice the previous one's, so a lookup reaches each
/// disc from at most about twice its own reach: a few large surfels do not make every lookup scan
/// a wide neighbourhood of small ones. Discs over 16 times the median radius are left out, as
/// `DiscIndex` leaves them out.
struct DiscLookup {
    /// Per surfel: its disc is wider than the attribute grid reaches (looked up in `wide`), or
    /// oversized (never looked up).
    private let inWide: [Bool]
    private let excluded: [Bool]
    /// Grids of the wider discs, cells 2, 4, 8, ... times the attribute grid's.
    private let wide: [SurfelGrid]
    private let surfels: Surfels

    init(surfels: Surfels, grid: SurfelGrid) {
        self.surfels = surfels
        let n = surfels.position.count
        var radii = surfels.radius.filter { $0.isFinite && $0 > 0 }
        radii.sort()
        let median = radii.isEmpty ? 0 : radii[radii.count / 2]
        var inWide = [Bool](repeating: false, count: n), excluded = [Bool](repeating: false, count: n)
        var levels: [Int: (cell: Float, positions: [SIMD3<Float>], ids: [Int32])] = [:]
        for k in 0..<n {
            let r = surfels.radius[k]
            guard r.isFinite, r > 0, r <= 16 * median else { excluded[k] = true; continue }
            let extent = r * Float(2).squareRoot()
            guard extent > grid.cell else { continue }
            inWide[k] = true
            var level = 1, cell = 2 * grid.cell
            while cell < extent { cell *= 2; level += 1 }
            levels[level, default: (cell, [], [])].positions.append(surfels.position[k])
            levels[level, default: (cell, [], [])].ids.append(Int32(k))
        }
        self.inWide = inWide
        self.excluded = excluded
        wide = levels.keys.sorted().map { level in
            SurfelGrid(positions: levels[level]!.positions, ids: levels[level]!.ids, cell: levels[level]!.cell)
        }
    }

    /// Calls `body` with every surfel (index into `surfels`) whose disc contains `q`, once each.
    @inline(__always)
    func forEachDisc(containing q: SIMD3<Float>, grid: SurfelGrid, _ body: (Int) -> Void) {
        grid.forEach(near: q) { k in
            guard !inWide[k], !excluded[k],
                  DiscIndex.contains(q - surfels.position[k], normal: surfels.normal[k], radius: surfels.radius[k]) else { return }
            body(k)
        }
        for level in wide {
            level.forEach(near: q) { k in
                guard DiscIndex.contains(q - surfels.position[k], normal: surfels.normal[k], radius: surfels.radius[k]) else { return }
                body(k)
            }
        }
    }
}

/// A fixed table from grid cells to ranges of a sorted array, looked up 27 times per vertex.
///
/// Swift's `Dictionary` hashes each `SIMD3<Int32>` key with SipHash, which was a sixth of the
/// meshing time of a 900k-vertex mesh. The keys here are fixed once built, so an open-addressing
/// table with a multiplicative hash does: linear probing in a power-of-two table at most half
/// full, full keys compared.
struct CellRanges {
    private var keys: [SIMD3<Int32>] = []
    /// Per slot: the range's bounds; `start` -1 marks an empty slot.
    private var starts: [Int32] = [], ends: [Int32] = []
    private var mask = 0

    init() {}

    /// `cells` must not repeat a cell (the last one wins if it does).
    init(_ cells: [(SIMD3<Int32>, Range<Int>)]) {
        var capacity = 1
        while capacity < 2 * cells.count { capacity *= 2 }
        mask = capacity - 1
        keys = [SIMD3<Int32>](repeating: .zero, count: capacity)
        starts = [Int32](repeating: -1, count: capacity)
        ends = [Int32](repeating: 0, count: capacity)
        for (cell, range) in cells {
            precondition(range.lowerBound >= 0 && range.upperBound <= Int(Int32.max), "CellRanges: range out of Int32")
            var slot = Self.hash(cell) & mask
            while starts[slot] >= 0 && keys[slot] != cell { slot = (slot + 1) & mask }
            keys[slot] = cell
            starts[slot] = Int32(range.lowerBound)
            ends[slot] = Int32(range.upperBound)
        }
    }

    @inline(__always)
    static func hash(_ c: SIMD3<Int32>) -> Int {
        let x = UInt64(UInt32(bitPattern: c.x)), y = UInt64(UInt32(bitPattern: c.y)), z = UInt64(UInt32(bitPattern: c.z))
        let h = (x &* 0x9E37_79B9_7F4A_7C15) ^ (y &* 0xC2B2_AE3D_27D4_EB4F) ^ (z &* 0x1656_67B1_9E37_79F9)
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The range stored for `cell`, or nil.
    @inline(__always)
    func range(of cell: SIMD3<Int32>) -> Range<Int>? {
        guard !starts.isEmpty else { return nil }
        var slot = Self.hash(cell) & mask
        while true {
            let start = starts[slot]
            if start < 0 { return nil }
            if keys[slot] == cell { return Int(start)..<Int(ends[slot]) }
            slot = (slot + 1) & mask
        }
    }
}
