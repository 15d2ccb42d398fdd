import Dispatch
import Export
import Foundation
import Imaging
import Semantics

/// Why a map cannot be meshed.
public enum MeshingError: Error, CustomStringConvertible, Equatable {
    /// The points carry no normals, so which side of the surface is free space is unknown.
    case missingNormals(source: String)
    case invalidParameter(name: String, value: String, reason: String)
    /// The map is too large for the voxel size (coordinates or memory).
    case tooLarge(source: String, reason: String)

    public var description: String {
        switch self {
        case .missingNormals(let source):
            return "\(source): the points have no normals (nx ny nz); meshing needs oriented surfels, as `semfuse reconstruct` writes them"
        case .invalidParameter(let name, let value, let reason):
            return "invalid \(name) \(value): \(reason)"
        case .tooLarge(let source, let reason):
            return "\(source): \(reason)"
        }
    }
}

/// How surfels become a surface.
public struct MeshingParameters: Sendable, Equatable {
    /// Voxel edge in metres; nil picks `voxelsPerMedianRadius` times the median surfel radius.
    public var voxelSize: Float?
    /// Automatic voxel size as a multiple of the median surfel radius. Marching cubes needs all
    /// eight corners of a cube observed, so the surface ends up to a voxel inside the last
    /// surfels: at 1.5 the borders left 0.2-0.9 points more of the measured surface uncovered
    /// than at 1, and 0.85 covers 0.1-0.8 points more again (docs/results.md). Below 1 the
    /// attributes, the coarsening's surfel count and the smallest piece kept stay at the scale
    /// of the median radius (`SurfelMesher.scales`), so labels stay as sharp as the surfels'.
    public var voxelsPerMedianRadius: Float = 0.85
    /// Bounds of the automatic voxel size in metres.
    public var automaticVoxelRange: ClosedRange<Float> = 0.002...0.05
    /// Half-width of the band along each surfel's normal that it writes, in voxels. A cube the
    /// surface crosses has corners up to √3 voxels from it, so less than that opens holes.
    public var truncationVoxels: Float = 2
    /// A voxel's summed weight below this counts as unobserved: cubes touching it make no
    /// triangles, so no surface is invented away from the surfels.
    public var minimumWeight: Float = 0.05
    /// Upper bound on the volume's memory, checked before it is allocated.
    public var memoryLimitBytes: Int = 8 << 30
    /// Connected pieces with fewer faces are dropped: specks around stray surfels (a lone
    /// surfel makes a few triangles), not surface. Counted at the attribute scale: with a voxel
    /// finer than that, a piece needs as much area as this many faces there.
    public var minimumComponentFaces: Int = 12
    /// Removes faces beyond the surfels' discs (see `SparseVolume.covered`): without it the
    /// volume's Gaussian tails grow every border of the map outwards by up to two σ.
    public var trimUncovered = true
    /// Moves each vertex onto the planes of the surfels around it (see `AttributeTransfer`):
    /// marching cubes' linear interpolation leaves vertices a fraction of a voxel off curved
    /// surfaces.
    public var refineVertices = true
    /// Labels a vertex that lies inside surfels' discs with what the map shows there (those
    /// surfels fused as the map fuses them); off, every vertex fuses the Gaussian neighbourhood
    /// (see `AttributeTransfer`).
    public var labelsFromDiscs = true
    /// Edges shorter than 4/5 of this many times the local surfel spacing are collapsed
    /// (`MeshDecimation`); nil or 0 keeps marching cubes' even spread. Marching cubes puts one or
    /// two vertices in every voxel of surface, so a far wall seen by a few frames gets the vertex
    /// density of a table top seen close up in every frame. Coarsened, the mesh's vertices
    /// follow the density of the measurements as the surfels do, with about 80 % of the
    /// vertices on 50 frames of the 7-Scenes kitchen and the same surface (docs/results.md).
    public var coarsening: Float? = 1
    /// How far (root mean square, in voxels) collapsing edges may move the surface.
    public var decimationErrorVoxels: Float = 0.25
    public var threads: Int = 1

    public init(voxelSize: Float? = nil, threads: Int = 1) {
        self.voxelSize = voxelSize
        self.threads = threads
    }
}

/// What meshing did, for the console and the benchmark.
public struct MeshingReport: Sendable {
    public var voxelSize: Float = 0
    public var blocks = 0
    public var surfelsUsed = 0
    public var surfelsSkipped = 0
    /// Of those, the points whose normal is not finite or not of about unit length (0.5-2).
    public var surfelsWithoutUnitNormal = 0
    /// Faces dropped as parts of pieces smaller than `minimumComponentFaces`.
    public var facesDropped = 0
    /// The smallest piece kept, in faces at the volume's voxel (`minimumComponentFaces` scaled
    /// to the attribute scale's area).
    public var minimumComponentFaces = 0
    /// Faces removed because they lay beyond every surfel's disc (`trimUncovered`).
    public var facesTrimmed = 0
    /// Vertices removed where the mesh was denser than the surfels (`coarsening`).
    public var verticesCollapsed = 0
    /// Non-zero when the coarsening was skipped because its working memory, this many bytes,
    /// would exceed `MeshingParameters.memoryLimitBytes`.
    public var coarseningSkippedBytes = 0
    public var seconds: (volume: Double, surface: Double, attributes: Double) = (0, 0, 0)
    /// The median of the radii estimated for a cloud that had none (`SurfelMesher.estimatedRadii`)
    /// and the time that took (not part of `seconds`); nil when the cloud had its own.
    public var estimatedRadii: (median: Float, seconds: Double)?
    public var volumeBytes: Int { blocks * SparseVolume.blockVoxels * 8 }
}

/// Turns an oriented surfel cloud into a triangle mesh: every surfel writes the signed distance
/// along its normal, weighted by its confidence and a Gaussian of the lateral distance from its
/// centre, into the voxels near its disc; marching cubes extracts the zero level where all eight
/// corners of a cube were observed; where the surfels are sparser than the voxels, short edges
/// are collapsed (`MeshDecimation`); each vertex then takes the confidence-weighted fusion of the
/// class probabilities (and colours and normals) of the surfels around it.
///
/// Signed distances are positive on the side the normals point to (towards the cameras that
/// saw the surface), so triangles face the viewer.
public enum SurfelMesher {
    /// A cloud without radii gets each point's from its neighbours (`estimatedRadii`), so any
    /// oriented point cloud meshes without holes at its own spacing.
    public static func mesh(_ cloud: PointCloud, source: String = "map", parameters: MeshingParameters,
                            colorMode: MeshColor = .semantic, includeProbabilities: Bool = false) throws -> (mesh: TriangleMesh, report: MeshingReport) {
        guard let normals = cloud.normals else { throw MeshingError.missingNormals(source: source) }
        if let problem = cloud.validationProblem() { throw MeshingError.tooLarge(source: source, reason: problem) }
        var report = MeshingReport()
        var cloud = cloud
        if cloud.radius == nil {
            let start = DispatchTime.now().uptimeNanoseconds
            let radii = estimatedRadii(cloud.positions, threads: parameters.threads)
            cloud.radius = radii
            let positive = radii.filter { $0 > 0 }.sorted()
            report.estimatedRadii = (median: positive.isEmpty ? 0 : positive[positive.count / 2],
                                     seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let (voxel, scale) = try scales(cloud, parameters: parameters)
        report.voxelSize = voxel

        let clock = { DispatchTime.now().uptimeNanoseconds }
        var t0 = clock()
        func lap() -> Double { let t1 = clock(); defer { t0 = t1 }; return Double(t1 - t0) / 1e9 }

        let surfels = Surfels(cloud: cloud, normals: normals, voxel: voxel)
        report.surfelsUsed = surfels.usable.count
        report.surfelsSkipped = cloud.count - surfels.usable.count
        report.surfelsWithoutUnitNormal = surfels.withoutUnitNormal
        var volume = try integrate(surfels, source: source, voxel: voxel, parameters: parameters)
        report.blocks = volume.blockCount
        report.seconds.volume = lap()

        var (positions, faces) = try MarchingCubes.extract(&volume, minimumWeight: parameters.minimumWeight,
                                                           threads: parameters.threads, source: source)
        // Trim surface the Gaussian tails extrapolated beyond the surfels: a face is kept when at
        // least two of its vertices lie on covered voxels (within a surfel's disc).
        var before = faces.count
        if parameters.trimUncovered {
            let covered = positions.map { volume.isCovered(near: $0) }
            faces = faces.filter { f in (covered[Int(f.x)] ? 1 : 0) + (covered[Int(f.y)] ? 1 : 0) + (covered[Int(f.z)] ? 1 : 0) >= 2 }
            report.facesTrimmed = before - faces.count
        }
        volume = SparseVolume(voxelSize: voxel)
        before = faces.count
        let minimumFaces = Int((Float(parameters.minimumComponentFaces) * (scale / voxel) * (scale / voxel)).rounded(.up))
        report.minimumComponentFaces = minimumFaces
        (positions, faces) = MeshCleanup.dropSmallComponents(positions, faces, minimumFaces: minimumFaces)
        report.facesDropped = before - faces.count
        // The attribute pass's neighbourhood grid, shared with the decimation's density count.
        let grid = SurfelGrid(surfels: surfels, cell: 2 * scale)
        if let factor = parameters.coarsening, factor > 0, !faces.isEmpty {
            guard factor.isFinite, factor <= 100 else {
                throw MeshingError.invalidParameter(name: "coarsening", value: "\(factor)", reason: "must be between 0 and 100")
            }
            let bytes = MeshDecimation.workingBytes(vertices: positions.count, faces: faces.count)
            if bytes > parameters.memoryLimitBytes {
                // The volume is gone by now, but its limit is what the user allowed; an even mesh
                // is still a complete one.
                report.coarseningSkippedBytes = bytes
            } else {
                let targets = targetEdgeLengths(positions, surfels: surfels, grid: grid, spacingFactor: factor,
                                                threads: parameters.threads)
                let result = MeshDecimation.decimate(positions, faces, targetEdge: targets,
                                                     maximumError: parameters.decimationErrorVoxels * voxel,
                                                     threads: parameters.threads)
                (positions, faces) = (result.positions, result.faces)
                report.verticesCollapsed = result.collapsed
            }
        }
        report.seconds.surface = lap()

        var vertices = AttributeTransfer.transfer(to: positions, faces: faces, from: cloud, surfels: surfels, voxel: scale,
                                                  colorMode: colorMode, includeProbabilities: includeProbabilities,
                                                  refinePositions: parameters.refineVertices, labelsFromDiscs: parameters.labelsFromDiscs,
                                                  grid: grid, threads: parameters.threads)
        vertices.classSet = cloud.classSet
        report.seconds.attributes = lap()
        return (TriangleMesh(vertices: vertices, faces: faces), report)
    }

    /// The volume's voxel, and the scale of the attribute pass (its kernel's bounds and grid),
    /// the coarsening's surfel count and the smallest piece kept. A given voxel is both. An
    /// automatic one is `voxelsPerMedianRadius` times the median surfel radius, and the
    /// attribute scale is the larger of it and the radius itself: a finer volume reaches
    /// further into the borders, while the labels keep the kernel the surfels' size calls for.
    static func scales(_ cloud: PointCloud, parameters: MeshingParameters) throws -> (voxel: Float, attributeScale: Float) {
        if let size = parameters.voxelSize {
            guard size.isFinite, size >= 1e-4, size <= 10 else {
                throw MeshingError.invalidParameter(name: "voxel size", value: "\(size)", reason: "must be between 0.1 mm and 10 m")
            }
            return (size, size)
        }
        let factor = parameters.voxelsPerMedianRadius
        guard factor.isFinite, factor > 0, factor <= 100 else {
            throw MeshingError.invalidParameter(name: "voxels per median radius", value: "\(factor)", reason: "must be above 0 and at most 100")
        }
        let range = parameters.automaticVoxelRange
        // Without radii (`mesh` estimates them first; a direct caller may not) there is no size
        // to follow: a centimetre.
        guard var valid = cloud.radius?.filter({ $0.isFinite && $0 > 0 }), !valid.isEmpty else { return (0.01, 0.01) }
        valid.sort()
        let median = valid[valid.count / 2]
        func clamped(_ v: Float) -> Float { min(max(v, range.lowerBound), range.upperBound) }
        let voxel = clamped(median * factor)
        return (voxel, max(voxel, clamped(median)))
    }

    /// Per vertex, `spacingFactor` times the spacing of the surfels around it, 1/√density. The
    /// density is their count within two voxels (the attribute grid's reach) over that disc's
    /// area, or within four voxels where fewer than four surfels are that near: far surfaces are
    /// covered by few wide surfels. Zero where none is near, which keeps the vertex.
    static func targetEdgeLengths(_ positions: [SIMD3<Float>], surfels: Surfels, grid: SurfelGrid, spacingFactor: Float,
                                  threads: Int) -> [Float] {
        var targets = [Float](repeating: 0, count: positions.count)
        func edge(count: Int, radius: Float) -> Float {
            spacingFactor * (Float.pi * radius * radius / Float(count)).squareRoot()
        }
        func count(_ grid: SurfelGrid, near p: SIMD3<Float>) -> Int {
            let r2 = grid.cell * grid.cell
            var count = 0
            grid.forEach(near: p) { k in
                let d = surfels.position[k] - p
                if (d * d).sum() <= r2 { count += 1 }
            }
            return count
        }
        // -1 marks the vertices with fewer than four surfels that near, for the wider count.
        targets.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            parallelFor(positions.count, threads: threads) { v in
                let n = count(grid, near: positions[v])
                out[v] = n >= 4 ? edge(count: n, radius: grid.cell) : -1
            }
        }
        guard targets.contains(where: { $0 < 0 }) else { return targets }
        let wide = SurfelGrid(surfels: surfels, cell: 2 * grid.cell)
        for v in targets.indices where targets[v] < 0 {
            let n = count(wide, near: positions[v])
            targets[v] = n > 0 ? edge(count: n, radius: wide.cell) : 0
        }
        return targets
    }

    /// Splats every usable surfel into the voxels near its disc. Blocks are allocated first
    /// (serially, from each surfel's bounding box), then filled in parallel block by block, so
    /// no two threads write the same voxel and the result does not depend on the thread count.
    static func integrate(_ surfels: Surfels, source: String, voxel: Float, parameters: MeshingParameters) throws -> SparseVolume {
        var volume = SparseVolume(voxelSize: voxel)
        let band = parameters.truncationVoxels * voxel
        // (block, surfel) pairs, then grouped by block.
        var pairBlock: [Int32] = [], pairSurfel: [Int32] = []
        pairBlock.reserveCapacity(surfels.usable.count * 2); pairSurfel.reserveCapacity(surfels.usable.count * 2)
        let limit = Float(MarchingCubes.coordinateLimit)
        for (k, i) in surfels.usable.enumerated() {
            let p = surfels.position[k] / voxel
            let reach = (surfels.support[k] + band) / voxel
            let lo = p - reach, hi = p + reach
            guard lo.min() > -limit, hi.max() < limit else {
                throw MeshingError.tooLarge(source: source, reason: "point \(i) at \(surfels.position[k]) lies beyond ±\(Int(limit * voxel)) m, the reach of voxels of \(voxel) m")
            }
            let vlo = SIMD3<Int32>(Int32(lo.x.rounded(.up)), Int32(lo.y.rounded(.up)), Int32(lo.z.rounded(.up)))
            let vhi = SIMD3<Int32>(Int32(hi.x.rounded(.down)), Int32(hi.y.rounded(.down)), Int32(hi.z.rounded(.down)))
            guard vlo.x <= vhi.x, vlo.y <= vhi.y, vlo.z <= vhi.z else { continue }
            // Blocks are allocated over the cube of `reach`, but a surfel is paired only with
            // those its tilted disc's bounding box reaches: the others would get no voxel.
            let extent = surfels.writeExtent(k, band: band, voxel: voxel)
            let tlo = p - extent, thi = p + extent
            let plo = SIMD3<Int32>(Int32(tlo.x.rounded(.up)), Int32(tlo.y.rounded(.up)), Int32(tlo.z.rounded(.up)))
            let phi = SIMD3<Int32>(Int32(thi.x.rounded(.down)), Int32(thi.y.rounded(.down)), Int32(thi.z.rounded(.down)))
            let blo = SIMD3(SparseVolume.floorDiv(plo.x), SparseVolume.floorDiv(plo.y), SparseVolume.floorDiv(plo.z))
            let bhi = SIMD3(SparseVolume.floorDiv(phi.x), SparseVolume.floorDiv(phi.y), SparseVolume.floorDiv(phi.z))
            for bz in SparseVolume.floorDiv(vlo.z)...SparseVolume.floorDiv(vhi.z) {
                for by in SparseVolume.floorDiv(vlo.y)...SparseVolume.floorDiv(vhi.y) {
                    for bx in SparseVolume.floorDiv(vlo.x)...SparseVolume.floorDiv(vhi.x) {
                        let id = volume.allocate(SIMD3(bx, by, bz))
                        guard bx >= blo.x, bx <= bhi.x, by >= blo.y, by <= bhi.y, bz >= blo.z, bz <= bhi.z else { continue }
                        pairBlock.append(id)
                        pairSurfel.append(Int32(k))
                    }
                }
            }
            if volume.blockCount * SparseVolume.blockVoxels * 8 > parameters.memoryLimitBytes {
                throw MeshingError.tooLarge(source: source, reason: "a volume of \(voxel) m voxels around these points needs more than \(parameters.memoryLimitBytes >> 20) MiB; choose a larger voxel size")
            }
        }
        volume.allocateStorage()
        // Counting sort of the pairs by block.
        let blockCount = volume.blockCount
        var start = [Int](repeating: 0, count: blockCount + 1)
        for b in pairBlock { start[Int(b) + 1] += 1 }
        for b in 0..<blockCount { start[b + 1] += start[b] }
        var fill = start
        var grouped = [Int32](repeating: 0, count: pairSurfel.count)
        for (j, b) in pairBlock.enumerated() { grouped[fill[Int(b)]] = pairSurfel[j]; fill[Int(b)] += 1 }
        pairBlock = []; pairSurfel = []

        let side = SparseVolume.side, cells = SparseVolume.blockVoxels
        let blocks = volume.blocks
        volume.distanceSum.withUnsafeMutableBufferPointer { dist in
            volume.weightSum.withUnsafeMutableBufferPointer { weight in
            volume.covered.withUnsafeMutableBufferPointer { covered in
                nonisolated(unsafe) let dist = dist, weight = weight, covered = covered
                parallelFor(blockCount, threads: parameters.threads) { b in
                    let origin = blocks[b] &* Int32(side)
                    let base = b * cells
                    for j in start[b]..<start[b + 1] {
                        let k = Int(grouped[j])
                        let p = surfels.position[k], n = surfels.normal[k]
                        let sigma = surfels.sigma[k], support = surfels.support[k], w0 = surfels.weight[k]
                        let inv2s2 = 1 / (2 * sigma * sigma), support2 = support * support
                        let coverRadius = max(surfels.radius[k], voxel) + 0.5 * voxel
                        let cover2 = coverRadius * coverRadius
                        let margin = Surfels.lateralMargin(support: support, band: band)
                        let extent = surfels.writeExtent(k, band: band, voxel: voxel)
                        let q = p / voxel
                        func range(_ c: Int, _ reach: Float) -> ClosedRange<Int>? {   // voxels within reach of q
                            let lo = max(Int((q[c] - reach).rounded(.up)) - Int(origin[c]), 0)
                            let hi = min(Int((q[c] + reach).rounded(.down)) - Int(origin[c]), side - 1)
                            return lo <= hi ? lo...hi : nil
                        }
                        // Walk the two axes the normal is most across; along the third (the
                        // normal's dominant axis) only the voxels inside the ±band slab.
                        let m = SIMD3(abs(n.x), abs(n.y), abs(n.z))
                        let axis = m.x >= m.y && m.x >= m.z ? 0 : (m.y >= m.z ? 1 : 2)
                        let u = (axis + 1) % 3, v = (axis + 2) % 3
                        guard let ru = range(u, extent[u]), let rv = range(v, extent[v]),
                              let ra = range(axis, extent[axis]) else { continue }
                        let ox = Int(origin.x), oy = Int(origin.y), oz = Int(origin.z)
                        // One voxel (block-local x, y, z). The three loops below call it with the
                        // sweep axis fixed at compile time, so no coordinate is indexed by a
                        // run-time axis in the innermost loop (same arithmetic either way).
                        @inline(__always) func visit(_ x: Int, _ y: Int, _ z: Int) {
                            let voxelPoint = SIMD3<Float>(Float(ox + x), Float(oy + y), Float(oz + z)) * voxel
                            let offset = voxelPoint - p
                            let d = (offset * n).sum()
                            guard abs(d) <= band else { return }
                            let lateral = offset - d * n
                            let l2 = (lateral * lateral).sum()
                            guard l2 <= support2 else { return }
                            let w = w0 * exp(-l2 * inv2s2)
                            let index = base + SparseVolume.local(x, y, z)
                            dist[index] += w * d
                            weight[index] += w
                            if l2 <= cover2, abs(d) <= voxel { covered[index] = 1 }
                        }
                        // Per row, the slab |d| ≤ band as an interval of the offset s along the
                        // sweep axis, widened by a twentieth of a voxel: the row test only has to
                        // keep every row where `visit` takes a voxel, so it may use a reciprocal.
                        // The rows it keeps get the exact voxel range, as before the test.
                        let na = n[axis], inverseNa = 1 / na
                        let widen = 0.05 * voxel
                        let originA = Float(origin[axis]), pa = p[axis]
                        for j in rv {
                            let wv = Float(Int(origin[v]) + j) * voxel - p[v]
                            for i in ru {
                                let wu = Float(Int(origin[u]) + i) * voxel - p[u]
                                let rest = n[u] * wu + n[v] * wv
                                let e0 = (-band - rest) * inverseNa, e1 = (band - rest) * inverseNa
                                let s0 = min(e0, e1) - widen, s1 = max(e0, e1) + widen
                                guard IntegrationRow.mayReach(wu: wu, wv: wv, rest: rest, normalAlong: na, from: s0, to: s1,
                                                              within: support2 + margin) else { continue }
                                // d(t) = n[axis] * (t * voxel + origin - p) + rest, |d| <= band
                                let t0 = (pa + (-band - rest) / na) / voxel - originA
                                let t1 = (pa + (band - rest) / na) / voxel - originA
                                let lo = max(ra.lowerBound, IntegrationRow.ceiling(min(t0, t1)))
                                let hi = min(ra.upperBound, IntegrationRow.floor(max(t0, t1)))
                                guard lo <= hi else { continue }
                                // u = axis + 1, v = axis + 2 (mod 3).
                                switch axis {
                                case 0: for t in lo...hi { visit(t, i, j) }
                                case 1: for t in lo...hi { visit(j, t, i) }
                                default: for t in lo...hi { visit(i, j, t) }
                                }
                            }
                        }
                    }
                }
            }
            }
        }
        return volume
    }
}

/// How mesh vertices are coloured.
public enum MeshColor: String, Sendable, CaseIterable {
    /// The palette colour of the vertex's fused label (grey where unlabelled).
    case semantic
    /// The confidence-weighted mean colour of the surfels around the vertex.
    case rgb
    /// No vertex colours: positions and normals, and labels when the map has them. For an
    /// oriented point cloud with neither colours nor labels (for example from another tool).
    case none

    /// The colouring a map supports unless the user picks one: its labels' palette, else its
    /// colours, else none.
    public static func automatic(hasLabels: Bool, hasClassSet: Bool, hasColors: Bool) -> MeshColor {
        hasLabels && hasClassSet ? .semantic : hasColors ? .rgb : .none
    }
}

/// The surfels meshing uses, with the per-surfel quantities both passes need.
struct Surfels {
    /// Indices into the cloud of surfels with a finite position and a unit normal.
    var usable: [Int] = []
    var position: [SIMD3<Float>] = []
    var normal: [SIMD3<Float>] = []
    /// Lateral Gaussian σ, its cut-off, and the confidence weight.
    var sigma: [Float] = []
    var support: [Float] = []
    /// The surfel's own radius (the voxel size when the cloud has none).
    var radius: [Float] = []
    var weight: [Float] = []
    /// Points left out because their normal is not finite or not of about unit length.
    var withoutUnitNormal = 0

    /// σ is the surfel's radius, kept between 0.75 voxel and two voxels; the cut-off is 2σ,
    /// where the Gaussian has fallen to 14 %. The lower bound makes every surfel reach at least
    /// 1.5 voxels sideways, beyond the √2-voxel diagonal from a face to the voxels just outside
    /// a convex edge or corner, so sharp corners close; the upper bound stops one oversized
    /// surfel from flooding the volume.
    init(cloud: PointCloud, normals: [SIMD3<Float>], voxel: Float) {
        for i in 0..<cloud.count {
            let n = normals[i]
            let length = (n * n).sum().squareRoot()
            guard length.isFinite, length > 0.5, length < 2 else { withoutUnitNormal += 1; continue }
            let r = cloud.radius?[i] ?? voxel
            let s = min(max(r.isFinite ? r : voxel, 0.75 * voxel), 2 * voxel)
            let c = cloud.confidence?[i] ?? 1
            let w = c.isFinite && c > 0 ? c : 0
            guard w > 0 else { continue }
            usable.append(i)
            position.append(cloud.positions[i])
            normal.append(n / length)
            sigma.append(s)
            radius.append(r.isFinite && r > 0 ? r : voxel)
            support.append(2 * s)
            weight.append(w)
        }
    }
}

extension Surfels {
    /// The slack the volume pass's row test adds to a squared sideways distance: float error of
    /// one voxel's distance is a few ulps of the squared reach, this is a ten-thousandth of it.
    @inline(__always) static func lateralMargin(support: Float, band: Float) -> Float {
        1e-4 * (support + band) * (support + band)
    }

    /// Half the extent, along each axis and in voxels, of the region surfel `k` writes: its
    /// disc of radius `support` (plus the row test's margin) tilted by its normal, thickened
    /// ±`band` along the normal, plus a twentieth of a voxel for rounding. Never more than the
    /// bounding cube of `support + band`.
    @inline(__always) func writeExtent(_ k: Int, band: Float, voxel: Float) -> SIMD3<Float> {
        let support = self.support[k]
        let sideways = (support * support + Self.lateralMargin(support: support, band: band)).squareRoot()
        let n = normal[k], m = SIMD3(abs(n.x), abs(n.y), abs(n.z))
        let across = pointwiseMax(SIMD3<Float>.one - m * m, .zero)
        let extent = (sideways * SIMD3(across.x.squareRoot(), across.y.squareRoot(), across.z.squareRoot()) + band * m) / voxel
            + SIMD3(repeating: 0.05)
        return pointwiseMin(extent, SIMD3(repeating: (support + band) / voxel))
    }
}

/// Runs `body(i)` for i in 0..<count on up to `threads` threads, in contiguous chunks.
func parallelFor(_ count: Int, threads: Int, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    let chunks = min(count, max(1, threads) * 4)
    if threads <= 1 || chunks == 1 {
        for i in 0..<count { body(i) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        for i in (count * c / chunks)..<(count * (c + 1) / chunks) { body(i) }
    }
}

/// The row test of the volume pass. A surfel writes the voxels within ±band of its plane whose
/// sideways distance from its centre is within its support; the pass walks rows of voxels along
/// the axis the normal is most along, over the rows of the disc's bounding box
/// (`Surfels.writeExtent`). Many of those miss the tilted disc, so each row is first tested as a
/// whole: over the part of its line inside the slab, the squared sideways distance is a convex
/// quadratic, and a row whose minimum exceeds the support (plus a margin larger than the
/// voxels' own rounding) holds no voxel the per-voxel tests would take.
enum IntegrationRow {
    /// Whether some point of the row's line with offset s in `from...to` along the sweep axis
    /// lies within √`within` of the surfel's centre sideways. `wu`, `wv`: the row's offset from
    /// the centre across the sweep axis (metres); `rest`: their part of the signed distance
    /// (n_u·wu + n_v·wv); `normalAlong`: the normal's component along the sweep axis.
    @inline(__always)
    static func mayReach(wu: Float, wv: Float, rest: Float, normalAlong na: Float, from s0: Float, to s1: Float,
                         within limit: Float) -> Bool {
        // Sideways distance² = wu² + wv² + s² − (rest + na·s)² = a·s² + 2b·s + c, a ≥ 0.
        let a = 1 - na * na, b = -rest * na, c = wu * wu + wv * wv - rest * rest
        @inline(__always) func f(_ s: Float) -> Float { (a * s + 2 * b) * s + c }
        var smallest = min(f(s0), f(s1))
        if a > 0 {
            let vertex = -b / a
            if vertex > s0, vertex < s1 { smallest = min(smallest, f(vertex)) }
        }
        return smallest <= limit
    }

    /// ⌈x⌉ and ⌊x⌋ for the small finite values of a block's voxel range, without a libm call.
    @inline(__always) static func ceiling(_ x: Float) -> Int {
        let i = Int(x)
        return Float(i) < x ? i + 1 : i
    }
    @inline(__always) static func floor(_ x: Float) -> Int {
        let i = Int(x)
        return Float(i) > x ? i - 1 : i
    }
}
