import Export
import Foundation
@testable import Meshing
import XCTest

/// Edge collapses where the mesh is denser than its surfels (`MeshDecimation`,
/// `MeshingParameters.coarsening`).
final class MeshDecimationTests: XCTestCase {
    /// A flat n x n grid of squares of `step` at z = 1, two triangles each, facing +z.
    func grid(_ n: Int, step: Float) -> ([SIMD3<Float>], [SIMD3<UInt32>]) {
        var positions: [SIMD3<Float>] = [], faces: [SIMD3<UInt32>] = []
        for j in 0...n { for i in 0...n { positions.append(SIMD3(Float(i) * step, Float(j) * step, 1)) } }
        func id(_ i: Int, _ j: Int) -> UInt32 { UInt32(j * (n + 1) + i) }
        for j in 0..<n {
            for i in 0..<n {
                faces.append(SIMD3(id(i, j), id(i + 1, j), id(i + 1, j + 1)))
                faces.append(SIMD3(id(i, j), id(i + 1, j + 1), id(i, j + 1)))
            }
        }
        return (positions, faces)
    }

    func normal(_ p: [SIMD3<Float>], _ f: SIMD3<UInt32>) -> SIMD3<Float> {
        let a = p[Int(f.x)], b = p[Int(f.y)], c = p[Int(f.z)]
        let u = b - a, v = c - a
        return SIMD3(u.y * v.z - u.z * v.y, u.z * v.x - u.x * v.z, u.x * v.y - u.y * v.x)
    }

    /// Directed edges used once each (manifold, consistently wound); returns the border edges
    /// (those without a partner).
    func borderEdges(_ faces: [SIMD3<UInt32>], file: StaticString = #filePath, line: UInt = #line) -> [SIMD2<UInt32>] {
        var directed: [SIMD2<UInt32>: Int] = [:]
        for f in faces {
            for (a, b) in [(f.x, f.y), (f.y, f.z), (f.z, f.x)] { directed[SIMD2(a, b), default: 0] += 1 }
        }
        XCTAssertTrue(directed.values.allSatisfy { $0 == 1 }, "a directed edge used twice", file: file, line: line)
        return directed.keys.filter { directed[SIMD2($0.y, $0.x)] == nil }
    }

    /// A flat square with a target far above its spacing: most vertices go, but the square keeps
    /// its area (its border and corners stay where they were), every triangle still faces +z,
    /// and the mesh stays manifold.
    func testAFlatSquareKeepsItsBorderAreaAndOrientation() {
        let (positions, faces) = grid(20, step: 0.01)
        let result = MeshDecimation.decimate(positions, faces, targetEdge: [Float](repeating: 0.05, count: positions.count),
                                             maximumError: 0.001)
        XCTAssertLessThan(result.positions.count, positions.count / 4, "vertices left of \(positions.count)")
        XCTAssertEqual(result.collapsed, positions.count - result.positions.count)
        var area: Float = 0
        for f in result.faces {
            let n = normal(result.positions, f)
            XCTAssertGreaterThan(n.z, 0, "a triangle turned over")
            area += (n * n).sum().squareRoot() / 2
        }
        XCTAssertEqual(area, 0.04, accuracy: 1e-6, "the square's area")
        XCTAssertTrue(result.positions.allSatisfy { $0.z == 1 })
        // The border is still the square's outline: 0.8 m long, on its four sides.
        var perimeter: Float = 0
        for e in borderEdges(result.faces) {
            let a = result.positions[Int(e.x)], b = result.positions[Int(e.y)]
            perimeter += ((a - b) * (a - b)).sum().squareRoot()
            for p in [a, b] {
                XCTAssertTrue(min(abs(p.x), abs(p.x - 0.2), abs(p.y), abs(p.y - 0.2)) < 1e-6, "border vertex \(p) off the outline")
            }
        }
        XCTAssertEqual(perimeter, 0.8, accuracy: 1e-5)
        for corner in [SIMD3<Float>(0, 0, 1), SIMD3(0.2, 0, 1), SIMD3(0, 0.2, 1), SIMD3(0.2, 0.2, 1)] {
            XCTAssertTrue(result.positions.contains { ((($0 - corner) * ($0 - corner)).sum()) < 1e-10 }, "corner \(corner) lost")
        }
    }

    /// A pass runs its vertex ranges at once; the mesh follows the number of ranges, never the
    /// threads. On a wavy grid of 6,561 vertices cut into 16 ranges (rows of the grid, so many
    /// collapses reach across and wait for the serial end of the pass): one thread and two give
    /// the same mesh, and against one range the mesh is as coarse, manifold, and faces the same way.
    func testRangesRunAtOnceGiveOneMeshWhateverTheThreads() {
        var (positions, faces) = grid(80, step: 0.01)
        for k in positions.indices {
            let p = positions[k]
            positions[k].z = 1 + 0.002 * sin(40 * p.x) * cos(30 * p.y)
        }
        let targets = positions.map { 0.02 + 0.03 * (0.5 + 0.5 * sin(7 * $0.x + 3 * $0.y)) }
        let one = MeshDecimation.decimate(positions, faces, targetEdge: targets, maximumError: 0.001, chunks: 16, threads: 1)
        let two = MeshDecimation.decimate(positions, faces, targetEdge: targets, maximumError: 0.001, chunks: 16, threads: 2)
        let serial = MeshDecimation.decimate(positions, faces, targetEdge: targets, maximumError: 0.001, chunks: 1, threads: 1)
        XCTAssertEqual(one.positions, two.positions)
        XCTAssertEqual(one.faces, two.faces)
        XCTAssertGreaterThan(one.collapsed, positions.count / 2)
        XCTAssertEqual(Double(one.collapsed), Double(serial.collapsed), accuracy: 0.05 * Double(serial.collapsed))
        XCTAssertNotEqual(one.faces, serial.faces, "16 ranges should change the order of collapses")
        for result in [one, serial] {
            let outline = borderEdges(result.faces)
            XCTAssertFalse(outline.isEmpty)
            for f in result.faces { XCTAssertGreaterThan(normal(result.positions, f).z, 0, "a triangle turned over") }
        }
    }

    /// A target below every edge, or a zero target, changes nothing.
    func testShortTargetsChangeNothing() {
        let (positions, faces) = grid(6, step: 0.01)
        for target: Float in [0, 0.005] {
            let result = MeshDecimation.decimate(positions, faces, targetEdge: [Float](repeating: target, count: positions.count),
                                                 maximumError: 1)
            XCTAssertEqual(result.positions, positions)
            XCTAssertEqual(result.faces, faces)
            XCTAssertEqual(result.collapsed, 0)
        }
    }

    /// A closed octahedron with no bound on the error collapses only as far as a closed
    /// surface can: every result is closed and consistently wound, and a tetrahedron (where any
    /// collapse would leave two faces on the same three vertices) is left alone.
    func testClosedSurfacesStayClosedDownToATetrahedron() {
        let positions: [SIMD3<Float>] = [SIMD3(1, 0, 0), SIMD3(-1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, -1, 0), SIMD3(0, 0, 1), SIMD3(0, 0, -1)]
        // Outward winding: (x, y, z) counter-clockwise seen from outside.
        let faces: [SIMD3<UInt32>] = [
            SIMD3(0, 2, 4), SIMD3(2, 1, 4), SIMD3(1, 3, 4), SIMD3(3, 0, 4),
            SIMD3(2, 0, 5), SIMD3(1, 2, 5), SIMD3(3, 1, 5), SIMD3(0, 3, 5),
        ]
        let result = MeshDecimation.decimate(positions, faces, targetEdge: [Float](repeating: 100, count: 6), maximumError: 100)
        XCTAssertGreaterThanOrEqual(result.faces.count, 4)
        XCTAssertLessThan(result.faces.count, 8, "the octahedron did not collapse at all")
        XCTAssertTrue(borderEdges(result.faces).isEmpty, "the surface opened")
        let tetrahedron: [SIMD3<UInt32>] = [SIMD3(0, 2, 1), SIMD3(0, 1, 3), SIMD3(0, 3, 2), SIMD3(1, 2, 3)]
        let tetraPositions: [SIMD3<Float>] = [SIMD3(0, 0, 0), SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1)]
        let kept = MeshDecimation.decimate(tetraPositions, tetrahedron, targetEdge: [Float](repeating: 100, count: 4), maximumError: 100)
        XCTAssertEqual(kept.faces, tetrahedron)
    }

    /// A vertex whose run of face slots is full takes no more faces: a border collapse shares one
    /// face with it, not two, so moving a border neighbour with two faces onto it would need one
    /// slot more than it has (it is the last vertex, so an overflow would trap).
    func testAFullVertexTakesNoMoreFaces() {
        // A fan of n faces around a (the last vertex), r0 ... rn on a half circle, and one more
        // face on r0's outer side. With n = 16 a's run (16 slots, the smallest) is full.
        func fan(_ n: Int) -> MeshDecimation.Collapser {
            var positions: [SIMD3<Float>] = (0...n).map { i in
                let angle = Float(i) * Float.pi / Float(n)
                return SIMD3(cos(angle), sin(angle), 0)
            }
            positions.append(SIMD3(1.5, -0.2, 0))   // x
            positions.append(.zero)                 // a
            let x = UInt32(n + 1), a = UInt32(n + 2)
            var faces: [SIMD3<UInt32>] = (0..<n).map { SIMD3(a, UInt32($0), UInt32($0 + 1)) }
            faces.append(SIMD3(0, x, 1))
            return MeshDecimation.Collapser(positions: positions, faces: faces,
                                            target: [Float](repeating: 100, count: positions.count), maximumError: 100)
        }
        var full = fan(16), spare = fan(15)
        XCTAssertEqual(full.capacity, 16)
        XCTAssertEqual(spare.capacity, 16)
        XCTAssertFalse(full.collapse(0, into: 18), "a has no slot left for r0's outer face")
        XCTAssertTrue(spare.collapse(0, into: 17), "with a slot to spare the same collapse goes through")
    }

    /// Two closed cones touching at their apex: the apex has two fans of faces, and no single
    /// neighbour to move onto, so it stays; the rest may coarsen.
    func testAVertexWithTwoFansStays() {
        var positions: [SIMD3<Float>] = [.zero, SIMD3(0, 0, 1), SIMD3(0, 0, -1)]
        var faces: [SIMD3<UInt32>] = []
        for (side, cap) in [(Float(1), UInt32(1)), (Float(-1), UInt32(2))] {
            let first = UInt32(positions.count)
            for i in 0..<8 {
                let angle = Float(i) * Float.pi / 4
                positions.append(SIMD3(0.3 * cos(angle), 0.3 * sin(angle), side))
            }
            for i in 0..<UInt32(8) {
                let r0 = first + i, r1 = first + (i + 1) % 8
                faces.append(side > 0 ? SIMD3(0, r1, r0) : SIMD3(0, r0, r1))
                faces.append(side > 0 ? SIMD3(cap, r0, r1) : SIMD3(cap, r1, r0))
            }
        }
        let result = MeshDecimation.decimate(positions, faces, targetEdge: [Float](repeating: 10, count: positions.count),
                                             maximumError: 10)
        XCTAssertTrue(result.positions.contains(.zero), "the apex was moved")
        XCTAssertTrue(borderEdges(result.faces).isEmpty)
    }

    /// Surfels on a plane, dense (3 mm apart) on the left half and sparse (12 mm) on the right,
    /// meshed at one voxel: coarsening removes vertices on the sparse half only, towards edges of
    /// the factor times the surfels' spacing there, and leaves the outline where it was.
    func testVertexDensityFollowsTheSurfels() throws {
        var positions: [SIMD3<Float>] = [], radii: [Float] = []
        let half: Float = 0.15
        for (spacing, range) in [(Float(0.003), (-half)...Float(0)), (Float(0.012), Float(0.003)...half)] {
            var x = range.lowerBound
            while x <= range.upperBound + 1e-6 {
                var y = -half
                while y <= half + 1e-6 {
                    positions.append(SIMD3(x, y, 1.2)); radii.append(0.8 * spacing)
                    y += spacing
                }
                x += spacing
            }
        }
        var cloud = PointCloud(positions: positions)
        cloud.normals = [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: positions.count)
        cloud.radius = radii
        cloud.confidence = [Float](repeating: 5, count: positions.count)
        func mesh(_ factor: Float) throws -> TriangleMesh {
            var parameters = MeshingParameters(voxelSize: 0.006, threads: 2)
            parameters.coarsening = factor
            return try SurfelMesher.mesh(cloud, parameters: parameters, colorMode: .rgb).mesh
        }
        let even = try mesh(0)
        func count(_ m: TriangleMesh, _ inside: (Float) -> Bool) -> Int { m.vertices.positions.filter { inside($0.x) }.count }
        let denseSide: (Float) -> Bool = { $0 < -0.03 }, sparseSide: (Float) -> Bool = { $0 > 0.03 }
        let sparseSurfels = positions.filter { sparseSide($0.x) }.count
        // The default, and a coarser setting.
        for factor in [MeshingParameters().coarsening ?? 0, 1.5] {
            let coarse = try mesh(factor)
            XCTAssertGreaterThan(Double(count(coarse, denseSide)), 0.85 * Double(count(even, denseSide)), "the dense half lost vertices")
            let kept = Double(count(coarse, sparseSide)) / Double(count(even, sparseSide))
            XCTAssertLessThan(kept, 0.75, "share of the sparse half's vertices kept at \(factor)")
            print(String(format: "coarsening %.1f: sparse half %.2f vertices per surfel, %.0f %% of marching cubes' vertices",
                         factor, Double(count(coarse, sparseSide)) / Double(sparseSurfels), kept * 100))
            // Edges there about the target, the factor times the 12 mm spacing (collapsed below
            // 4/5 of it).
            var lengths: [Float] = []
            for f in coarse.faces {
                let p = coarse.vertices.positions
                for (a, b) in [(f.x, f.y), (f.y, f.z), (f.z, f.x)] where sparseSide(p[Int(a)].x) && sparseSide(p[Int(b)].x) {
                    lengths.append(((p[Int(a)] - p[Int(b)]) * (p[Int(a)] - p[Int(b)])).sum().squareRoot())
                }
            }
            lengths.sort()
            let medianEdge = lengths[lengths.count / 2]
            XCTAssertGreaterThan(medianEdge, 0.8 * factor * 0.012, "median edge on the sparse half at \(factor)")
            XCTAssertLessThan(medianEdge, 2 * factor * 0.012, "median edge on the sparse half at \(factor)")
            checkOutline(coarse)
        }
        func checkOutline(_ coarse: TriangleMesh) {
        // Same outline, no triangle turned over, still one manifold sheet.
        for axis in 0..<2 {
            let extent = { (m: TriangleMesh) in (m.vertices.positions.map { $0[axis] }.min()!, m.vertices.positions.map { $0[axis] }.max()!) }
            XCTAssertEqual(extent(coarse).0, extent(even).0, accuracy: 1e-4)
            XCTAssertEqual(extent(coarse).1, extent(even).1, accuracy: 1e-4)
        }
        for f in coarse.faces { XCTAssertLessThan(normal(coarse.vertices.positions, f).z, 0, "a triangle faces away from the cameras") }
        _ = borderEdges(coarse.faces)
        }
    }

    /// Coarsening that would need more memory than the meshing limit is skipped and reported,
    /// and the mesh is marching cubes' own.
    func testCoarseningOverTheMemoryLimitIsSkipped() throws {
        var positions: [SIMD3<Float>] = [], normals: [SIMD3<Float>] = []
        for i in 0..<40 { for j in 0..<40 {
            positions.append(SIMD3(Float(i) * 0.012, Float(j) * 0.012, 1)); normals.append(SIMD3(0, 0, -1))
        } }
        var cloud = PointCloud(positions: positions)
        cloud.normals = normals
        cloud.radius = [Float](repeating: 0.01, count: positions.count)
        cloud.confidence = [Float](repeating: 5, count: positions.count)
        var parameters = MeshingParameters(voxelSize: 0.005, threads: 1)
        parameters.coarsening = 0
        let even = try SurfelMesher.mesh(cloud, parameters: parameters, colorMode: .rgb).mesh
        parameters.coarsening = 1
        let coarse = try SurfelMesher.mesh(cloud, parameters: parameters, colorMode: .rgb)
        XCTAssertGreaterThan(coarse.report.verticesCollapsed, 0)
        XCTAssertEqual(coarse.report.coarseningSkippedBytes, 0)
        parameters.memoryLimitBytes = MeshDecimation.workingBytes(vertices: even.vertices.count, faces: even.faces.count) - 1
        let skipped = try SurfelMesher.mesh(cloud, parameters: parameters, colorMode: .rgb)
        XCTAssertGreaterThan(skipped.report.coarseningSkippedBytes, parameters.memoryLimitBytes)
        XCTAssertEqual(skipped.report.verticesCollapsed, 0)
        XCTAssertEqual(skipped.mesh.faces, even.faces)
    }

    /// A sphere of sparse surfels: the coarsened mesh is still closed, outward and on the sphere.
    func testACoarsenedSphereStaysClosedAndOnTheSurface() throws {
        let radius: Float = 0.15, voxel: Float = 0.006, center = SIMD3<Float>(0.1, 0.2, 1.5)
        let n = Int(4 * Float.pi * radius * radius / (0.015 * 0.015))
        var positions: [SIMD3<Float>] = [], normals: [SIMD3<Float>] = []
        let golden = Float.pi * (3 - Float(5).squareRoot())
        for i in 0..<n {
            let y = 1 - 2 * (Float(i) + 0.5) / Float(n), r = (1 - y * y).squareRoot(), phi = golden * Float(i)
            let u = SIMD3<Float>(r * cos(phi), y, r * sin(phi))
            positions.append(center + radius * u); normals.append(u)
        }
        var cloud = PointCloud(positions: positions)
        cloud.normals = normals
        cloud.radius = [Float](repeating: 0.012, count: n)
        cloud.confidence = [Float](repeating: 5, count: n)
        var parameters = MeshingParameters(voxelSize: voxel, threads: 2)
        parameters.coarsening = 0
        let even = try SurfelMesher.mesh(cloud, parameters: parameters, colorMode: .rgb).mesh
        parameters.coarsening = 1.5
        let (coarse, report) = try SurfelMesher.mesh(cloud, parameters: parameters, colorMode: .rgb)
        // The targets are computed in parallel, the collapses in one order: the same mesh on
        // any number of threads.
        parameters.threads = 1
        let serial = try SurfelMesher.mesh(cloud, parameters: parameters, colorMode: .rgb).mesh
        XCTAssertEqual(serial.faces, coarse.faces)
        XCTAssertEqual(serial.vertices.positions, coarse.vertices.positions)
        XCTAssertLessThan(coarse.vertices.count, even.vertices.count * 2 / 3, "\(coarse.vertices.count) of \(even.vertices.count) vertices")
        XCTAssertEqual(report.verticesCollapsed, even.vertices.count - coarse.vertices.count)
        XCTAssertTrue(borderEdges(coarse.faces).isEmpty, "the sphere opened")
        var volume: Float = 0, worst: Float = 0
        for f in coarse.faces {
            let p = coarse.vertices.positions
            let a = p[Int(f.x)] - center, b = p[Int(f.y)] - center, c = p[Int(f.z)] - center
            volume += (a * SIMD3(b.y * c.z - b.z * c.y, b.z * c.x - b.x * c.z, b.x * c.y - b.y * c.x)).sum() / 6
        }
        for p in coarse.vertices.positions {
            worst = max(worst, abs(((p - center) * (p - center)).sum().squareRoot() - radius))
        }
        let ball = 4 / 3 * Float.pi * radius * radius * radius
        XCTAssertEqual(volume, ball, accuracy: 0.03 * ball)
        XCTAssertLessThan(worst, 0.25 * voxel, "vertex distance to the sphere")
    }
}
