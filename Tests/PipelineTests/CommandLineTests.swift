import Export
import Foundation
import Imaging
import Sequences
import XCTest
import TestSupport

/// Runs the built `semfuse` binary the way scripts do.
final class CommandLineTests: XCTestCase {
    private func binary() throws -> URL { try ProcessRunner.semfuseBinary() }

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try ProcessRunner.run(try binary(), arguments)
    }

    func testScriptFormOfReconstruct() throws {
        let sequence = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        let ply = dir.appendingPathComponent("map.ply"), trajectory = dir.appendingPathComponent("poses.txt")
        let result = try run(["reconstruct", sequence.path, "--poses", "groundtruth", "-o", ply.path,
                              "--trajectory", trajectory.path, "--frames", "0:12", "--all-surfels", "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ply.path))
        XCTAssertEqual(try String(contentsOf: trajectory, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.count, 12)
        XCTAssertTrue(result.output.contains("Wrote \(ply.path)"), result.output)
    }

    /// A sequence without poses is tracked by default; `evaluate` scores the written trajectory
    /// against the original's ground truth (same timestamps).
    func testSequenceWithoutPosesIsTrackedAndEvaluated() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let original = root.appendingPathComponent("Sequences/synthetic-room")
        let source = try SequenceLoader.open(original)
        let dir = try SharedData.temporaryDirectory(self)
        let posesless = dir.appendingPathComponent("no-poses")
        let writer = try SemfuseSequenceWriter(folder: posesless, name: "no-poses", intrinsics: source.intrinsics, classSet: source.classSet)
        for k in 0..<40 {
            var frame = try source.frame(at: k)
            frame.worldFromCamera = nil
            try writer.append(frame)
        }
        try writer.finish()
        XCTAssertFalse(try SequenceLoader.open(posesless).capabilities.hasPoses)
        let ply = dir.appendingPathComponent("map.ply"), trajectory = dir.appendingPathComponent("map.txt")
        var result = try run(["reconstruct", posesless.path, "-o", ply.path, "--trajectory", trajectory.path, "--all-surfels", "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("40 of 40"), result.output)
        result = try run(["evaluate", original.path, "--trajectory", trajectory.path, "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let json = try JSONSerialization.jsonObject(with: Data(result.output[result.output.firstIndex(of: "{")!...].utf8)) as? [String: Any]
        let ate = json?["ate"] as? [String: Any]
        XCTAssertEqual(ate?["frames"] as? Int, 40)
        XCTAssertLessThan(ate?["rmse_m"] as? Double ?? 1, 0.01, "tracked without poses, scored against the original's ground truth")
    }

    func testBadInputsExitNonZeroWithAMessage() throws {
        let dir = try SharedData.temporaryDirectory(self)
        var result = try run(["reconstruct", dir.appendingPathComponent("missing").path, "-q"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("missing: not found"), result.output)
        result = try run(["reconstruct", dir.path, "--labels", "sometimes"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("--labels"), result.output)
        result = try run(["reconstruct", "--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("--poses"))
    }

    /// `semfuse predict <image.png> --weights <file.safetensors> --save-raw <dir>`, exactly as
    /// scripts call it, checked against the PyTorch outputs for the same image.
    func testScriptFormOfPredict() throws {
        let weights = try SharedData.require("network-golden/weights.safetensors")
        let u8 = try NPY.read(try SharedData.require("network-golden/in_96x128_u8.npy"))
        let (h, w) = (u8.shape[0], u8.shape[1])
        var pixels: [RGB8] = []
        for i in 0..<(h * w) {
            let r = UInt8(u8.values[3 * i]), g = UInt8(u8.values[3 * i + 1]), b = UInt8(u8.values[3 * i + 2])
            pixels.append(RGB8(r, g, b))
        }
        let image = ColorImage(width: w, height: h, pixels: pixels)
        let dir = try SharedData.temporaryDirectory(self)
        let png = dir.appendingPathComponent("frame.png"), raw = dir.appendingPathComponent("raw")
        try PNGCodec.writeRGB(image, to: png)
        let out = dir.appendingPathComponent("out")
        let result = try run(["predict", png.path, "--weights", weights.path, "--save-raw", raw.path, "-o", out.path, "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        let segm = try NPY.read(raw.appendingPathComponent("segm.npy"))
        let depth = try NPY.read(raw.appendingPathComponent("depth.npy"))
        let goldenSegm = try NPY.read(try SharedData.require("network-golden/out_96x128_segm.npy"))
        let goldenDepth = try NPY.read(try SharedData.require("network-golden/out_96x128_depth.npy"))
        XCTAssertEqual(segm.shape, [1, 40, 24, 32])
        XCTAssertEqual(depth.shape, [1, 1, 24, 32])
        let range = (goldenSegm.values.max()! - goldenSegm.values.min()!)
        XCTAssertLessThan(zip(segm.values, goldenSegm.values).map { abs($0 - $1) }.max()! / range, 1e-3)
        XCTAssertLessThan(zip(depth.values, goldenDepth.values).map { abs($0 - $1) }.max()!, 1e-3)
        let depthPNG = try PNGCodec.readGray16(out.appendingPathComponent("frame.depth.png"))
        XCTAssertEqual([depthPNG.width, depthPNG.height], [128, 96])
        let preview = try PNGCodec.readRGB(out.appendingPathComponent("frame.preview.png"))
        XCTAssertEqual([preview.width, preview.height], [3 * 128 + 8, 96], "input | labels | depth")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("frame.labels.png").path))
        // Missing weights: a clear message, non-zero exit.
        let missing = try run(["predict", png.path, "--weights", dir.appendingPathComponent("none.safetensors").path, "-o", out.path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.output.contains("none.safetensors") && missing.output.contains("no such file"), missing.output)
    }

    /// `semfuse mesh` needs oriented points and says so; on a map it wrote it makes a mesh.
    func testMeshCommand() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let bare = dir.appendingPathComponent("bare.ply")
        try Data("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 1\n0.01 0 1\n".utf8).write(to: bare)
        var result = try run(["mesh", bare.path, "-o", dir.appendingPathComponent("bare.mesh.ply").path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains(bare.path) && result.output.contains("no normals"), result.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bare.mesh.ply").path))

        // Oriented points from another tool, with neither radii nor colours nor labels: a
        // geometry-only mesh, and the radii it assumed said; rgb colours it cannot have.
        var plain = "ply\nformat ascii 1.0\nelement vertex 400\nproperty float x\nproperty float y\nproperty float z\n"
        plain += "property float nx\nproperty float ny\nproperty float nz\nend_header\n"
        for i in 0..<20 { for j in 0..<20 { plain += "\(Float(i) * 0.01) \(Float(j) * 0.01) 1 0 0 -1\n" } }
        let oriented = dir.appendingPathComponent("oriented.ply"), orientedMesh = dir.appendingPathComponent("oriented.mesh.ply")
        try Data(plain.utf8).write(to: oriented)
        result = try run(["mesh", oriented.path, "-o", orientedMesh.path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("vertex properties: x y z nx ny nz\n"), result.output)
        XCTAssertTrue(result.output.contains("radii: none in the map") && result.output.contains("neither labels nor colours"), result.output)
        XCTAssertGreaterThan(try PLYReader.read(orientedMesh).faces?.count ?? 0, 100)
        result = try run(["mesh", oriented.path, "-o", orientedMesh.path, "--color", "rgb"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains(oriented.path) && result.output.contains("red green blue"), result.output)
        // Normals scaled away from unit length are left out, and the summary says why.
        try Data(plain.replacingOccurrences(of: " 0 0 -1\n", with: " 0 0 -10\n").utf8).write(to: oriented)
        result = try run(["mesh", oriented.path, "-o", orientedMesh.path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("an empty mesh") && result.output.contains("400 surfels skipped: 400 without a unit-length normal"), result.output)

        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let map = dir.appendingPathComponent("room.ply")
        result = try run(["reconstruct", root.appendingPathComponent("Sequences/synthetic-room").path, "--frames", "0:20",
                          "-o", map.path, "--all-surfels", "--no-preview", "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        let mesh = dir.appendingPathComponent("room-mesh.ply")
        result = try run(["mesh", map.path, "-o", mesh.path, "--ascii", "--voxel-size", "0.03"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("Wrote \(mesh.path): mesh of"), result.output)
        XCTAssertTrue(result.output.contains("voxel 30.0 mm (given)"), result.output)
        let text = try String(contentsOf: mesh, encoding: .utf8)
        XCTAssertTrue(text.contains("format ascii 1.0") && text.contains("property list uchar int vertex_indices"))
        XCTAssertTrue(text.contains("property int label"), String(text.prefix(2000)))

        // `bench mesh` on the same map: one JSON line whose mesh matches what `mesh` wrote.
        result = try run(["bench", "mesh", map.path, "--voxel-size", "0.03", "--repeats", "2", "--threads", "2", "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let line = result.output.split(separator: "\n").first { $0.hasPrefix("{") }.map(String.init) ?? ""
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], result.output)
        for key in ["median_ms", "p10_ms", "p90_ms", "ms_per_100k_surfels", "volume_median_ms", "surface_median_ms",
                    "attributes_median_ms", "single_thread_median_ms", "speedup_vs_single_thread"] {
            XCTAssertNotNil(object[key], "\(key) in \(line)")
        }
        let written = try PLYReader.read(mesh)
        XCTAssertEqual(object["triangles"] as? Int, written.faces?.count, line)
        XCTAssertEqual(object["surfels"] as? Int, try PLYReader.read(map).pointCloud().count, line)
        XCTAssertEqual(object["voxel_mm"] as? Double ?? 0, 30, accuracy: 1e-3)
        XCTAssertLessThanOrEqual(object["p10_ms"] as? Double ?? 1, object["median_ms"] as? Double ?? 0)
    }

    /// `semfuse mesh --probabilities --mesh-per-class` on a map written with --probabilities: every
    /// vertex carries a distribution (sums to 1, its argmax is its label), and the per-class
    /// meshes split the whole mesh: each holds only its class, and together every triangle once.
    func testMeshWithProbabilitiesSplitByClass() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let map = dir.appendingPathComponent("room.ply")
        var result = try run(["reconstruct", root.appendingPathComponent("Sequences/synthetic-room").path, "--frames", "0:20",
                              "-o", map.path, "--probabilities", "--no-preview", "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        let mesh = dir.appendingPathComponent("room.mesh.ply"), parts = dir.appendingPathComponent("classes")
        result = try run(["mesh", map.path, "-o", mesh.path, "--probabilities", "--mesh-per-class", parts.path,
                          "--voxel-size", "0.03", "--no-preview"])
        XCTAssertEqual(result.status, 0, result.output)
        let whole = try PLYReader.read(mesh)
        let vertices = whole.pointCloud()
        let labels = try XCTUnwrap(vertices.labels), probabilities = try XCTUnwrap(vertices.classProbabilities, "prob_* per vertex")
        let classes = probabilities.classCount
        XCTAssertEqual(classes, 40)
        XCTAssertEqual(probabilities.values.count, classes * vertices.count)
        for v in 0..<vertices.count {
            let row = probabilities.values[(v * classes)..<((v + 1) * classes)]
            XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-3, "vertex \(v)")
            if labels[v] < 0 {
                // Only surfels without a prediction reach it: uniform, as the map writes them.
                XCTAssertEqual(row.max()! - row.min()!, 0, accuracy: 1e-6, "vertex \(v)")
            } else {
                XCTAssertEqual(row.firstIndex(of: row.max()!)! - v * classes, Int(labels[v]), "vertex \(v)")
            }
        }
        let faces = try XCTUnwrap(whole.faces)
        var perClassFaces = 0
        let files = try FileManager.default.contentsOfDirectory(atPath: parts.path).filter { $0.hasSuffix(".ply") }
        XCTAssertGreaterThan(files.count, 2, "\(files)")
        for name in files {
            let part = try PLYReader.read(parts.appendingPathComponent(name))
            let id = name.hasPrefix("unlabelled") ? -1 : try XCTUnwrap(Int(name.prefix { $0.isNumber }), name)
            let partLabels = try XCTUnwrap(part.pointCloud().labels)
            let partFaces = part.faces ?? []
            perClassFaces += partFaces.count
            for f in partFaces {
                // A face belongs to the class of its vertices' majority; each part holds its own class.
                let counts = [f.x, f.y, f.z].filter { Int(partLabels[Int($0)]) == id }.count
                XCTAssertGreaterThanOrEqual(counts, 1, "\(name): a face without a vertex of class \(id)")
            }
        }
        XCTAssertEqual(perClassFaces, faces.count, "every triangle in exactly one class mesh")

        // `evaluate --mesh-labels`: the mesh's labels against the map it was made from. Every
        // vertex is compared or counted as inside no disc; on the room's consistent labels
        // nearly all agree. A point cloud given as the mesh is refused.
        let room = root.appendingPathComponent("Sequences/synthetic-room").path
        result = try run(["evaluate", room, "--map", mesh.path, "--mesh-labels", map.path, "--every", "10", "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.output[result.output.firstIndex(of: "{")!...].utf8)) as? [String: Any])
        let agreement = try XCTUnwrap(json["mesh_labels"] as? [String: Any], result.output)
        let covering = try XCTUnwrap(agreement["covering_discs"] as? [String: Any])
        XCTAssertEqual(agreement["vertices"] as? Int, vertices.count)
        XCTAssertEqual((covering["compared"] as? Int ?? 0) + (agreement["uncovered"] as? Int ?? 0), vertices.count)
        XCTAssertGreaterThan(covering["fraction"] as? Double ?? 0, 0.9, result.output)
        XCTAssertGreaterThan((agreement["nearest_surfel"] as? [String: Any])?["fraction"] as? Double ?? 0, 0.9, result.output)
        XCTAssertEqual((agreement["covering_by_share"] as? [[String: Any]])?.count, 4)
        result = try run(["evaluate", room, "--map", map.path, "--mesh-labels", map.path, "--every", "10"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("has no faces"), result.output)
    }

    func testBenchNetworkPrintsJSON() throws {
        let result = try run(["bench", "network", "--size", "64x48", "--threads", "1", "--runs", "3", "--warmup", "1", "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let line = result.output.split(separator: "\n").first { $0.hasPrefix("{") }.map(String.init) ?? ""
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        for key in ["median_ms", "min_ms", "max_ms", "runs", "gflops", "gemm_floor_ms", "ratio_to_gemm_floor"] { XCTAssertNotNil(object?[key], "\(key) in \(line)") }
        XCTAssertEqual(object?["runs"] as? Int, 3)
        XCTAssertLessThanOrEqual(object?["min_ms"] as? Double ?? 1, object?["median_ms"] as? Double ?? 0)
    }

    /// The benches' JSON lines that scripts read (issue 12's command contract): `bench fusion
    /// --no-baseline --json` and `bench tracking --resolution both --json`.
    func testBenchFusionAndTrackingKeepTheirJSONContract() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let room = root.appendingPathComponent("Sequences/synthetic-room").path
        func object(_ output: String) throws -> [String: Any]? {
            let line = output.split(separator: "\n").last { $0.hasPrefix("{") }.map(String.init) ?? ""
            return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        var result = try run(["bench", "fusion", room, "--frames", "0:20", "--no-baseline", "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let fusion = try object(result.output)
        XCTAssertGreaterThan(fusion?["median_ms"] as? Double ?? 0, 0, result.output)
        XCTAssertGreaterThan(fusion?["bytes_per_surfel"] as? Double ?? 0, 0, result.output)

        result = try run(["bench", "tracking", room, "--frames", "0:20", "--resolution", "both", "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let rows = try object(result.output)?["results"] as? [[String: Any]] ?? []
        XCTAssertEqual(rows.map { [$0["width"] as? Int ?? 0, $0["height"] as? Int ?? 0] }, [[224, 168], [112, 84]], result.output)
        for row in rows {
            for key in ["tracking_median_ms", "tracking_fusion_median_ms", "ate_rmse_mm", "frames_per_second"] {
                XCTAssertNotNil(row[key] as? Double, "\(key) in \(row)")
            }
            XCTAssertLessThan(row["ate_rmse_mm"] as? Double ?? .infinity, 50, "\(row)")
            XCTAssertNotNil(row["closures"] as? [[String: Any]], "each closure listed (none on 20 frames): \(row)")
            XCTAssertNotNil(row["rejections"] as? [String: Any], "refused registrations by check: \(row)")
        }
    }

    /// RGB-only reconstruction (network depth), then predictions recorded once and replayed
    /// without the network.
    func testNetworkReconstructionRecordAndReplay() throws {
        let weights = try SharedData.require("network-golden/weights.safetensors")
        let sequence = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        var result = try run(["reconstruct", sequence.path, "--network", weights.path, "--depth", "predicted", "--frames", "0:3",
                              "--poses", "groundtruth", "--all-surfels", "-o", dir.appendingPathComponent("rgb-only.ply").path, "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("Network: ran on 3 of 3 frames"), result.output)
        let recorded = dir.appendingPathComponent("recorded")
        result = try run(["predict", sequence.path, "--weights", weights.path, "--frames", "0:3", "--record", recorded.path,
                          "-o", dir.appendingPathComponent("pred").path, "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        // The predicted depth PNGs score against the sensor depth.
        result = try run(["evaluate", sequence.path, "--depth-predictions", dir.appendingPathComponent("pred").path, "--every", "1", "--json"])
        XCTAssertEqual(result.status, 0, result.output)
        let json = result.output[result.output.firstIndex(of: "{")!...]
        let depth = (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["depth"] as? [String: Any]
        XCTAssertEqual(depth?["frames"] as? Int, 3, result.output)
        XCTAssertNotNil(depth?["abs_rel"] as? Double)
        result = try run(["reconstruct", recorded.path, "--labels", "recorded", "--all-surfels",
                          "-o", dir.appendingPathComponent("replay.ply").path, "-q"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("recorded probabilities"), result.output)
        // Asking for predicted depth without weights is refused up front.
        result = try run(["reconstruct", sequence.path, "--depth", "predicted"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("--network"), result.output)
    }
}
