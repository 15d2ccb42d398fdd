import Foundation
import Geometry
import Imaging
import Mapping
import Export
import Sequences
import TestSupport
import XCTest
@testable import Pipeline

/// Relocalisation on the real kitchen: a camera that lost tracking across a gap in the sequence
/// (frames 200-259 removed: 44 cm and 10 degrees of motion, beyond ICP's reach) is found again
/// and the rest is fused into the same map.
final class RealRelocalisationTests: XCTestCase {
    /// A 7-Scenes folder of links to the given frames of the shared sequence.
    func sequence(_ frames: [Int]) throws -> URL {
        let shared = try SharedData.require("7scenes-redkitchen")
        let folder = try SharedData.temporaryDirectory(self).appendingPathComponent("gap")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("camera-intrinsics.txt"),
                                                   withDestinationURL: shared.appendingPathComponent("camera-intrinsics.txt"))
        // Renumbered, so a frame may come back (in the order given).
        for (i, f) in frames.enumerated() {
            for suffix in ["color.jpg", "depth.png", "pose.txt"] {
                try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent(String(format: "frame-%06d.%@", i, suffix)),
                                                           withDestinationURL: shared.appendingPathComponent(String(format: "frame-%06d.%@", f, suffix)))
            }
        }
        return folder
    }

    func track(_ url: URL, relocalise: Bool, keepConfidence: Float? = nil) throws -> Reconstruction {
        var options = ReconstructionOptions()
        options.poses = .track
        options.fusion.keepConfidence = keepConfidence
        options.relocalise = relocalise
        let r = try Reconstruction(source: try SequenceLoader.open(url), predictor: nil, options: options)
        XCTAssertTrue(r.run().isSuccess)
        return r
    }

    func testTrackingRecoversAfterAGap() throws {
        let url = try sequence(Array(150..<200) + Array(260..<290))
        let lost = try track(url, relocalise: false)
        XCTAssertGreaterThan(lost.trackingFailures.count, 20, "without relocalisation the camera stays lost")
        XCTAssertTrue(lost.relocalisations.isEmpty)

        let found = try track(url, relocalise: true)
        XCTAssertEqual(found.framesFused, 80, "\(found.trackingFailures.prefix(3))")
        let first = try XCTUnwrap(found.relocalisations.first)
        XCTAssertEqual(first.position, 50, "the first frame after the gap")
        XCTAssertGreaterThan(first.inliers, 15, "registered by keypoints, not from the keyframe's own pose")
        let ate = try XCTUnwrap(found.absoluteTrajectoryError)
        print("gap 150-199 + 260-289: \(ate), \(found.relocaliser!.keyframeCount) keyframes")
        XCTAssertLessThan(ate.rmse, 0.04, "one consistent trajectory, so one copy of the room")
    }

    /// Frames 0-49, then 250-279: across the gap the camera moved back and turned, and sees the
    /// old surface from further away; image corners no longer match (BRIEF has one scale), and
    /// surface shape (FPFH) registers the first frame after the gap. (`semfuse reconstruct`'s
    /// defaults: surfels kept from confidence 1.)
    func testSurfaceShapeRelocalisesWhereCornersDoNot() throws {
        let found = try track(try sequence(Array(0..<50) + Array(250..<280)), relocalise: true, keepConfidence: 1)
        XCTAssertEqual(found.framesFused, 80, "\(found.trackingFailures.prefix(3))")
        let first = try XCTUnwrap(found.relocalisations.first)
        XCTAssertEqual(first.position, 50, "the first frame after the gap")
        XCTAssertTrue(first.byShape, "registered by surface shape: \(first)")
        let ate = try XCTUnwrap(found.absoluteTrajectoryError)
        print("gap 0-49 + 250-279: \(ate), relocalised from keyframe \(first.keyframePosition) (\(first.inliers)/\(first.matches))")
        XCTAssertLessThan(ate.rmse, 0.02, "one consistent trajectory, so one copy of the room")
    }

    /// Frames 0-49, then 200-234: after the cut neither corners nor shape place the camera for
    /// three frames, so frame 52 starts a separate piece of map. At frame 81 the camera sees enough
    /// of the old surface to be relocalised, and the piece (frames 52-81, tracked on their own)
    /// joins the map: its frames are in the trajectory, where the ground truth has them.
    func testALostCameraBuildsAPieceThatJoinsTheMap() throws {
        let r = try track(try sequence(Array(0..<50) + Array(200..<235)), relocalise: true, keepConfidence: 1)
        XCTAssertEqual(r.pieces.count, 1)
        let piece = try XCTUnwrap(r.pieces.first)
        XCTAssertEqual(piece.firstPosition, 52, "three lost frames start a piece")
        let joined = try XCTUnwrap(piece.joinedAt, "\(piece)")
        XCTAssertEqual(joined, piece.lastPosition)
        XCTAssertTrue(r.leftPieces.isEmpty)
        // Frames 50 and 51 were lost before the piece began; every later frame is in the map.
        XCTAssertEqual(r.trackingFailures.map(\.position), Array(50..<52))
        XCTAssertEqual(r.framesFused, 85 - 2)
        XCTAssertEqual(r.trajectory.count, 83)
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        print("0-49 + 200-234: piece \(piece), \(ate)")
        XCTAssertEqual(ate.count, 83)
        XCTAssertLessThan(ate.rmse, 0.02, "the piece's frames placed where the ground truth has them: one room, not two")
    }

    /// Frames 414 back to 390, then 276-408 every 2nd (from a random-cut run): the piece starts at
    /// frame 27. At frame 53 (kitchen frame 332, 54 cm from keyframe 12's view) ICP from keyframe
    /// 12's pose alone passes every check at a wrong place, and joining there put the piece
    /// 0.3 m off (ATE 283 mm). Only matched keypoints or shape place a piece: it joins later,
    /// where the ground truth has it.
    func testICPFromAKeyframePoseAloneDoesNotPlaceAPiece() throws {
        let r = try track(try sequence(Array(stride(from: 414, through: 390, by: -1)) + Array(stride(from: 276, through: 408, by: 2))),
                          relocalise: true, keepConfidence: 1)
        let piece = try XCTUnwrap(r.pieces.first)
        XCTAssertEqual(piece.firstPosition, 27)
        let joined = try XCTUnwrap(piece.joinedAt, "\(piece)")
        XCTAssertGreaterThan(joined, 53)
        let placing = try XCTUnwrap(r.relocalisations.first { $0.position == joined })
        XCTAssertGreaterThan(placing.matches, 0, "placed by keypoints or shape: \(placing)")
        XCTAssertEqual(r.framesFused, 90)
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        print("414-390 + 276-408/2: piece \(piece), placed by \(placing), \(ate)")
        XCTAssertEqual(ate.count, 90)
        XCTAssertLessThan(ate.rmse, 0.02, "one room, not two")
        XCTAssertLessThan(ate.max, 0.03)
    }

    /// Frames 0-29, then 420-449: the camera goes on where the map never was. The piece it
    /// builds never meets the map, so nothing of it is fused into the map; `reconstruct` writes
    /// it beside the map, in its own frame, with its trajectory (and its mesh, when asked for).
    func testAPieceThatNeverMeetsTheMapIsWrittenBesideIt() throws {
        let url = try sequence(Array(0..<30) + Array(420..<450))
        var request = ReconstructionRequest(sequence: url)
        request.poses = .track
        request.labels = LabelChoice.none
        request.fusion.keepConfidence = 1   // `semfuse reconstruct`'s default
        let folder = try SharedData.temporaryDirectory(self, name: "left")
        request.output = folder.appendingPathComponent("map.ply")
        request.mesh = MeshRequest(output: folder.appendingPathComponent("map.mesh.ply"))
        let result = try ReconstructionJob.run(request)
        XCTAssertTrue(result.outcome.isSuccess)
        let r = result.reconstruction
        XCTAssertEqual(r.framesFused, 30, "only the first part is in the map")
        XCTAssertEqual(r.trajectory.count, 30)
        let left = try XCTUnwrap(r.leftPieces.first)
        XCTAssertNil(left.report.joinedAt)
        XCTAssertEqual(left.report.firstPosition, 32)
        XCTAssertEqual(left.report.lastPosition, 59)
        XCTAssertEqual(left.trajectory.count, 28)
        XCTAssertEqual(r.trackingFailures.count, 30, "the piece's frames are not in the map")
        let written = try PLYReader.read(folder.appendingPathComponent("map.piece-32-59.ply")).pointCloud()
        XCTAssertGreaterThan(written.count, 1000)
        let poses = try TUMTrajectory.read(folder.appendingPathComponent("map.piece-32-59.trajectory.txt"))
        XCTAssertEqual(poses.count, 28)
        let mesh = try PLYReader.read(folder.appendingPathComponent("map.mesh.piece-32-59.ply"))
        XCTAssertGreaterThan(mesh.faces?.count ?? 0, 1000, "the piece's mesh, beside the map's")
        XCTAssertTrue(result.summary.contains("never placed in the map"), result.summary)
    }

    /// Frames 0-19, then 420-459: as above, but the piece that never meets the map (frames 22-59)
    /// holds more frames than the map. It becomes the map (the `-o` file, the trajectory, the
    /// score), and the map the run began with is written beside it as a piece, with its poses.
    func testAPieceLargerThanTheMapBecomesTheMap() throws {
        let url = try sequence(Array(0..<20) + Array(420..<460))
        var request = ReconstructionRequest(sequence: url)
        request.poses = .track
        request.network = "deeplab"   // every 10th frame: 0 and 10 in the first map, 30, 40, 50 in the piece
        request.fusion.keepConfidence = 1
        request.preview = false
        let folder = try SharedData.temporaryDirectory(self, name: "promoted")
        request.output = folder.appendingPathComponent("map.ply")
        let result = try ReconstructionJob.run(request)
        XCTAssertTrue(result.outcome.isSuccess)
        let r = result.reconstruction
        let promoted = try XCTUnwrap(r.promotedPiece, result.summary)
        XCTAssertEqual(promoted.frameRange, "22-59")
        XCTAssertEqual(r.framesFused, 38)
        XCTAssertEqual(r.trajectory.count, 38)
        XCTAssertEqual(r.rawTrajectory.count, 38)
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        XCTAssertEqual(ate.count, 38, "the score is the new map's")
        XCTAssertLessThan(ate.rmse, 0.02)
        // The map the run began with, beside it: its 20 frames, its surfels, its poses.
        let former = try XCTUnwrap(r.leftPieces.first)
        XCTAssertTrue(former.report.wasTheMap)
        XCTAssertEqual(former.positions, Array(0..<20))
        XCTAssertEqual(r.leftPieces.count, 1)
        XCTAssertEqual(r.trackingFailures.map(\.position), Array(0..<22), "frames 20, 21 lost; 0-19 are not in the map")
        let written = try PLYReader.read(folder.appendingPathComponent("map.ply")).pointCloud()
        XCTAssertEqual(written.count, r.map.stableCount(threshold: 1))
        let beside = try PLYReader.read(folder.appendingPathComponent("map.piece-0-19.ply")).pointCloud()
        XCTAssertEqual(beside.count, former.map.stableCount(threshold: 1))
        XCTAssertGreaterThan(beside.count, 1000)
        let formerPoses = try TUMTrajectory.read(folder.appendingPathComponent("map.piece-0-19.trajectory.txt"))
        XCTAssertEqual(formerPoses.count, 20)
        // The first map started at frame 0's ground-truth pose, and keeps it.
        let truth0 = try XCTUnwrap(try SequenceLoader.open(url).frame(at: 0).worldFromCamera)
        XCTAssertLessThan((formerPoses[0].pose.translation - truth0.translation).length, 1e-6)
        XCTAssertEqual(try TUMTrajectory.read(folder.appendingPathComponent("map.trajectory.txt")).count, 38)
        XCTAssertTrue(result.summary.contains("became the map"), result.summary)
        XCTAssertTrue(result.summary.contains("tracking FAILED on 2 frames (20, 21)"), result.summary)
        XCTAssertEqual(r.framesWithPrediction, 5)
        XCTAssertEqual(r.framesWithPredictionInMap, 3, "the labels of frames 0 and 10 are in the first map")
        XCTAssertTrue(result.summary.contains("on 3 frames of the map (5 with those fused into separate pieces)"), result.summary)
    }

    /// Frames 0-49, 200-219, then 30-49 again: the piece of frames 52-69 cannot track the jump
    /// back, but the map finds the camera at once. With no frame placed in both, nothing says
    /// where the piece lies while the run goes on: it is left (kept, 18 frames), and the map goes
    /// on. After the run its surface shape places it in the map, verified from two of its views.
    func testAPieceIsLeftWhenOnlyTheMapFindsTheCameraAgain() throws {
        let r = try track(try sequence(Array(0..<50) + Array(200..<220) + Array(30..<50)), relocalise: true, keepConfidence: 1)
        let piece = try XCTUnwrap(r.pieces.first)
        XCTAssertEqual(r.pieces.count, 1)
        XCTAssertEqual(piece.firstPosition, 52)
        XCTAssertEqual(piece.lastPosition, 69)
        XCTAssertTrue(piece.kept)
        XCTAssertEqual(r.relocalisations.first?.position, 70, "the first frame back in the mapped part")
        let (a, b) = try XCTUnwrap(piece.placedAfterTheRun, "left during the run, placed after it: \(piece)")
        XCTAssertTrue(a >= 52 && a <= 69 && b >= 52 && b <= 69 && a != b, "two of the piece's keyframes: \(a), \(b)")
        XCTAssertTrue(r.leftPieces.isEmpty)
        XCTAssertEqual(r.trajectory.count, 88)
        XCTAssertTrue(Summary.pieces(r.pieces).contains("left, then placed in the map after the run by surface shape"), Summary.pieces(r.pieces))
        XCTAssertEqual(r.framesFused, 88, "frames 0-49, the piece's 18 and the 20 frames back")
        XCTAssertEqual(r.trackingFailures.map(\.position), [50, 51])
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        print("0-49 + 200-219 + 30-49: \(ate)")
        XCTAssertLessThan(ate.rmse, 0.015, "\(ate)")
        XCTAssertLessThan(ate.max, 0.03, "\(ate)")
    }

    /// Two renders from one pose overlap where both have surface, and agree where their depths
    /// are within 3 cm (or 3 % of the depth).
    func testRendersOverlapAndAgreeWhereBothHaveSurface() {
        let k = Intrinsics(fx: 100, fy: 100, cx: 2, cy: 1, width: 4, height: 2)
        func map(_ depths: [Float]) -> VertexNormalMap {
            VertexNormalMap(intrinsics: k, vertices: depths.map { SIMD3(0, 0, $0) }, normals: depths.map { _ in SIMD3(0, 0, -1) })
        }
        let o = Reconstruction.overlap(map([1, 1, 2, 0, 3, 0, 1, 1]), map([1.02, 1.2, 2.05, 1, 3.1, 0, 0, 0]))
        XCTAssertEqual(o.both, 4.0 / 8, accuracy: 1e-12)
        XCTAssertEqual(o.agreeing, 2.0 / 4, accuracy: 1e-12, "1 vs 1.02 and 2 vs 2.05 agree; 1 vs 1.2 and 3 vs 3.1 do not")
        XCTAssertEqual(Reconstruction.overlap(map([1]), map([1, 1])).both, 0, "renders of different sizes do not overlap")
    }

    /// The piece of `testALostCameraBuildsAPieceThatJoinsTheMap` with the sensor covered for 10
    /// of its frames (no depth): they are not fused, but do not end the piece, which tracks on
    /// once the sensor sees again and joins the map as before.
    func testACoveredSensorDoesNotEndAPiece() throws {
        let url = try sequence(Array(0..<50) + Array(200..<240))
        for position in 65..<75 {
            let file = url.appendingPathComponent(String(format: "frame-%06d.depth.png", position))
            try FileManager.default.removeItem(at: file)
            try PNGCodec.writeGray16(Image<UInt16>(width: 640, height: 480, repeating: 0), to: file)
        }
        let r = try track(url, relocalise: true, keepConfidence: 1)
        XCTAssertEqual(r.pieces.count, 1, "\(r.pieces)")
        let piece = try XCTUnwrap(r.pieces.first)
        XCTAssertEqual(piece.firstPosition, 52)
        XCTAssertNotNil(piece.joinedAt, "\(piece)")
        XCTAssertEqual(r.trackingFailures.map(\.position), [50, 51] + Array(65..<75))
        XCTAssertEqual(r.framesFused, 90 - 12)
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        XCTAssertLessThan(ate.rmse, 0.02, "\(ate)")
    }

    /// Frames 0-29, 420-449, then 421-430 again: the piece (in surface the map never saw) cannot
    /// track the jump back, and its own keyframes place the frame in it, so it goes on as one
    /// piece of 38 frames whose poses agree with the ground truth. Larger than the map of frames
    /// 0-29, it becomes the map when the run ends.
    func testAPieceRelocalisesInItself() throws {
        let url = try sequence(Array(0..<30) + Array(420..<450) + Array(421..<431))
        let r = try track(url, relocalise: true, keepConfidence: 1)
        XCTAssertEqual(r.pieces.count, 2, "the piece, and the map the run began with: \(r.pieces)")
        let piece = try XCTUnwrap(r.promotedPiece)
        XCTAssertEqual(piece.firstPosition, 32)
        XCTAssertEqual(piece.lastPosition, 69)
        XCTAssertEqual(r.trajectory.count, 38, "every frame from 32 on, the jump back included")
        XCTAssertEqual(r.leftPieces.map(\.report.frameRange), ["0-29"])
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        print("piece 32-69 with a jump back: \(ate)")
        XCTAssertEqual(ate.count, 38)
        XCTAssertLessThan(ate.rmse, 0.02)
    }

    /// Frames 0-49, every other frame of 200-224, 30-49 again, then on from 50 to 229 (every other
    /// frame, the odd ones from 199): the piece of frames 52-62 is left when the map finds the
    /// camera back at frame 30, and the map, tracking on, comes to the piece's surface near
    /// frame 200. There the piece is placed on two frames that agree and joins the map: its
    /// frames go into the trajectory in sequence order, where the ground truth has them.
    func testALeftPieceJoinsWhenTheMapComesToIt() throws {
        let frames = Array(0..<50) + Array(stride(from: 200, to: 225, by: 2)) + Array(30..<50) + Array(stride(from: 50, to: 199, by: 2))
            + Array(stride(from: 199, to: 230, by: 2))
        let r = try track(try sequence(frames), relocalise: true, keepConfidence: 1)
        XCTAssertEqual(r.pieces.count, 1, "\(r.pieces)")
        let piece = try XCTUnwrap(r.pieces.first)
        XCTAssertEqual(piece.firstPosition, 52)
        XCTAssertEqual(piece.lastPosition, 62)
        XCTAssertTrue(piece.joinedLater, "\(piece)")
        let joined = try XCTUnwrap(piece.joinedAt)
        XCTAssertGreaterThan(joined, 130, "the map reaches the piece's surface near frame 200 (position \(joined))")
        XCTAssertTrue(r.leftPieces.isEmpty, "a piece that joined is not written beside the map")
        XCTAssertEqual(r.trackingFailures.map(\.position), [50, 51], "the piece's frames are no longer counted lost")
        XCTAssertEqual(r.framesFused, frames.count - 2)
        let source = try SequenceLoader.open(try sequence(frames))
        let timestamps = try (0..<frames.count).filter { $0 != 50 && $0 != 51 }.map { try source.frame(at: $0).timestamp }
        XCTAssertEqual(r.trajectory.map(\.timestamp), timestamps, "in sequence order")
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        XCTAssertEqual(ate.count, frames.count - 2)
        print("left piece joined later: \(piece), \(ate)")
        // The piece's 11 frames are in the score: placed decimetres off (its frame started at
        // the map's last pose, half a metre away), they would dominate both figures.
        XCTAssertLessThan(ate.rmse, 0.035, "one trajectory, so one room")
        XCTAssertLessThan(ate.max, 0.06)
    }

    /// Frames 0-49, every other frame of 200-224, three frames at 420, then 201-259: the first
    /// piece (frames 52-62) is lost at the jump to 420 and left; the second, starting at frame
    /// 66 back near 200, comes to the first's surface and takes it in (placed on two agreeing
    /// frames), and later joins the map with it: both pieces' frames are in the trajectory, in
    /// sequence order, where the ground truth has them.
    func testALeftPieceBecomesPartOfTheNextPiece() throws {
        let frames = Array(0..<50) + Array(stride(from: 200, to: 225, by: 2)) + Array(420..<423) + Array(201..<260)
        let r = try track(try sequence(frames), relocalise: true, keepConfidence: 1)
        XCTAssertEqual(r.pieces.count, 1, "the first piece became part of the second: \(r.pieces)")
        let piece = try XCTUnwrap(r.pieces.first)
        XCTAssertEqual(piece.firstPosition, 52)
        XCTAssertEqual(piece.frames, 11 + 40, "\(piece)")
        XCTAssertNotNil(piece.joinedAt, "\(piece)")
        XCTAssertTrue(r.leftPieces.isEmpty)
        XCTAssertEqual(r.trackingFailures.map(\.position), [50, 51, 63, 64, 65], "lost between the pieces only")
        XCTAssertEqual(r.framesFused, frames.count - 5)
        let stamps = r.trajectory.map(\.timestamp)
        XCTAssertEqual(stamps, stamps.sorted(), "in sequence order")
        let ate = try XCTUnwrap(r.absoluteTrajectoryError)
        print("a left piece taken in by the next: \(piece), \(ate)")
        XCTAssertEqual(ate.count, frames.count - 5)
        XCTAssertLessThan(ate.rmse, 0.02, "one trajectory, so one room")
        XCTAssertLessThan(ate.max, 0.04)
    }

    /// The summary lists the pieces that joined or were kept, and counts the small ones that
    /// were dropped instead of listing each.
    func testSummaryCountsThePiecesNotKept() {
        var joined = MapPieceReport(firstPosition: 10, lastPosition: 39, frames: 30, surfels: 1, joinedAt: 39, shiftMetres: 0.5, shiftDegrees: 10)
        joined.kept = false
        var later = MapPieceReport(firstPosition: 60, lastPosition: 79, frames: 20, surfels: 1, joinedAt: 200, shiftMetres: 0.25, shiftDegrees: 5)
        later.kept = true
        later.joinedLater = true
        var left = MapPieceReport(firstPosition: 90, lastPosition: 101, frames: 12, surfels: 1)
        left.kept = true
        let small = (0..<3).map { MapPieceReport(firstPosition: 300 + 10 * $0, lastPosition: 302 + 10 * $0, frames: 3, surfels: 1) }
        var placed = MapPieceReport(firstPosition: 110, lastPosition: 160, frames: 40, surfels: 1, joinedAt: 150, shiftMetres: 0.8, shiftDegrees: 14)
        placed.kept = true
        placed.joinedLater = true
        placed.placedAfterTheRun = (112, 150)
        placed.tookIn = ["130-139"]
        XCTAssertEqual(Summary.pieces([placed]), "frames 110-160 (40 fused) left, then placed in the map after the run by surface shape, verified from its keyframes of frames 112 and 150 (moved 800 mm / 14.0 deg) (with the piece of frames 130-139 placed in it after the run)")
        let text = Summary.pieces([joined] + small + [later, left])
        XCTAssertEqual(text, "frames 10-39 (30 fused) joined the map at frame 39 (moved 500 mm / 10.0 deg); "
                       + "frames 60-79 (20 fused) left, then joined the map at frame 200 when the camera came back to its surface (moved 250 mm / 5.0 deg); "
                       + "frames 90-101 (12 fused) never placed in the map, kept as a map of its own; "
                       + "3 never placed in the map and not kept (9 frames in all; kept are pieces of 10 frames or more, the 8 largest)")

        // A left piece larger than the map became the map: the pieces that joined before joined the first map.
        var former = MapPieceReport(firstPosition: 0, lastPosition: 39, frames: 35, surfels: 1)
        former.kept = true
        former.wasTheMap = true
        var promoted = MapPieceReport(firstPosition: 90, lastPosition: 199, frames: 110, surfels: 1)
        promoted.kept = true
        promoted.becameTheMap = true
        XCTAssertEqual(Summary.pieces([former, joined, promoted]),
                       "frames 0-39 (35 fused), the map the run began with, smaller than the piece that became the map, kept as a map of its own; "
                       + "frames 10-39 (30 fused) joined the map the run began with at frame 39 (moved 500 mm / 10.0 deg); "
                       + "frames 90-199 (110 fused) never met the map the run began with and, larger, became the map")
    }

    /// At most `maximum` left pieces are kept, those with the most frames.
    /// Two placements of a left piece agree within 3 cm and 2 degrees, and only within 5 run frames.
    func testPlacementsAgreeOnlyCloseInMotionAndInTime() {
        let first = Placement(position: 100, index: 40, transform: RigidTransform.exp(rho: SIMD3(0.5, 0, 0), omega: SIMD3(0, 0.3, 0)))
        func later(index: Int, metres: Double, degrees: Double) -> Placement {
            Placement(position: 100 + index - 40, index: index,
                      transform: first.transform * RigidTransform.exp(rho: SIMD3(0, metres, 0), omega: SIMD3(degrees * .pi / 180, 0, 0)))
        }
        XCTAssertTrue(first.isConfirmed(by: later(index: 41, metres: 0.02, degrees: 1)))
        XCTAssertTrue(first.isConfirmed(by: later(index: 45, metres: 0, degrees: 0)), "5 run frames later")
        XCTAssertFalse(first.isConfirmed(by: later(index: 46, metres: 0, degrees: 0)), "too late")
        XCTAssertFalse(first.isConfirmed(by: later(index: 41, metres: 0.04, degrees: 0)), "4 cm apart")
        XCTAssertFalse(first.isConfirmed(by: later(index: 41, metres: 0, degrees: 2.5)), "2.5 degrees apart")
        XCTAssertFalse(first.hasExpired(at: 45))
        XCTAssertTrue(first.hasExpired(at: 46))
    }

    func testOnlyTheLargestLeftPiecesAreKept() {
        var kept: [Reconstruction.LeftPiece] = []
        var dropped: [Int] = []
        for (k, frames) in [12, 30, 11, 50, 11, 40, 13].enumerated() {
            let report = MapPieceReport(firstPosition: k * 100, lastPosition: k * 100 + frames - 1, frames: frames, surfels: 0)
            if let gone = Reconstruction.keep(Reconstruction.LeftPiece(report: report, map: SurfelMap(classCount: 0), trajectory: [], positions: []),
                                              in: &kept, maximum: 4, frames: \.report.frames) {
                dropped.append(gone.report.frames)
            }
        }
        XCTAssertEqual(kept.map(\.report.frames), [30, 50, 40, 13])
        XCTAssertEqual(dropped, [11, 11, 12])
    }

    /// Keypoints with depth and RANSAC between the frames on either side of a 30-frame gap
    /// (24 cm, 10 degrees) agree with the ground-truth relative pose.
    func testKeypointRegistrationAcrossTheGapMatchesGroundTruth() throws {
        let source = try SequenceLoader.open(try sequence([199, 230]))
        let a = try source.frame(at: 0), b = try source.frame(at: 1)
        let detector = KeypointDetector()
        func features(_ f: Frame) throws -> KeypointSet {
            let color = try XCTUnwrap(f.color), depth = try XCTUnwrap(f.depth)
            return detector.detect(grey: IntensityMap.luma(color), width: color.width, height: color.height, depth: depth, intrinsics: source.intrinsics)
        }
        let ka = try features(a), kb = try features(b)
        let matches = KeypointDetector.match(kb, ka)
        let fit = try XCTUnwrap(RigidRANSAC.estimate(source: matches.map { kb.points[$0.0] }, target: matches.map { ka.points[$0.1] }))
        let truth = try XCTUnwrap(a.worldFromCamera).inverse * XCTUnwrap(b.worldFromCamera)
        let error = fit.targetFromSource.inverse * truth
        print("199 → 230: \(matches.count) matches, \(fit.inliers) inliers; error \(error.translationNorm * 100) cm, \(error.rotationAngle * 180 / .pi) deg; motion \(truth.translationNorm * 100) cm")
        XCTAssertLessThan(error.translationNorm, 0.05)
        XCTAssertLessThan(error.rotationAngle * 180 / .pi, 3)
    }
}

/// Surface-shape registration between two views of the synthetic room far apart, where the
/// answer is exact.
final class ShapeRegistrationTests: XCTestCase {
    func testFarViewsOfTheRoomRegisterByShape() throws {
        let renderer = SyntheticRenderer(intrinsics: SyntheticRenderer.defaultIntrinsics(width: 320, height: 240))
        // Depth without sensor noise: the answer is then the geometry's alone.
        let ra = renderer.render(0), rb = renderer.render(60)
        let a = ra.frame, b = rb.frame
        let truth = try XCTUnwrap(a.worldFromCamera).inverse * XCTUnwrap(b.worldFromCamera)
        XCTAssertGreaterThan(truth.translationNorm, 0.3, "far beyond ICP's reach: \(truth)")
        let extractor = PointFeatureExtractor()
        let fa = extractor.extract(depth: ra.cleanDepth, intrinsics: renderer.intrinsics)
        let fb = extractor.extract(depth: rb.cleanDepth, intrinsics: renderer.intrinsics)
        let matches = PointFeatureExtractor.match(fb, fa)
        let fit = try XCTUnwrap(RigidRANSAC.estimate(source: matches.map { fb.points[$0.0] }, target: matches.map { fa.points[$0.1] },
                                                     parameters: Relocaliser.Parameters().shapeRANSAC))
        let error = fit.targetFromSource.inverse * truth
        print("room 0 → 60: \(fa.count) / \(fb.count) points, \(matches.count) matches, \(fit.inliers) inliers; error \(error.translationNorm * 100) cm, \(error.rotationAngle * 180 / .pi) deg; motion \(truth.translationNorm * 100) cm, \(truth.rotationAngle * 180 / .pi) deg")
        XCTAssertLessThan(error.translationNorm, 0.05)
        XCTAssertLessThan(error.rotationAngle * 180 / .pi, 3)
    }
}
