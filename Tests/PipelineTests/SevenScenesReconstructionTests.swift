import Foundation
import XCTest
import Geometry
import Export
import Imaging
import Mapping
import Sequences
import TestSupport
@testable import Pipeline

/// Real data: 50 Kinect v1 frames of 7-Scenes "redkitchen" (frames 150-199) with ground-truth
/// poses. Needs ../shared/data/7scenes-redkitchen-png50.
final class SevenScenesReconstructionTests: XCTestCase {
    /// Fuses 40 frames, renders the map into the 10 held-out frames and compares with their
    /// measured depth.
    func testMapAgreesWithHeldOutDepth() throws {
        let url = try SharedData.require("7scenes-redkitchen-png50")
        let source = try SequenceLoader.open(url, options: ReaderOptions())
        XCTAssertEqual(source.frameCount, 50)
        let heldOut = Set(stride(from: 4, to: 50, by: 5))
        let fusion = SurfelFusion(intrinsics: source.intrinsics, classCount: 0)
        for i in 0..<50 where !heldOut.contains(i) {
            let frame = try source.frame(at: i)
            try fusion.integrate(depth: XCTUnwrap(frame.depth), color: frame.color, worldFromCamera: XCTUnwrap(frame.worldFromCamera))
        }
        var differences = [Float]()
        var covered = 0, measured = 0
        for i in heldOut.sorted() {
            let frame = try source.frame(at: i)
            let depth = try XCTUnwrap(frame.depth)
            let pose = try XCTUnwrap(frame.worldFromCamera)
            // Surfels confirmed at least a few times; a 50-frame map has few fully stable ones.
            let render = SurfelRenderer().render(fusion.map, cameraFromWorld: pose.inverse, intrinsics: source.intrinsics,
                                                 selection: .init(minimumConfidence: 2))
            for p in 0..<depth.count where depth.pixels[p] > 0 && depth.pixels[p] <= 3 {
                measured += 1
                let z = render.depth.pixels[p]
                guard z > 0 else { continue }
                covered += 1
                differences.append(abs(z - depth.pixels[p]))
            }
        }
        differences.sort()
        let median = differences[differences.count / 2]
        let coverage = Double(covered) / Double(measured)
        print(String(format: "7-Scenes held-out depth: median |rendered - measured| = %.2f mm, p90 %.1f mm, coverage %.1f %% of %d pixels",
                     median * 1000, differences[differences.count * 9 / 10] * 1000, coverage * 100, measured))
        XCTAssertLessThanOrEqual(median, 0.02)
        XCTAssertGreaterThan(coverage, 0.7)
    }

    /// Issue 10's goal on the PNG-50 frames with ground-truth poses and default flags: the point
    /// cloud and the mesh each cover the measured surface (median depth-to-map distance ≤ 0.55 cm,
    /// ≥ 96 % of the measured points within 2 cm) without leaving it (median map-to-depth
    /// distance ≤ 0.3 cm for the point cloud; the mesh's 0.327 cm, coarsened where the surfels
    /// are sparse, is bounded at 0.33 cm (0.350 cm without the coarsening), see docs/results.md
    /// on why its vertices score above the surfels). The mesh also covers at least as much of
    /// the measured surface within 2 cm as Open3D's TSDF mesh of the same frames, measured the
    /// same way (96.235 %; ours 96.285 % at the 0.85x voxel).
    func testDefaultMapAndMeshCoverTheMeasuredSurface() throws {
        let url = try SharedData.require("7scenes-redkitchen-png50")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("png50-mesh-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var request = ReconstructionRequest(sequence: url)
        request.output = folder.appendingPathComponent("map.ply")
        var mesh = MeshRequest(output: folder.appendingPathComponent("map.mesh.ply"))
        request.mesh = mesh
        request.preview = false
        request.fusion.keepConfidence = 1  // what `semfuse reconstruct` sets without flags
        let result = try ReconstructionJob.run(request)
        let source = try SequenceLoader.open(url, options: ReaderOptions())
        let cloud = try PLYReader.read(result.output).pointCloud()
        let meshFile = try PLYReader.read(mesh.output)
        let faces = try XCTUnwrap(meshFile.faces)
        let maps: [(String, [SIMD3<Float>], [SIMD3<UInt32>]?)] = try [("point cloud", cloud.positions, nil),
                                                                       ("mesh", meshFile.pointCloud().positions, faces)]
        let scores = try maps.map { name, points, triangles in
            let score = try XCTUnwrap(MapGeometryScore.compute(map: points, triangles: triangles, source: source, every: 1))
            print(String(format: "PNG-50 default %@: accuracy %.3f cm, completeness %.3f cm, %.2f %% within 2 cm (%d points)", name,
                         score.accuracyMedian * 100, score.completenessMedian * 100, score.completenessWithin2cm * 100, points.count))
            XCTAssertLessThanOrEqual(score.completenessMedian, 0.0055, name)
            XCTAssertGreaterThanOrEqual(score.completenessWithin2cm, 0.96, name)
            return score
        }
        XCTAssertLessThanOrEqual(scores[0].accuracyMedian, 0.003)
        XCTAssertLessThanOrEqual(scores[1].accuracyMedian, 0.0033)
        XCTAssertGreaterThanOrEqual(scores[1].completenessWithin2cm, 0.96235, "Open3D's mesh of these frames")
    }
}
