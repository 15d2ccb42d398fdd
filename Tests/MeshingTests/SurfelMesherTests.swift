import Export
import Foundation
import Imaging
@testable import Meshing
import Semantics
import XCTest

/// Marching cubes over surfel-built volumes on shapes whose true surface is known.
final class SurfelMesherTests: XCTestCase {
    /// Surfels on a sphere (Fibonacci lattice), normals outward (the free side).
    func sphere(radius: Float, spacing: Float, center: SIMD3<Float> = .zero) -> PointCloud {
        let n = Int(4 * Float.pi * radius * radius / (spacing * spacing))
        var positions: [SIMD3<Float>] = [], normals: [SIMD3<Float>] = []
        let golden = Float.pi * (3 - Float(5).squareRoot())
        for i in 0..<n {
            let y = 1 - 2 * (Float(i) + 0.5) / Float(n)
            let r = (1 - y * y).squareRoot()
            let phi = golden * Float(i)
            let u = SIMD3<Float>(r * cos(phi), y, r * sin(phi))
            positions.append(center + radius * u)
            normals.append(u)
        }
        var cloud = PointCloud(positions: positions)
        cloud.normals = normals
        cloud.radius = [Float](repeating: spacing * 0.8, count: n)
        cloud.confidence = [Float](repeating: 5, count: n)
        return cloud
    }

    /// Surfels on a grid over the six faces of an axis-aligned box, normals outward.
    func box(size: SIMD3<Float>, spacing: Float) -> PointCloud {
        var positions: [SIMD3<Float>] = [], normals: [SIMD3<Float>] = []
        for axis in 0..<3 {
            let u = (axis + 1) % 3, v = (axis + 2) % 3
            let nu = Int(size[u] / spacing), nv = Int(size[v] / spacing)
            for side in [-1, 1] as [Float] {
                for i in 0...nu {
                    for j in 0...nv {
                        var p = SIMD3<Float>.zero
                        p[axis] = side * size[axis] / 2
                        p[u] = -size[u] / 2 + size[u] * Float(i) / Float(nu)
                        p[v] = -size[v] / 2 + size[v] * Float(j) / Float(nv)
                        var n = SIMD3<Float>.zero
                        n[axis] = side
                        positions.append(p); normals.append(n)
                    }
                }
            }
        }
        var cloud = PointCloud(positions: positions)
        cloud.normals = normals
        cloud.radius = [Float](repeating: spacing * 0.8, count: positions.count)
        cloud.confidence = [Float](repeating: 5, count: positions.count)
        return cloud
    }

    /// Every undirected edge in exactly two faces, every directed edge in exactly one (closed
    /// and consistently wound).
    func assertClosedAndConsistent(_ mesh: TriangleMesh, file: StaticString = #filePath, line: UInt = #line) {
        var directed: [SIMD2<UInt32>: Int] = [:]
        for f in mesh.faces {
            for (a, b) in [(f.x, f.y), (f.y, f.z), (f.z, f.x)] { directed[SIMD2(a, b), default: 0] += 1 }
        }
        var open = 0, repeated = 0
        for (edge, count) in directed {
            if count > 1 { repeated += 1 }
            if directed[SIMD2(edge.y, edge.x)] == nil { open += 1 }
        }
        XCTAssertEqual(open, 0, "edges without a partner face", file: file, line: line)
        XCTAssertEqual(repeated, 0, "directed edges used twice (inconsistent winding or non-manifold)", file: file, line: line)
    }

    func signedVolume(_ mesh: TriangleMesh) -> Float {
        var volume: Float = 0
        let p = mesh.vertices.positions
        for f in mesh.faces {
            let a = p[Int(f.x)], b = p[Int(f.y)], c = p[Int(f.z)]
            let cross = SIMD3(b.y * c.z - b.z * c.y, b.z * c.x - b.x * c.z, b.x * c.y - b.y * c.x)
            volume += (a * cross).sum() / 6
        }
        return volume
    }

    func testCaseTableIsClosedForEveryPattern() {
        for pattern in 0..<256 {
            let triangles = CubeTable.triangles[pattern]
            XCTAssertEqual(triangles.count % 3, 0)
            XCTAssertEqual(triangles.isEmpty, pattern == 0 || pattern == 255, "pattern \(pattern)")
            // Every edge used lies between an inside and an outside corner.
            for e in triangles {
                let edge = CubeTable.edges[Int(e)]
                XCTAssertNotEqual(pattern & (1 << edge.a) != 0, pattern & (1 << edge.b) != 0, "pattern \(pattern) edge \(e)")
            }
        }
        XCTAssertEqual(CubeTable.triangles[1].count, 3)
        XCTAssertEqual(CubeTable.triangles[0b0000_0011].count, 6)
    }

    func testSphereIsClosedOutwardAndOnTheSurface() throws {
        let radius: Float = 0.2, voxel: Float = 0.008
        let cloud = sphere(radius: radius, spacing: 0.005, center: SIMD3(0.31, -0.12, 1.7))
        let (mesh, report) = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: voxel, threads: 2))
        XCTAssertGreaterThan(mesh.faces.count, 1000)
        assertClosedAndConsistent(mesh)
        // Outward winding: positive volume close to the ball's.
        let volume = signedVolume(mesh)
        XCTAssertEqual(volume, 4 / 3 * Float.pi * radius * radius * radius, accuracy: 0.02 * 4 / 3 * Float.pi * radius * radius * radius)
        var worst: Float = 0, normalsOff = 0
        for (i, p) in mesh.vertices.positions.enumerated() {
            let d = p - SIMD3(0.31, -0.12, 1.7)
            let r = (d * d).sum().squareRoot()
            worst = max(worst, abs(r - radius))
            if (mesh.vertices.normals![i] * (d / r)).sum() < 0.95 { normalsOff += 1 }
        }
        XCTAssertLessThan(worst, 0.25 * voxel, "vertex distance to the true sphere")
        XCTAssertEqual(normalsOff, 0)
        XCTAssertEqual(report.voxelSize, voxel)
        XCTAssertEqual(report.facesDropped, 0)
    }

    func testBoxIsClosedAndItsFacesAreFlat() throws {
        let size = SIMD3<Float>(0.3, 0.2, 0.25), voxel: Float = 0.01
        let (mesh, _) = try SurfelMesher.mesh(box(size: size, spacing: 0.005), parameters: MeshingParameters(voxelSize: voxel, threads: 1))
        assertClosedAndConsistent(mesh)
        XCTAssertGreaterThan(signedVolume(mesh), 0.9 * size.x * size.y * size.z)
        // Distance to the box surface: exact on the faces, rounded by about a voxel at edges.
        var distances: [Float] = []
        for p in mesh.vertices.positions {
            let q = SIMD3(abs(p.x), abs(p.y), abs(p.z)) - size / 2
            let outside = SIMD3(max(q.x, 0), max(q.y, 0), max(q.z, 0))
            distances.append(q.max() > 0 ? (outside * outside).sum().squareRoot() : -q.max())
        }
        distances.sort()
        XCTAssertLessThan(distances[distances.count / 2], 0.05 * voxel)
        XCTAssertLessThan(distances.last!, 1.5 * voxel)
    }

    func testThreadsDoNotChangeTheMesh() throws {
        let cloud = sphere(radius: 0.1, spacing: 0.004)
        let a = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: 0.006, threads: 1)).mesh
        let b = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: 0.006, threads: 3)).mesh
        XCTAssertEqual(a.faces, b.faces)
        XCTAssertEqual(a.vertices.positions, b.vertices.positions)
    }

    /// A plane with class 1 left of x = 0 and class 2 right of it: vertices take the fused
    /// probabilities, and the boundary stays sharp (within a voxel or two).
    func testLabelsAreFusedFromTheSurfelsAround() throws {
        var positions: [SIMD3<Float>] = [], probabilities: [Float] = []
        let spacing: Float = 0.004, voxel: Float = 0.008
        for i in -50...50 {
            for j in -30...30 {
                positions.append(SIMD3(Float(i) * spacing, Float(j) * spacing, 1.5))
                let right = i >= 0
                probabilities += right ? [0.05, 0.15, 0.8] : [0.1, 0.7, 0.2]
            }
        }
        var cloud = PointCloud(positions: positions)
        cloud.normals = [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: positions.count)
        cloud.radius = [Float](repeating: spacing, count: positions.count)
        cloud.confidence = [Float](repeating: 3, count: positions.count)
        cloud.classProbabilities = (classCount: 3, values: probabilities)
        cloud.classSet = ClassSet.nyu13.count >= 3 ? ClassSet.nyu13 : nil
        let (mesh, _) = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: voxel, threads: 2), includeProbabilities: true)
        let labels = try XCTUnwrap(mesh.vertices.labels)
        let confidence = try XCTUnwrap(mesh.vertices.labelConfidence)
        let fused = try XCTUnwrap(mesh.vertices.classProbabilities)
        XCTAssertEqual(fused.classCount, 3)
        var wrong = 0, far = 0
        for (v, p) in mesh.vertices.positions.enumerated() {
            XCTAssertEqual(p.z, 1.5, accuracy: 0.1 * voxel)
            let sum = fused.values[v * 3..<(v * 3 + 3)].reduce(0, +)
            XCTAssertEqual(sum, 1, accuracy: 1e-4)
            guard abs(p.x) > 2 * voxel else { continue }
            far += 1
            let expected: Int32 = p.x > 0 ? 2 : 1
            if labels[v] != expected { wrong += 1 }
            XCTAssertEqual(confidence[v], p.x > 0 ? 0.8 : 0.7, accuracy: 1e-3)
        }
        XCTAssertGreaterThan(far, 100)
        XCTAssertEqual(wrong, 0)
        // Only labels, no probabilities: a confidence-weighted vote gives the same labels.
        cloud.classProbabilities = nil
        cloud.labels = probabilities.indices.filter { $0 % 3 == 0 }.map { probabilities[$0 + 2] > 0.5 ? 2 : 1 }
        cloud.labelConfidence = cloud.labels!.map { $0 == 2 ? 0.8 : 0.7 }
        let voted = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: voxel, threads: 2)).mesh
        for (v, p) in voted.vertices.positions.enumerated() where abs(p.x) > 2 * voxel {
            XCTAssertEqual(voted.vertices.labels![v], p.x > 0 ? 2 : 1)
        }
        // Colours follow the class palette.
        XCTAssertEqual(voted.vertices.colors?.first, cloud.classSet!.color(of: Int(voted.vertices.labels![0])))
    }

    /// Surfels no prediction reached (label -1, uniform probabilities, as the map writes them)
    /// give no class evidence: where only they lie the mesh is unlabelled, as the map is, not
    /// class 0 by a tie of uniform scores; next to labelled surfels they do not dilute the
    /// label. The class set's "unlabelled" class (NYU-13's 0) never wins, as in the map.
    func testUnlabelledSurfelsGiveNoLabelAndTheUnlabelledClassNeverWins() throws {
        var positions: [SIMD3<Float>] = [], probabilities: [Float] = [], labels: [Int32] = []
        let spacing: Float = 0.004, voxel: Float = 0.008, classes = ClassSet.nyu13.count
        for i in -50...50 {
            for j in -30...30 {
                positions.append(SIMD3(Float(i) * spacing, Float(j) * spacing, 1.5))
                var row = [Float](repeating: 1 / Float(classes), count: classes)
                if i >= 0 {
                    // Unlabelled class 0 has the highest probability; the map's label is 3.
                    row = [Float](repeating: 0.1 / Float(classes - 2), count: classes)
                    row[0] = 0.5; row[3] = 0.4
                    labels.append(3)
                } else {
                    labels.append(-1)
                }
                probabilities += row
            }
        }
        var cloud = PointCloud(positions: positions)
        cloud.normals = [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: positions.count)
        cloud.radius = [Float](repeating: spacing, count: positions.count)
        cloud.confidence = [Float](repeating: 3, count: positions.count)
        cloud.classProbabilities = (classCount: classes, values: probabilities)
        cloud.labels = labels
        cloud.labelConfidence = labels.map { $0 >= 0 ? 0.4 : 0 }
        cloud.classSet = ClassSet.nyu13
        XCTAssertEqual(ClassSet.nyu13.unlabelledId, 0)
        let mesh = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: voxel, threads: 2), includeProbabilities: true).mesh
        let out = try XCTUnwrap(mesh.vertices.labels)
        let fused = try XCTUnwrap(mesh.vertices.classProbabilities)
        var left = 0, right = 0
        for (v, p) in mesh.vertices.positions.enumerated() where abs(p.x) > 3 * voxel {
            if p.x < 0 {
                left += 1
                XCTAssertEqual(out[v], -1)
                XCTAssertEqual(fused.values[v * classes], 1 / Float(classes), accuracy: 1e-6)
            } else {
                right += 1
                XCTAssertEqual(out[v], 3)
                XCTAssertEqual(mesh.vertices.labelConfidence![v], 0.4, accuracy: 1e-3)
            }
        }
        XCTAssertGreaterThan(left, 100)
        XCTAssertGreaterThan(right, 100)
        // Without the label column, the uniform rows are recognised as no evidence.
        cloud.labels = nil; cloud.labelConfidence = nil
        let bare = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: voxel, threads: 2)).mesh
        for (v, p) in bare.vertices.positions.enumerated() where abs(p.x) > 3 * voxel {
            XCTAssertEqual(bare.vertices.labels![v], p.x < 0 ? -1 : 3)
        }
    }

    /// The label-agreement measure on a plane with a known answer: class 1 left of x = 0 and
    /// class 2 right of it (decided 0.95 on the left, 0.6 on the right), four isolated surfels
    /// flipped; mesh vertices on the plane away from the boundary with every 10th label wrong,
    /// vertices off the plane (inside no disc, near no surfel), and unlabelled surfels in a
    /// strip where the map shows no label.
    func testLabelAgreementCountsAKnownAnswer() throws {
        let spacing: Float = 0.004, classes = 3
        var positions: [SIMD3<Float>] = [], probabilities: [Float] = [], labels: [Int32] = []
        let flipped: Set<SIMD2<Int>> = [SIMD2(-30, -10), SIMD2(-20, 10), SIMD2(20, -10), SIMD2(30, 10)]
        for i in -50...50 {
            for j in -30...30 {
                positions.append(SIMD3(Float(i) * spacing, Float(j) * spacing, 1.5))
                let unlabelled = j >= 25
                var label: Int32 = i < 0 ? 1 : 2
                if flipped.contains(SIMD2(i, j)) { label = 3 - label }
                if unlabelled {
                    labels.append(-1); probabilities += [Float](repeating: 1 / 3, count: classes)
                } else {
                    labels.append(label)
                    let decided: Float = i < 0 ? 0.95 : 0.6
                    var row = [Float](repeating: 0, count: classes)
                    row[Int(label)] = decided; row[Int(3 - label)] = 1 - decided
                    probabilities += row
                }
            }
        }
        var map = PointCloud(positions: positions)
        map.normals = [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: positions.count)
        map.radius = [Float](repeating: 1.2 * spacing, count: positions.count)
        map.confidence = [Float](repeating: 2, count: positions.count)
        map.labels = labels
        map.labelConfidence = labels.map { $0 < 0 ? 0 : 0.8 }
        map.classProbabilities = (classCount: classes, values: probabilities)
        // Vertices on a half-spacing-offset grid, 1 mm off the plane, away from the class
        // boundary, the flipped surfels' rows and the edge of the unlabelled strip (where the
        // nearest surfel would be a tie between a labelled and an unlabelled one).
        var vertices: [SIMD3<Float>] = [], vertexLabels: [Int32] = []
        var onLeft = 0, onRight = 0, inStrip = 0, wrong = 0
        for i in stride(from: -45, through: 45, by: 3) where abs(i) >= 5 {
            for j in stride(from: -28, through: 28, by: 4) where abs(j) >= 2 && abs(abs(j) - 10) >= 2 && j != 24 {
                vertices.append(SIMD3((Float(i) + 0.5) * spacing, (Float(j) + 0.5) * spacing, 1.5 + 0.001))
                var label: Int32 = i < 0 ? 1 : 2
                if j >= 26 { label = -1; inStrip += 1 } else if i < 0 { onLeft += 1 } else { onRight += 1 }
                if vertices.count % 10 == 0 { label = label == 1 ? 2 : 1; wrong += 1 }
                vertexLabels.append(label)
            }
        }
        let off = 7
        for k in 0..<off { vertices.append(SIMD3(Float(k) * 0.01, 0, 1.6)); vertexLabels.append(1) }
        var mesh = PointCloud(positions: vertices)
        mesh.labels = vertexLabels
        let onPlane = vertices.count - off
        XCTAssertGreaterThan(inStrip, 5)
        XCTAssertGreaterThan(wrong, 20)

        let a = try LabelAgreementMeasure.measure(mesh: mesh, map: map, threads: 2)
        XCTAssertEqual(a.vertices, vertices.count)
        XCTAssertEqual(a.uncovered, off)
        XCTAssertEqual(a.covering.compared, onPlane)
        XCTAssertEqual(a.covering.agreeing, onPlane - wrong)
        XCTAssertEqual(a.nearestRadius, 0.02)
        XCTAssertEqual(a.nearest.compared, onPlane)
        XCTAssertEqual(a.nearest.agreeing, onPlane - wrong)
        // Shares: the strip (no label) in the first bin, the right side (0.6) in the second, the
        // left side (0.95) in the last.
        XCTAssertEqual(a.coveringByShare.map(\.compared), [inStrip, onRight, 0, onLeft])
        // The map against itself: each flipped surfel is outvoted by the discs of its four
        // neighbours (radius 1.2 spacings: the four nearest, not the diagonals). At x = 0 the
        // class-2 surfels (0.6) are outvoted by their class-1 neighbour (0.95) and their
        // class-2 neighbours (55 labelled rows); the first unlabelled row (101 surfels) is
        // covered by the labelled row below it, so the map shows a label there. 160 in all.
        let total = positions.count
        XCTAssertEqual(a.mapCovering.compared, total)
        XCTAssertEqual(a.mapCovering.agreeing, total - 160)
        // Nearest other surfel: four neighbours are equidistant up to rounding, so only bounds:
        // the flipped ones always disagree; at most their neighbours, the two boundary columns
        // and the strip's corners also do.
        XCTAssertEqual(a.mapNearest.compared, total)
        XCTAssertLessThanOrEqual(a.mapNearest.agreeing, total - flipped.count)
        XCTAssertGreaterThanOrEqual(a.mapNearest.agreeing, total - 5 * flipped.count - 2 * 61 - 2)

        // A mesh that copies the map's labels at the surfel centres: its own disc joins the
        // vote and changes none of the 160; the nearest surfel is itself.
        var exact = PointCloud(positions: positions)
        exact.labels = labels
        let b = try LabelAgreementMeasure.measure(mesh: exact, map: map)
        XCTAssertEqual(b.covering.compared, total)
        XCTAssertEqual(b.covering.agreeing, total - 160)
        XCTAssertEqual(b.nearest.agreeing, total)
        // Without labels on either side it says what is missing.
        mesh.labels = nil
        XCTAssertThrowsError(try LabelAgreementMeasure.measure(mesh: mesh, map: map))
        map.normals = nil
        XCTAssertThrowsError(try LabelAgreementMeasure.measure(mesh: exact, map: map))
    }

    /// Where the map is undecided (overlapping discs of two classes with mixed probabilities
    /// and confidences), a vertex inside discs takes the label the map shows there, so the
    /// disc definition of `LabelAgreementMeasure` agrees on every covered vertex. The Gaussian
    /// neighbourhood alone (the rule before) disagrees on some, which shows the two differ here.
    func testVerticesInsideDiscsShowTheMapsLabel() throws {
        let spacing: Float = 0.004, voxel: Float = 0.008
        var positions: [SIMD3<Float>] = [], probabilities: [Float] = [], labels: [Int32] = [], confidences: [Float] = []
        var state: UInt64 = 12345
        func random() -> Float {   // deterministic, platform-independent
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)
        }
        for i in -40...40 {
            for j in -25...25 {
                positions.append(SIMD3(Float(i) * spacing, Float(j) * spacing, 1.5))
                let a = 0.3 + 0.4 * random()            // class 1's share: undecided everywhere
                let row: [Float] = [0.02, 0.98 * a, 0.98 * (1 - a)]
                probabilities += row
                labels.append(row[1] >= row[2] ? 1 : 2)
                confidences.append(1 + 9 * random())
            }
        }
        var map = PointCloud(positions: positions)
        map.normals = [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: positions.count)
        map.radius = [Float](repeating: 1.5 * spacing, count: positions.count)
        map.confidence = confidences
        map.labels = labels
        map.labelConfidence = labels.indices.map { max(probabilities[3 * $0 + 1], probabilities[3 * $0 + 2]) }
        map.classProbabilities = (classCount: 3, values: probabilities)
        map.classSet = ClassSet.nyu13

        var parameters = MeshingParameters(voxelSize: voxel, threads: 2)
        let discs = try SurfelMesher.mesh(map, parameters: parameters, includeProbabilities: true).mesh.vertices
        let shown = try LabelAgreementMeasure.measure(mesh: discs, map: map, threads: 2)
        XCTAssertGreaterThan(shown.covering.compared, 500)
        XCTAssertEqual(shown.covering.agreeing, shown.covering.compared)
        // The fused probabilities written with the vertex are the ones its label came from.
        let fused = try XCTUnwrap(discs.classProbabilities), vertexLabels = try XCTUnwrap(discs.labels)
        for v in 0..<discs.count where vertexLabels[v] >= 0 {
            let row = Array(fused.values[(3 * v)..<(3 * v + 3)])
            XCTAssertEqual(row.firstIndex(of: row.max()!), Int(vertexLabels[v]))
            XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-4)
        }

        parameters.labelsFromDiscs = false
        let gaussian = try SurfelMesher.mesh(map, parameters: parameters).mesh.vertices
        let before = try LabelAgreementMeasure.measure(mesh: gaussian, map: map, threads: 2)
        XCTAssertEqual(before.covering.compared, shown.covering.compared)
        print("covered vertices: \(shown.covering.compared); showing the map's label: discs \(shown.covering.agreeing), Gaussian \(before.covering.agreeing)")
        XCTAssertLessThan(before.covering.agreeing, before.covering.compared - 10)
    }

    func testNoSurfelsOrOneSurfelGiveAnEmptyMesh() throws {
        var empty = PointCloud(positions: [])
        empty.normals = []
        XCTAssertTrue(try SurfelMesher.mesh(empty, parameters: MeshingParameters(threads: 2)).mesh.isEmpty)
        var one = PointCloud(positions: [SIMD3(0, 0, 1)])
        one.normals = [SIMD3(0, 0, -1)]
        one.radius = [0.004]
        let (mesh, report) = try SurfelMesher.mesh(one, parameters: MeshingParameters(threads: 2))
        XCTAssertTrue(mesh.isEmpty)
        XCTAssertEqual(mesh.vertices.count, 0)
        XCTAssertEqual(report.surfelsUsed, 1)
    }

    /// The automatic voxel is 0.85 times the median radius while labels and the smallest piece
    /// keep the radius's scale; a given voxel is both; a map without radii gets a centimetre;
    /// a factor that makes no voxel is refused by name.
    func testVoxelAndAttributeScales() throws {
        var cloud = PointCloud(positions: [SIMD3(0, 0, 1), SIMD3(0, 0.01, 1), SIMD3(0, 0.02, 1)])
        cloud.normals = [SIMD3<Float>](repeating: SIMD3(0, 0, -1), count: 3)
        cloud.radius = [0.004, 0.008, 0.02]
        var parameters = MeshingParameters()
        var scales = try SurfelMesher.scales(cloud, parameters: parameters)
        XCTAssertEqual(scales.voxel, 0.0068, accuracy: 1e-7)
        XCTAssertEqual(scales.attributeScale, 0.008, accuracy: 1e-7)
        parameters.voxelsPerMedianRadius = 1.5
        scales = try SurfelMesher.scales(cloud, parameters: parameters)
        XCTAssertEqual(scales.voxel, 0.012, accuracy: 1e-7)
        XCTAssertEqual(scales.attributeScale, 0.012, accuracy: 1e-7)
        parameters.voxelSize = 0.005
        scales = try SurfelMesher.scales(cloud, parameters: parameters)
        XCTAssertEqual(scales.voxel, 0.005)
        XCTAssertEqual(scales.attributeScale, 0.005)
        cloud.radius = nil
        scales = try SurfelMesher.scales(cloud, parameters: MeshingParameters())
        XCTAssertEqual(scales.voxel, 0.01)
        XCTAssertEqual(scales.attributeScale, 0.01)
        for bad: Float in [0, -1, .nan, .infinity] {
            var p = MeshingParameters()
            p.voxelsPerMedianRadius = bad
            XCTAssertThrowsError(try SurfelMesher.scales(cloud, parameters: p)) { error in
                XCTAssertTrue("\(error)".contains("voxels per median radius"), "\(error)")
            }
        }
    }

    /// Without radii each point's is the distance to its 6th nearest neighbour, at each part's
    /// own spacing; on a square grid that is the diagonal neighbour, √2 times the spacing.
    func testEstimatedRadiiFollowTheSpacing() {
        var positions: [SIMD3<Float>] = []
        for (spacing, origin) in [(Float(0.01), Float(0)), (0.04, 5)] {
            for i in 0..<12 { for j in 0..<12 { positions.append(SIMD3(origin + Float(i) * spacing, Float(j) * spacing, 1)) } }
        }
        positions.append(SIMD3(.nan, 0, 1))
        let radii = SurfelMesher.estimatedRadii(positions, threads: 2)
        XCTAssertEqual(radii.count, positions.count)
        for (part, spacing) in [(0, Float(0.01)), (1, 0.04)] {
            for i in 1..<11 {
                for j in 1..<11 {
                    XCTAssertEqual(radii[part * 144 + i * 12 + j], spacing * Float(2).squareRoot(), accuracy: spacing * 1e-4, "part \(part), \(i), \(j)")
                }
            }
        }
        XCTAssertEqual(radii.last, 0, "a point that is not finite gets no radius")
        XCTAssertEqual(radii, SurfelMesher.estimatedRadii(positions, threads: 1), "independent of the threads")
        // Fewer points than neighbours asked for: the farthest one; one point or one place: none.
        for (radius, expected) in zip(SurfelMesher.estimatedRadii([SIMD3(0, 0, 0), SIMD3(0.1, 0, 0), SIMD3(0.3, 0, 0)]), [Float(0.3), 0.2, 0.3]) {
            XCTAssertEqual(radius, expected, accuracy: 1e-6)
        }
        XCTAssertEqual(SurfelMesher.estimatedRadii([SIMD3(0, 0, 0)]), [0])
        XCTAssertEqual(SurfelMesher.estimatedRadii([SIMD3(1, 1, 1), SIMD3(1, 1, 1)]), [0, 0])
        XCTAssertEqual(SurfelMesher.estimatedRadii([]), [])
        // Finite points whose distances overflow Float: no radius, and the search ends.
        XCTAssertEqual(SurfelMesher.estimatedRadii([SIMD3(-3e38, 0, 0), SIMD3(3e38, 0, 0), SIMD3(0, 3e38, 0)]), [0, 0, 0])
    }

    /// A crowd of duplicates and near-duplicates (a badly merged cloud, or a crafted one) does not
    /// make every one of its points scan all the others: the search stops at k duplicates or
    /// after `maximumCandidates`, with a radius no smaller than the true one.
    func testEstimatedRadiiInACrowdStayBounded() {
        var positions = [SIMD3<Float>](repeating: SIMD3(0.5, 0.5, 1), count: 30_000)
        for i in 0..<30_000 { positions.append(SIMD3(0.2 + Float(i % 173) * 1e-6, 0.2 + Float(i / 173) * 1e-6, 1)) }
        for i in 0..<20 { for j in 0..<20 { positions.append(SIMD3(Float(i) * 0.05, Float(j) * 0.05, 1)) } }
        let radii = SurfelMesher.estimatedRadii(positions, threads: 2)
        XCTAssertTrue(radii[..<30_000].allSatisfy { $0 == 0 }, "duplicates are each other's neighbours")
        for r in radii[30_000..<60_000] {
            XCTAssertGreaterThanOrEqual(r, 1e-6 * 0.999)  // the grid's true 6th neighbour is √2 µm away at least 1 µm
            XCTAssertLessThan(r, 1e-3)
        }
        XCTAssertEqual(radii[60_000 + 15 * 20 + 15], 0.05 * Float(2).squareRoot(), accuracy: 1e-5)  // far from both crowds
    }

    /// An oriented point cloud from elsewhere, unevenly sampled and without radii, colours or
    /// labels, meshes to a closed sphere: the radii come from the spacing, not a fixed size.
    func testCloudWithoutRadiiMeshesClosed() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24)
        }
        var positions: [SIMD3<Float>] = [], normals: [SIMD3<Float>] = []
        for _ in 0..<3_000 {
            let z = 2 * uniform() - 1, phi = 2 * Float.pi * uniform(), r = (1 - z * z).squareRoot()
            let u = SIMD3<Float>(r * cos(phi), r * sin(phi), z)
            positions.append(0.3 * u); normals.append(u)
        }
        var cloud = PointCloud(positions: positions)
        cloud.normals = normals
        let (mesh, report) = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(threads: 2), colorMode: .none)
        let estimate = try XCTUnwrap(report.estimatedRadii)
        // 3,000 random points on 1.13 m²: mean spacing 19 mm, the 6th neighbour about 1.4 times that.
        XCTAssertGreaterThan(estimate.median, 0.02)
        XCTAssertLessThan(estimate.median, 0.035)
        XCTAssertFalse(mesh.isEmpty)
        assertClosedAndConsistent(mesh)
        XCTAssertGreaterThan(signedVolume(mesh), 0, "faces towards the normals")
        let distances = mesh.vertices.positions.map { abs(($0 * $0).sum().squareRoot() - 0.3) }.sorted()
        XCTAssertLessThan(distances[distances.count / 2], 0.002)
        XCTAssertNil(mesh.vertices.colors)
        XCTAssertNil(mesh.vertices.labels)
        // A cloud with its own radii is meshed with them.
        cloud.radius = [Float](repeating: 0.03, count: cloud.count)
        XCTAssertNil(try SurfelMesher.mesh(cloud, parameters: MeshingParameters(threads: 2)).report.estimatedRadii)
    }

    func testPointsWithoutNormalsAreRefused() {
        XCTAssertThrowsError(try SurfelMesher.mesh(PointCloud(positions: [SIMD3(0, 0, 1)]), source: "cloud.ply", parameters: MeshingParameters())) { error in
            XCTAssertEqual(error as? MeshingError, .missingNormals(source: "cloud.ply"))
            XCTAssertTrue("\(error)".contains("cloud.ply"))
        }
    }

    func testFarAwayPointsAndHugeRadiiAreBoundedOrRefused() throws {
        var cloud = sphere(radius: 0.05, spacing: 0.005)
        cloud.positions[0] = SIMD3(1e7, 0, 0)
        XCTAssertThrowsError(try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: 0.005))) { error in
            guard case .tooLarge = error as? MeshingError else { return XCTFail("\(error)") }
        }
        cloud = sphere(radius: 0.05, spacing: 0.005)
        cloud.radius![3] = 1e6  // clamped to two voxels: no flood of blocks
        let (mesh, report) = try SurfelMesher.mesh(cloud, parameters: MeshingParameters(voxelSize: 0.005))
        XCTAssertLessThan(report.blocks, 200)
        assertClosedAndConsistent(mesh)
    }
    /// Projecting the vertices onto the surfels' planes brings them closer to the true
    /// surface than marching cubes' interpolation alone, on a curved shape (coarse voxel, where
    /// the interpolation error is largest) and at a box's edges; and it keeps the mesh closed.
    func testVertexRefinementMovesVerticesOntoTheSurface() throws {
        let radius: Float = 0.1, voxel: Float = 0.02, center = SIMD3<Float>(0, 0, 1.5)
        let cloud = sphere(radius: radius, spacing: 0.006, center: center)
        func errors(_ refine: Bool) throws -> (median: Float, worst: Float, mesh: TriangleMesh) {
            var parameters = MeshingParameters(voxelSize: voxel, threads: 2)
            parameters.refineVertices = refine
            let mesh = try SurfelMesher.mesh(cloud, parameters: parameters).mesh
            let e = mesh.vertices.positions.map { p -> Float in
                let d = p - center
                return abs((d * d).sum().squareRoot() - radius)
            }.sorted()
            return (e[e.count / 2], e.last!, mesh)
        }
        let raw = try errors(false), refined = try errors(true)
        XCTAssertLessThan(refined.median, 0.5 * raw.median, "median distance to the sphere: \(refined.median) refined, \(raw.median) raw")
        XCTAssertLessThan(refined.worst, raw.worst)
        XCTAssertLessThan(refined.median, 0.05 * voxel)
        XCTAssertEqual(refined.mesh.faces, raw.mesh.faces, "refinement moves vertices, never changes the triangles")
        assertClosedAndConsistent(refined.mesh)
    }

    /// Trimming removes the rim the volume's Gaussian tails grow around a surface's border: an
    /// open square patch of large surfels (whose Gaussians reach two radii) meshes to about the
    /// square covered by their discs, not to a larger one.
    func testOpenBordersAreNotExtendedBeyondTheSurfels() throws {
        var positions: [SIMD3<Float>] = [], normals: [SIMD3<Float>] = []
        let side: Float = 0.2, spacing: Float = 0.01, voxel: Float = 0.01
        let n = Int(side / spacing)
        for i in 0...n { for j in 0...n {
            positions.append(SIMD3(Float(i) * spacing - side / 2, Float(j) * spacing - side / 2, 1))
            normals.append(SIMD3(0, 0, -1))
        } }
        var cloud = PointCloud(positions: positions)
        cloud.normals = normals
        cloud.radius = [Float](repeating: 2 * voxel, count: positions.count)
        cloud.confidence = [Float](repeating: 5, count: positions.count)
        func extent(_ trim: Bool) throws -> (Float, Int) {
            var parameters = MeshingParameters(voxelSize: voxel, threads: 1)
            parameters.trimUncovered = trim
            let (mesh, report) = try SurfelMesher.mesh(cloud, parameters: parameters)
            let xs = mesh.vertices.positions.map { max(abs($0.x), abs($0.y)) }
            return (xs.max() ?? 0, report.facesTrimmed)
        }
        let (untrimmed, none) = try extent(false), (trimmed, removed) = try extent(true)
        XCTAssertEqual(none, 0)
        XCTAssertGreaterThan(removed, 0)
        XCTAssertLessThan(trimmed, untrimmed)
        XCTAssertLessThanOrEqual(trimmed, side / 2 + 2 * voxel + voxel, "the mesh ends within a voxel of the last discs")
    }

    /// The attribute grid's cell table answers exactly what a dictionary of the same cells
    /// does: every stored cell its own range, every other cell nothing, including cells far
    /// from the origin, negative ones and ones that collide in the table.
    /// The volume pass walks only the rows `IntegrationRow.mayReach` keeps, inside
    /// `Surfels.writeExtent`. Against the per-voxel tests on a fine lattice around random tilted
    /// surfels: every voxel those tests take lies in a kept row and inside the extent, and most
    /// of the bounding cube's rows are skipped (so the test can fail both ways).
    func testVolumeRowsSkipOnlyRowsWithoutVoxels() {
        var state: UInt64 = 5
        func random() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)
        }
        let voxel: Float = 0.006, band = 2 * voxel
        var kept = 0, skipped = 0, taken = 0
        for _ in 0..<300 {
            var n = SIMD3<Float>(random() - 0.5, random() - 0.5, random() - 0.5)
            if random() < 0.2 { n = SIMD3(0, 0, 1) + 0.01 * n }    // nearly axis-aligned too
            n /= (n * n).sum().squareRoot()
            let support = 2 * min(max(voxel * (0.3 + 2 * random()), 0.75 * voxel), 2 * voxel)
            let p = SIMD3<Float>(random(), random(), random()) * 3 - 1.5
            var cloud = PointCloud(positions: [p])
            cloud.normals = [n]
            cloud.radius = [support / 2]
            let surfels = Surfels(cloud: cloud, normals: [n], voxel: voxel)
            XCTAssertEqual(surfels.support[0], support, accuracy: 1e-7)
            let support2 = support * support
            let margin = Surfels.lateralMargin(support: support, band: band)
            let extent = surfels.writeExtent(0, band: band, voxel: voxel)
            let m = SIMD3(abs(n.x), abs(n.y), abs(n.z))
            let axis = m.x >= m.y && m.x >= m.z ? 0 : (m.y >= m.z ? 1 : 2)
            let u = (axis + 1) % 3, v = (axis + 2) % 3
            let q = p / voxel, reach = Int(((support + band) / voxel).rounded(.up)) + 1
            let c = SIMD3<Int>(Int(q.x.rounded()), Int(q.y.rounded()), Int(q.z.rounded()))
            for j in -reach...reach {
                for i in -reach...reach {
                    var lattice = c
                    lattice[u] += i; lattice[v] += j
                    let wu = Float(lattice[u]) * voxel - p[u], wv = Float(lattice[v]) * voxel - p[v]
                    let rest = n[u] * wu + n[v] * wv
                    let e0 = (-band - rest) / n[axis], e1 = (band - rest) / n[axis]
                    let widen = 0.05 * voxel
                    let mayReach = IntegrationRow.mayReach(wu: wu, wv: wv, rest: rest, normalAlong: n[axis],
                                                           from: min(e0, e1) - widen, to: max(e0, e1) + widen,
                                                           within: support2 + margin)
                    if mayReach { kept += 1 } else { skipped += 1 }
                    for t in -reach...reach {
                        var voxelIndex = lattice
                        voxelIndex[axis] += t
                        // The tests of the volume pass's `visit`.
                        let offset = SIMD3<Float>(Float(voxelIndex.x), Float(voxelIndex.y), Float(voxelIndex.z)) * voxel - p
                        let d = (offset * n).sum()
                        guard abs(d) <= band else { continue }
                        let lateral = offset - d * n
                        guard (lateral * lateral).sum() <= support2 else { continue }
                        taken += 1
                        XCTAssertTrue(mayReach, "row \(i), \(j) of a surfel with normal \(n) skipped a voxel")
                        for k in 0..<3 {
                            XCTAssertLessThanOrEqual(abs(Float(voxelIndex[k]) - q[k]), extent[k], "axis \(k), normal \(n)")
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(taken, 10_000)
        XCTAssertGreaterThan(skipped, kept, "the row test should skip most rows of the bounding square")
    }

    func testCellRangesAgreeWithADictionary() {
        XCTAssertNil(CellRanges().range(of: .zero))
        XCTAssertNil(CellRanges([]).range(of: SIMD3(1, 2, 3)))
        var state: UInt64 = 99
        func next() -> Int32 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32(truncatingIfNeeded: Int64(bitPattern: state) >> 40) % 300
        }
        var reference: [SIMD3<Int32>: Range<Int>] = [:]
        var start = 0
        for _ in 0..<5000 {
            let cell = SIMD3(next(), next(), next())
            guard reference[cell] == nil else { continue }
            let length = Int(abs(next()) % 7) + 1
            reference[cell] = start..<(start + length)
            start += length
        }
        for extreme in [SIMD3<Int32>(Int32.max, Int32.min, 0), SIMD3(-1, -1, -1), SIMD3(1 << 20, -(1 << 20), 7)] {
            reference[extreme] = start..<(start + 1)
            start += 1
        }
        let table = CellRanges(reference.map { ($0.key, $0.value) })
        for (cell, range) in reference { XCTAssertEqual(table.range(of: cell), range, "\(cell)") }
        var absent = 0
        for _ in 0..<20000 {
            let cell = SIMD3(next(), next(), next())
            XCTAssertEqual(table.range(of: cell), reference[cell])
            if reference[cell] == nil { absent += 1 }
        }
        XCTAssertGreaterThan(absent, 1000)
    }

    /// Every disc containing a point is found, however much wider than the attribute grid's
    /// reach it is, and only those: small discs on a plane with discs of up to six voxels among
    /// them, against a brute-force search (discs over 16x the median radius are left out, as
    /// the map-agreement measure leaves them out).
    func testDiscLookupFindsWideDiscs() {
        let voxel: Float = 0.01
        var cloud = PointCloud(positions: [])
        var positions: [SIMD3<Float>] = [], radii: [Float] = []
        var state: UInt64 = 7
        func random() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)
        }
        for i in 0..<2000 {
            positions.append(SIMD3(random() * 0.5, random() * 0.5, 0.002 * (random() - 0.5)))
            // Mostly a voxel wide; every tenth up to 6 voxels; one 20 times the median.
            radii.append(i == 0 ? 20 * voxel : (i % 10 == 0 ? voxel * (1 + 5 * random()) : voxel * (0.5 + random())))
        }
        cloud = PointCloud(positions: positions)
        cloud.normals = [SIMD3<Float>](repeating: SIMD3(0, 0, 1), count: positions.count)
        cloud.radius = radii
        cloud.confidence = [Float](repeating: 1, count: positions.count)
        let surfels = Surfels(cloud: cloud, normals: cloud.normals!, voxel: voxel)
        let grid = SurfelGrid(surfels: surfels, cell: 2 * voxel)
        let lookup = DiscLookup(surfels: surfels, grid: grid)
        var median = surfels.radius
        median.sort()
        let cap = 16 * median[median.count / 2]
        var foundWide = 0
        for _ in 0..<3000 {
            let q = SIMD3<Float>(random() * 0.5, random() * 0.5, 0.004 * (random() - 0.5))
            var found: [Int] = []
            lookup.forEachDisc(containing: q, grid: grid) { found.append($0) }
            let expected = surfels.position.indices.filter {
                surfels.radius[$0] <= cap
                    && DiscIndex.contains(q - surfels.position[$0], normal: surfels.normal[$0], radius: surfels.radius[$0])
            }
            XCTAssertEqual(found.sorted(), expected)
            foundWide += expected.filter { surfels.radius[$0] * Float(2).squareRoot() > 2 * voxel }.count
        }
        XCTAssertGreaterThan(foundWide, 100, "the test must exercise discs beyond the grid's reach")
    }
}

