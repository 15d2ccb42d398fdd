import Foundation
import XCTest
import Geometry
import Imaging
import Mapping
import Semantics
import Sequences
import TestSupport
@testable import Pipeline

/// A source's frames without their ground-truth poses, so a tracked run starts at the identity
/// whatever the layout stores (a .klg made without a ground-truth sidecar has none).
final class WithoutPoses: FrameSource {
    let inner: FrameSource
    init(_ inner: FrameSource) { self.inner = inner }
    var name: String { inner.name }
    var layout: String { inner.layout }
    var intrinsics: Intrinsics { inner.intrinsics }
    var frameCount: Int { inner.frameCount }
    var capabilities: SequenceCapabilities { SequenceCapabilities(hasDepth: true, hasPoses: false) }
    var classSet: ClassSet? { nil }
    func frame(at index: Int) throws -> Frame {
        var frame = try inner.frame(at: index)
        frame.worldFromCamera = nil
        return frame
    }
}

/// Issue 13: replaying .klg logs through the reconstruction and the command line.
final class ReplayTests: XCTestCase {
    /// A .klg made from the PNG-50 kitchen frames reconstructs to the same map as the folder when
    /// tracking uses depth only: same surfel positions, normals, confidences and trajectory, bit
    /// for bit; only the surfel colours differ, by the JPEG error of the log's colour.
    func testKLGReconstructionEqualsTheFolders() throws {
        let url = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        let folder = WithoutPoses(try SequenceLoader.open(url))
        let log = dir.appendingPathComponent("kitchen.klg")
        let count = 20
        let writer = try KLGWriter(file: log, intrinsics: folder.intrinsics)
        let raw = try SequenceLoader.open(url, options: SequenceConversion.readerOptions())
        for k in 0..<count {
            var frame = try raw.frame(at: k)
            frame.worldFromCamera = nil
            try writer.append(frame)
        }
        try writer.complete()
        let klg = try SequenceLoader.open(log)
        XCTAssertEqual(klg.layout, "klg")
        XCTAssertFalse(klg.capabilities.hasPoses)

        var options = ReconstructionOptions()
        options.poses = .track
        options.selection = FrameSelection(start: 0, end: count)
        options.fusion.threads = 1
        let a = try Reconstruction(source: folder, predictor: nil, options: options)
        let b = try Reconstruction(source: PrefetchingFrameSource(klg), predictor: nil, options: options)
        XCTAssertTrue(a.run().isSuccess)
        XCTAssertTrue(b.run().isSuccess)
        XCTAssertEqual(a.framesFused, count)
        XCTAssertEqual(b.framesFused, count)
        XCTAssertEqual(a.trajectory.map(\.pose.matrix4RowMajor), b.trajectory.map(\.pose.matrix4RowMajor))
        XCTAssertGreaterThan(a.map.count, 100_000)
        XCTAssertEqual(a.map.positions, b.map.positions)
        XCTAssertEqual(a.map.normals, b.map.normals)
        XCTAssertEqual(a.map.confidences, b.map.confidences)
        var total = 0
        for (p, q) in zip(a.map.colors, b.map.colors) { total += abs(Int(p.r) - Int(q.r)) + abs(Int(p.g) - Int(q.g)) + abs(Int(p.b) - Int(q.b)) }
        let mean = Double(total) / Double(a.map.count * 3)
        XCTAssertLessThan(mean, 3, "surfel colours differ by \(mean) on average, more than JPEG q90 explains")
    }

    /// A ScanNet scan whose frame 2 has ScanNet's -inf pose: the run tracks (the scan is not
    /// fused with ground truth), frame 2 is fused but left out of the score, the rest are scored.
    func testScanNetInvalidPoseIsSkippedForScoring() throws {
        let url = try SharedData.require("7scenes-redkitchen-png50")
        let source = try SequenceLoader.open(url, options: SequenceConversion.readerOptions())
        let k = source.intrinsics
        let m = SensFile.intrinsics(fx: Float(k.fx), fy: Float(k.fy), cx: Float(k.cx), cy: Float(k.cy))
        var file = SensFile(colorIntrinsics: m, depthIntrinsics: m, colorSize: (640, 480), depthSize: (640, 480))
        for n in 0..<6 {
            let f = try source.frame(at: n)
            var raw: [UInt8] = []
            for z in f.depth!.pixels { let v = UInt16(z > 0 && z < 65 ? (z * 1000).rounded() : 0); raw += [UInt8(v & 0xFF), UInt8(v >> 8)] }
            file.records.append(.init(pose: n == 2 ? [Float](repeating: -.infinity, count: 16) : f.worldFromCamera!.matrix4RowMajor.map(Float.init),
                                      colorTime: UInt64(n + 1) * 33_000, depthTime: UInt64(n + 1) * 33_000,
                                      color: [UInt8](try JPEGCodec.encode(f.color, quality: 90)), depth: Zlib.compress(raw)!))
        }
        let dir = try SharedData.temporaryDirectory(self)
        let scan = dir.appendingPathComponent("scene.sens")
        try file.write(to: scan)
        let sens = try SequenceLoader.open(scan)
        XCTAssertFalse(sens.capabilities.hasPoses)
        var options = ReconstructionOptions()
        options.poses = .groundTruth
        XCTAssertThrowsError(try Reconstruction(source: sens, predictor: nil, options: options), "never fused as ground truth")
        options.poses = .track
        let run = try Reconstruction(source: PrefetchingFrameSource(sens), predictor: nil, options: options)
        XCTAssertTrue(run.run().isSuccess)
        XCTAssertEqual(run.framesFused, 6)
        XCTAssertEqual(run.groundTruthLeftOut.map(\.position), [2])
        XCTAssertEqual(run.scoredTrajectory.count, 5)
        let ate = try XCTUnwrap(run.absoluteTrajectoryError)
        XCTAssertLessThan(ate.rmse, 0.05, "tracking on the registered scan stays near the ground truth")
    }

    // MARK: command line

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try ProcessRunner.run(try ProcessRunner.semfuseBinary(), arguments)
    }

    /// A truncated log: the frames present are fused, the map is written, the run says how many
    /// and which frame stopped it, and exits non-zero.
    func testTruncatedLogFusesWhatIsThereAndExitsNonZero() throws {
        let url = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        let log = dir.appendingPathComponent("cut.klg")
        let made = try run(["convert", url.path, log.path, "--frames", "0:6", "-q"])
        XCTAssertEqual(made.status, 0, made.output)
        // Cut the file in the middle of frame 4.
        let reader = try KLGReader(file: log)
        let data = try Data(contentsOf: log)
        try data.prefix(Int(reader.entries[4].offset) + 1000).write(to: log)
        let output = dir.appendingPathComponent("map.ply")
        let result = try run(["reconstruct", log.path, "-o", output.path, "--no-preview"])
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.path), "the map fused so far is written")
        XCTAssertTrue(result.output.contains("declares 6 frames but only the first 4"), result.output)
        XCTAssertTrue(result.output.contains("frame 4") && result.output.contains("cut.klg"), result.output)
        XCTAssertTrue(result.output.contains("stopping after 4 fused frames"), result.output)
    }

    /// `convert` between layouts with --frames and --every; a .klg's poses and calibration
    /// come back through the sidecars; a folder target that is not empty is refused.
    func testConvertBetweenLayouts() throws {
        let url = try SharedData.require("7scenes-redkitchen-png50")
        let dir = try SharedData.temporaryDirectory(self)
        let log = dir.appendingPathComponent("k.klg")
        let a = try run(["convert", url.path, log.path, "--frames", "10:20", "--every", "3", "-q"])
        XCTAssertEqual(a.status, 0, a.output)
        XCTAssertTrue(a.output.contains("Wrote 4 of 4 selected frames"), a.output)
        let klg = try KLGReader(file: log)
        XCTAssertEqual(klg.frameCount, 4)
        XCTAssertEqual(try klg.frame(at: 1).timestamp, 163, "7-Scenes frame numbers are the timestamps (frame-000163)")
        XCTAssertTrue(klg.capabilities.hasPoses)

        let tum = dir.appendingPathComponent("tum")
        let b = try run(["convert", log.path, tum.path, "--format", "tum", "-q"])
        XCTAssertEqual(b.status, 0, b.output)
        let tumReader = try SequenceLoader.open(tum)
        XCTAssertEqual(tumReader.layout, "tum")
        XCTAssertEqual(tumReader.frameCount, 4)
        XCTAssertEqual(tumReader.intrinsics, klg.intrinsics)
        XCTAssertTrue(tumReader.capabilities.hasPoses)
        let original = try SequenceLoader.open(url).frame(at: 13)
        let back = try tumReader.frame(at: 1)
        XCTAssertEqual(back.depth!.pixels.map { ($0 * 1000).rounded() }, original.depth!.pixels.map { ($0 * 1000).rounded() })
        let t = back.worldFromCamera!.translation - original.worldFromCamera!.translation
        XCTAssertLessThan((t * t).sum().squareRoot(), 1e-6)

        let again = try run(["convert", log.path, tum.path, "--format", "tum", "-q"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.output.contains("not empty"), again.output)
        let mismatch = try run(["convert", url.path, dir.appendingPathComponent("x.klg").path, "--format", "tum"])
        XCTAssertNotEqual(mismatch.status, 0)
    }

    /// Recorded class probabilities survive a conversion into a semfuse folder; a .klg cannot
    /// hold them and the command says it dropped them.
    func testConvertKeepsProbabilitiesWhereTheTargetCanHoldThem() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let synth = dir.appendingPathComponent("synth")
        let made = try run(["synth", synth.path, "--frames", "2", "--width", "64", "--height", "48", "--record-probabilities", "-q"])
        XCTAssertEqual(made.status, 0, made.output)
        let copy = dir.appendingPathComponent("copy")
        let a = try run(["convert", synth.path, copy.path, "-q"])
        XCTAssertEqual(a.status, 0, a.output)
        let original = try SequenceLoader.open(synth), converted = try SequenceLoader.open(copy)
        XCTAssertTrue(converted.capabilities.hasProbabilities)
        XCTAssertTrue(converted.capabilities.hasLabels)
        XCTAssertEqual(converted.classSet, original.classSet)
        let p = try original.frame(at: 1), q = try converted.frame(at: 1)
        XCTAssertEqual(p.labels?.pixels, q.labels?.pixels)
        XCTAssertEqual(p.probabilities?.values, q.probabilities?.values, "float16 values survive a float16 round trip")
        XCTAssertEqual(p.color.pixels, q.color.pixels)

        let b = try run(["convert", synth.path, dir.appendingPathComponent("s.klg").path])
        XCTAssertEqual(b.status, 0, b.output)
        XCTAssertTrue(b.output.contains("dropped recorded class probabilities"), b.output)
        XCTAssertTrue(b.output.contains("dropped label images"), b.output)
    }

    /// A ScanNet scan with one -inf pose converted: a .klg (poses for every frame or none) drops
    /// them and says so; a 7-Scenes folder keeps the valid ones per frame; the colour comes at
    /// the depth size.
    func testConvertScanWithAnInvalidPose() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let (w, h) = (32, 24)
        let k = SensFile.intrinsics(fx: 30, fy: 30, cx: 15.5, cy: 11.5)
        let kc = SensFile.intrinsics(fx: 60, fy: 60, cx: 31.5, cy: 23.5)
        var file = SensFile(colorIntrinsics: kc, depthIntrinsics: k, colorSize: (2 * w, 2 * h), depthSize: (w, h))
        let color = ColorImage(width: 2 * w, height: 2 * h, pixels: (0..<(4 * w * h)).map { RGB8(UInt8($0 % 200), 90, 40) })
        for n in 0..<3 {
            var raw: [UInt8] = []
            for p in 0..<(w * h) { let v = UInt16(1000 + p % 500 + 10 * n); raw += [UInt8(v & 0xFF), UInt8(v >> 8)] }
            var pose = SensFile.identity
            pose[3] = Float(n) * 0.01
            file.records.append(.init(pose: n == 1 ? [Float](repeating: -.infinity, count: 16) : pose, colorTime: 0, depthTime: 0,
                                      color: [UInt8](try JPEGCodec.encode(color, quality: 90)), depth: Zlib.compress(raw)!))
        }
        let scan = dir.appendingPathComponent("scene0001_00.sens")
        try file.write(to: scan)
        let log = dir.appendingPathComponent("scene.klg")
        let a = try run(["convert", scan.path, log.path])
        XCTAssertEqual(a.status, 0, a.output)
        XCTAssertTrue(a.output.contains("1 of 3 frames have no valid pose"), a.output)
        XCTAssertTrue(a.output.contains("dropped ground-truth poses (2 of 3 frames have one"), a.output)
        let klg = try KLGReader(file: log)
        XCTAssertFalse(klg.capabilities.hasPoses)
        XCTAssertEqual(klg.intrinsics, Intrinsics(fx: 30, fy: 30, cx: 15.5, cy: 11.5, width: w, height: h))
        XCTAssertEqual(try klg.frame(at: 2).depth![0, 0], 1.02, accuracy: 1e-6)

        let folder = dir.appendingPathComponent("seven")
        let b = try run(["convert", scan.path, folder.path, "--format", "7scenes", "-q"])
        XCTAssertEqual(b.status, 0, b.output)
        let seven = try SevenScenesReader(folder: folder)
        XCTAssertEqual(seven.intrinsics.width, w)
        XCTAssertNotNil(try seven.frame(at: 0).worldFromCamera)
        XCTAssertNil(try seven.frame(at: 1).worldFromCamera)
        XCTAssertNotNil(try seven.frame(at: 1).poseError, "the missing pose is that frame's missing ground truth")
        XCTAssertEqual(try seven.frame(at: 2).worldFromCamera!.translation.x, 0.02, accuracy: 1e-6)
    }
}
