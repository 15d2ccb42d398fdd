import Export
import Foundation
import Semantics

/// How far a mesh's vertex labels agree with the surfel map it was made from (issue 10's
/// "mesh labels agree with the surfel map's labels"), under two stated definitions of "the map's
/// label at a vertex", next to how far the map agrees with itself under the same definitions.
///
/// - **Covering discs** (the label the map shows where the vertex is): the surfels whose discs
///   contain the point, i.e. the point lies within the surfel's radius of its centre along its
///   plane and within its radius of its plane. Their labels are fused as the map's own labels
///   are: Σ confidence x probability over the surfels that received a prediction (argmax, never
///   the class set's "unlabelled" class); for maps without probabilities, Σ confidence x label
///   confidence per label. Where only surfels without a label cover the point, the map shows no
///   label (-1), and a vertex agrees only if it is unlabelled too. Points inside no disc are
///   counted as `uncovered`, not compared.
/// - **Nearest surfel**: the label (-1 included) of the nearest surfel within 2 cm or twice the
///   median surfel radius, whichever is larger (`nearestRadius`).
///
/// Surfels without a normal or radius, or with a radius over 16 times the median, are left out.
///
/// The map's self-consistency uses the same definitions at each surfel's centre with the surfel
/// itself left out: a mesh cannot be expected to agree with the map more often than the map's
/// neighbouring surfels agree with each other.
public struct LabelAgreement: Sendable, Equatable {
    public struct Tally: Sendable, Equatable {
        public var compared = 0, agreeing = 0
        public var fraction: Double? { compared > 0 ? Double(agreeing) / Double(compared) : nil }
        mutating func add(_ agrees: Bool) { compared += 1; if agrees { agreeing += 1 } }
    }

    public var vertices = 0
    /// Vertices against the label of the discs that contain them.
    public var covering = Tally()
    /// Vertices inside no surfel's disc.
    public var uncovered = 0
    /// `covering` split by how decided the map is there: the shown label's share of the fused
    /// scores in [0, 0.5), [0.5, 0.7), [0.7, 0.9), [0.9, 1]. Points where the map shows no label
    /// are in the first bin.
    public var coveringByShare: [Tally] = Array(repeating: Tally(), count: 4)
    public static let shareBins: [Float] = [0, 0.5, 0.7, 0.9]
    /// Vertices against the nearest surfel's label.
    public var nearest = Tally()
    /// How far the nearest surfel was searched, metres.
    public var nearestRadius: Float = 0
    /// Surfels against the label the other surfels' discs show at their centre, and against the
    /// nearest other surfel.
    public var mapCovering = Tally(), mapNearest = Tally()
}

public enum LabelAgreementMeasure {
    /// Least search radius of the nearest-surfel definition, metres.
    public static let minimumNearestRadius: Float = 0.02

    /// - Parameters:
    ///   - mesh: the mesh's vertices (positions and `label`).
    ///   - map: the surfel map (positions, normals, radius, and labels and/or probabilities;
    ///     confidence and label confidence when present).
    public static func measure(mesh: PointCloud, map: PointCloud, source: String = "map", threads: Int = 1) throws -> LabelAgreement {
        guard let normals = map.normals else { throw MeshingError.missingNormals(source: source) }
        guard let mapLabels = map.labels else {
            throw MeshingError.invalidParameter(name: "surfel map", value: source, reason: "it has no 'label' property to compare with")
        }
        guard let vertexLabels = mesh.labels else {
            throw MeshingError.invalidParameter(name: "mesh", value: "", reason: "its vertices have no 'label' property")
        }
        let index = DiscIndex(map: map, normals: normals)
        var result = LabelAgreement()
        result.vertices = mesh.count
        result.nearestRadius = index.centreCell

        let meshShown = shownLabels(at: mesh.positions, excludingSelf: false, map: map, labels: mapLabels, index: index, threads: threads)
        let meshNearest = nearestLabels(at: mesh.positions, excludingSelf: false, labels: mapLabels, index: index, threads: threads)
        for v in 0..<mesh.count {
            let label = vertexLabels[v] < 0 ? -1 : vertexLabels[v]
            if let (shown, share) = meshShown[v] {
                result.covering.add(label == shown)
                let bin = LabelAgreement.shareBins.lastIndex { share >= $0 } ?? 0
                result.coveringByShare[bin].add(label == shown)
            } else {
                result.uncovered += 1
            }
            if let near = meshNearest[v] { result.nearest.add(label == near) }
        }
        let selfShown = shownLabels(at: map.positions, excludingSelf: true, map: map, labels: mapLabels, index: index, threads: threads)
        let selfNearest = nearestLabels(at: map.positions, excludingSelf: true, labels: mapLabels, index: index, threads: threads)
        for i in 0..<map.count where index.usable[i] {
            let label = mapLabels[i] < 0 ? -1 : mapLabels[i]
            if let (shown, _) = selfShown[i] { result.mapCovering.add(label == shown) }
            if let near = selfNearest[i] { result.mapNearest.add(label == near) }
        }
        return result
    }

    /// The label the map shows at each point (nil: inside no disc) and its share of the scores.
    static func shownLabels(at points: [SIMD3<Float>], excludingSelf: Bool, map: PointCloud, labels: [Int32], index: DiscIndex,
                            threads: Int) -> [(Int32, Float)?] {
        let probabilities = map.classProbabilities
        let classCount = probabilities?.classCount ?? max(map.classSet?.count ?? 0, Int((labels.max() ?? -1) + 1))
        let unlabelled = map.classSet?.unlabelledId
        var out = [(Int32, Float)?](repeating: nil, count: points.count)
        out.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let buffer = buffer
            parallelFor(points.count, threads: threads) { q in
                let p = points[q]
                let skip = excludingSelf ? q : -1
                var scores = [Float](repeating: 0, count: max(classCount, 1))
                var covered = false, evidence: Float = 0
                index.forEachDisc(containing: p) { i in
                    guard i != skip else { return }
                    covered = true
                    guard labels[i] >= 0 else { return }
                    let w = index.weight[i]
                    if let probabilities {
                        let base = i * probabilities.classCount
                        for c in 0..<classCount { scores[c] += w * probabilities.values[base + c] }
                        evidence += w
                    } else if Int(labels[i]) < classCount {
                        scores[Int(labels[i])] += w * (map.labelConfidence?[i] ?? 1)
                        evidence += w
                    }
                }
                guard covered else { return }
                var best = -1
                for c in 0..<classCount where c != unlabelled && (best < 0 || scores[c] > scores[best]) { best = c }
                guard evidence > 0, best >= 0, scores[best] > 0 else { buffer[q] = (-1, 0); return }
                let total = probabilities != nil ? scores.reduce(0, +) : evidence
                buffer[q] = (Int32(best), scores[best] / total)
            }
        }
        return out
    }

    /// The label (-1 for none) of the nearest surfel within `index.centreCell` of each point.
    static func nearestLabels(at points: [SIMD3<Float>], excludingSelf: Bool, labels: [Int32], index: DiscIndex, threads: Int) -> [Int32?] {
        var out = [Int32?](repeating: nil, count: points.count)
        out.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let buffer = buffer
            parallelFor(points.count, threads: threads) { q in
                let skip = excludingSelf ? q : -1
                let radius = index.centreCell
                var best = -1, bestDistance = radius * radius
                index.forEachCentre(near: points[q], within: radius) { i, d2 in
                    guard i != skip, d2 < bestDistance || (d2 == bestDistance && best >= 0 && i < best) else { return }
                    best = i; bestDistance = d2
                }
                if best >= 0 { buffer[q] = labels[best] < 0 ? -1 : labels[best] }
            }
        }
        return out
    }
}

/// Surfel discs in a hash grid: each surfel is listed in every cell its disc's bounding box
/// (half-size radius x √2, the farthest a contained point can be from the centre) touches, so
/// the discs containing a point are all listed in that point's cell; centres are in a second
/// grid for nearest-surfel queries.
struct DiscIndex {
    let positions: [SIMD3<Float>]
    var normal: [SIMD3<Float>] = []
    var radius: [Float] = []
    var weight: [Float] = []
    var usable: [Bool] = []
    let cell: Float
    private var discs: [SIMD3<Int32>: [Int32]] = [:]
    private var centres: [SIMD3<Int32>: [Int32]] = [:]
    /// Cell of the centre grid, and the nearest-surfel search radius.
    let centreCell: Float

    init(map: PointCloud, normals: [SIMD3<Float>]) {
        positions = map.positions
        var radii: [Float] = []
        for i in 0..<map.count {
            let n = normals[i], p = map.positions[i]
            let length = (n * n).sum().squareRoot()
            let r = map.radius?[i] ?? 0
            let ok = length.isFinite && length > 0.5 && length < 2 && r.isFinite && r > 0 && r < 1
                && Self.inRange(p)
            usable.append(ok)
            normal.append(ok ? n / length : .zero)
            radius.append(ok ? r : 0)
            let c = map.confidence?[i] ?? 1
            weight.append(c.isFinite && c > 0 ? c : 1e-6)
            if ok { radii.append(r) }
        }
        radii.sort()
        // Cells about four times the typical disc: most discs touch one to eight cells.
        let median = radii.isEmpty ? 0.01 : radii[radii.count / 2]
        cell = max(0.001, 4 * median)
        centreCell = max(LabelAgreementMeasure.minimumNearestRadius, 2 * median)
        for i in 0..<map.count where usable[i] {
            // Discs over 16 times the median radius (none in the maps `reconstruct` writes,
            // whose radii stay within a few times each other) would list in thousands of cells.
            guard radius[i] <= 16 * median else { usable[i] = false; continue }
            let reach = radius[i] * Float(2).squareRoot()
            let lo = Self.key(positions[i] - reach, cell), hi = Self.key(positions[i] + reach, cell)
            for z in lo.z...hi.z { for y in lo.y...hi.y { for x in lo.x...hi.x { discs[SIMD3(x, y, z), default: []].append(Int32(i)) } } }
            centres[Self.key(positions[i], centreCell), default: []].append(Int32(i))
        }
    }

    /// Finite and within 10 km of the origin (grid keys stay in Int32).
    static func inRange(_ p: SIMD3<Float>) -> Bool {
        p.x.isFinite && p.y.isFinite && p.z.isFinite && max(abs(p.x), abs(p.y), abs(p.z)) < 1e4
    }

    static func key(_ p: SIMD3<Float>, _ cell: Float) -> SIMD3<Int32> {
        let q = (p / cell).rounded(.down)
        return SIMD3(Int32(clamping: Int(q.x)), Int32(clamping: Int(q.y)), Int32(clamping: Int(q.z)))
    }

    /// Calls `body` with every surfel whose disc contains `p` (see `LabelAgreement`).
    func forEachDisc(containing p: SIMD3<Float>, _ body: (Int) -> Void) {
        guard Self.inRange(p), let list = discs[Self.key(p, cell)] else { return }
        for j in list {
            let i = Int(j)
            if Self.contains(p - positions[i], normal: normal[i], radius: radius[i]) { body(i) }
        }
    }

    /// Whether a disc (unit `normal`, `radius`) contains the point at `offset` from its centre:
    /// within the radius of the centre along the disc's plane and within the radius of the
    /// plane. The mesher labels vertices with the same test (`AttributeTransfer`).
    @inline(__always)
    static func contains(_ offset: SIMD3<Float>, normal: SIMD3<Float>, radius r: Float) -> Bool {
        let d = (offset * normal).sum()
        guard abs(d) <= r else { return false }
        let lateral = offset - d * normal
        return (lateral * lateral).sum() <= r * r
    }

    /// Calls `body` with every usable surfel centre within `within` (≤ `centreCell`) of `p`.
    func forEachCentre(near p: SIMD3<Float>, within: Float, _ body: (Int, Float) -> Void) {
        guard Self.inRange(p) else { return }
        let c = Self.key(p, centreCell)
        for dz: Int32 in -1...1 { for dy: Int32 in -1...1 { for dx: Int32 in -1...1 {
            guard let list = centres[c &+ SIMD3(dx, dy, dz)] else { continue }
            for j in list {
                let d = positions[Int(j)] - p
                let d2 = (d * d).sum()
                if d2 <= within * within { body(Int(j), d2) }
            }
        } } }
    }
}
