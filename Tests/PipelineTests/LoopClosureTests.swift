import Foundation
import Geometry
import Imaging
import Mapping
import Pipeline
import Sequences
import XCTest

/// Local loop closure on the synthetic room: the camera goes once round the room with poses that
/// drift by a known, growing amount (as accumulated tracking error does); when it comes back to
/// the surface it mapped first (inactive by then), the closure must bend the map and the
/// trajectory back onto the truth.
final class LoopClosureTests: XCTestCase {
    static let loop = 180
    static let intrinsics = SyntheticRenderer.defaultIntrinsics(width: 160, height: 120)

    /// World-frame drift after `k` frames: a turn about the vertical through the room's centre
    /// and a slide, both growing linearly (3 degrees and 3 cm per loop).
    static func drift(_ k: Int) -> RigidTransform {
        let s = Double(k) / Double(loop)
        return RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 0, 1), angle: s * 3 * .pi / 180),
                              translation: SIMD3(0.03 * s, 0.01 * s, 0))
    }

    /// Fusion as the pipeline's defaults (keep confidence 1), with a 40-frame active window so
    /// one loop of 180 frames leaves the start inactive before the camera is back.
    static func makeFusion() -> SurfelFusion {
        var parameters = FusionParameters()
        parameters.timeDelta = 40
        parameters.keepConfidence = 1
        parameters.threads = 2
        return SurfelFusion(intrinsics: intrinsics, classCount: 0, parameters: parameters)
    }

    struct Run {
        var fusion: SurfelFusion
        var truth: [RigidTransform] = []
        var drifted: [RigidTransform] = []
        var ticks: [Int] = []
        var closures: [(frame: Int, report: LoopClosureReport, deformation: MapDeformation, pose: RigidTransform)] = []
        var rejected: [String] = []
    }

    /// The loop's frames with one colour ray per pixel, as these tests were written with: 2x2 rays
    /// (the renderer's default) took the suite's loop-closure tests from about 60 to 240 s, and
    /// these tests track by depth (the keyframes' colour only has to be recognisable).
    static func renderer(_ intrinsics: Intrinsics) -> SyntheticRenderer {
        var renderer = SyntheticRenderer(trajectory: SyntheticTrajectory(framesPerLoop: loop), intrinsics: intrinsics)
        renderer.colorSamples = 1
        return renderer
    }

    /// Fuses the drifted frames, trying a loop closure before each like the pipeline does. After
    /// the first closure the run stops: that is the moment the test is about.
    func fuseUntilClosure(frames: Int, closing: Bool = true, closer: LoopCloser = LoopCloser()) throws -> Run {
        let renderer = Self.renderer(Self.intrinsics)
        var run = Run(fusion: Self.makeFusion())
        for k in 0..<frames {
            let frame = renderer.render(k).frame
            let truth = try XCTUnwrap(frame.worldFromCamera)
            var pose = Self.drift(k) * truth
            if closing {
                switch closer.attempt(run.fusion, pose: pose) {
                case .closed(let report, let deformation, let corrected):
                    run.closures.append((k, report, deformation, corrected))
                    pose = corrected
                case .rejected(let reason):
                    run.rejected.append("\(k): \(reason)")
                default: break
                }
            }
            try run.fusion.integrate(depth: try XCTUnwrap(frame.depth), color: frame.color, worldFromCamera: pose)
            run.truth.append(truth)
            run.drifted.append(pose)
            run.ticks.append(run.fusion.tick)
            if !run.closures.isEmpty { break }
        }
        return run
    }

    func testClosureRemovesInjectedDrift() throws {
        let run = try fuseUntilClosure(frames: 220)
        let closure = try XCTUnwrap(run.closures.first, "no loop closure; rejected: \(run.rejected.suffix(5))")
        let k = closure.frame
        print("loop closed at frame \(k): \(closure.report)")
        XCTAssertGreaterThan(k, 60, "closure only once the camera is back at surface inactive for 40 frames")
        // The corrected camera is where the truth is, far closer than the drifted one.
        let drifted = Self.drift(k) * run.truth[k]
        let before = (drifted.translation - run.truth[k].translation).length
        let after = (closure.pose.translation - run.truth[k].translation).length
        print(String(format: "camera at the closure: %.1f mm from the truth, drifted %.1f mm", after * 1000, before * 1000))
        XCTAssertGreaterThan(before, 0.02)
        XCTAssertLessThan(after, 0.35 * before)
        XCTAssertLessThan((run.truth[k].inverse * closure.pose).rotationAngle, 0.3 * (run.truth[k].inverse * drifted).rotationAngle)
        XCTAssertLessThan(closure.report.residualAfter, closure.report.residualBefore * 0.5)

        // The trajectory bent by the closure (every frame before it) against the truth, rigidly
        // aligned as ATE is: the drift is mostly gone.
        let earlier = 0..<k
        let raw = try XCTUnwrap(AbsoluteTrajectoryError(estimated: earlier.map { run.drifted[$0] }, groundTruth: earlier.map { run.truth[$0] }))
        let bent = earlier.map { closure.deformation.deform(run.drifted[$0], time: run.ticks[$0]) }
        let corrected = try XCTUnwrap(AbsoluteTrajectoryError(estimated: bent, groundTruth: earlier.map { run.truth[$0] }))
        print("ATE before the closure \(raw), after \(corrected)")
        XCTAssertLessThan(corrected.rmse, 0.7 * raw.rmse)
        // Unaligned, frame by frame (the drift starts at zero, so the truth's frame is the
        // map's): the second half of the loop moves back towards the truth, the first quarter
        // (the old surface the loop closed on) stays where it was.
        func error(_ poses: [RigidTransform], _ frames: Range<Int>) -> Double {
            frames.map { (poses[$0].translation - run.truth[$0].translation).length }.reduce(0, +) / Double(frames.count)
        }
        let secondHalf = (k / 2)..<k, firstQuarter = 0..<(k / 4)
        print(String(format: "mean camera error, second half: %.1f -> %.1f mm; first quarter: %.1f -> %.1f mm",
                     error(run.drifted, secondHalf) * 1000, error(bent, secondHalf) * 1000,
                     error(run.drifted, firstQuarter) * 1000, error(bent, firstQuarter) * 1000))
        XCTAssertLessThan(error(bent, secondHalf), 0.4 * error(run.drifted, secondHalf))
        XCTAssertLessThan(error(bent, firstQuarter), error(run.drifted, firstQuarter) + 0.002)

        // The map: surface made in the second half of the loop (most drifted) moved towards the
        // true scene.
        let map = run.fusion.map
        let scene = SyntheticScene.livingRoom()
        let late = (0..<map.count).filter { map.initTimes[$0] > Int32(k / 2) && map.confidences[$0] >= 1 }
        XCTAssertGreaterThan(late.count, 2000)
        let errorAfter = try XCTUnwrap(scene.score(positions: late.map { map.positions[$0] }, labels: nil, classMap: nil)).medianDistance
        let unbent = try fuseUntilClosure(frames: k + 1, closing: false).fusion.map
        let lateUnbent = (0..<unbent.count).filter { unbent.initTimes[$0] > Int32(k / 2) && unbent.confidences[$0] >= 1 }
        let errorBefore = try XCTUnwrap(scene.score(positions: lateUnbent.map { unbent.positions[$0] }, labels: nil, classMap: nil)).medianDistance
        print(String(format: "late surface: median %.1f mm from the true scene without the closure, %.1f mm with it", errorBefore * 1000, errorAfter * 1000))
        XCTAssertLessThan(errorAfter, 0.75 * errorBefore)
    }

    /// The restart check (`LoopCloser.restart`, `LoopClosureParameters.restartFraction`) on two
    /// views of the bundled room six frames apart: ICP restarted from half of its own answer
    /// comes back to it, and restarted from half of an answer 4 cm and 2 degrees away from that
    /// minimum, it goes back to the minimum, not to the answer. (On the 7-Scenes kitchen played
    /// forwards and back, the two wrong local closures seen ended 112 and 237 mm from their
    /// answers when restarted, the correct ones within 0.5 mm: docs/results.md.)
    func testRestartComesBackToAMinimumButNotToAnotherPose() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try SequenceLoader.open(root.appendingPathComponent("Sequences/synthetic-room"))
        let f0 = try source.frame(at: 0), f1 = try source.frame(at: 6)
        let pose0 = try XCTUnwrap(f0.worldFromCamera), pose1 = try XCTUnwrap(f1.worldFromCamera)
        // The model is frame 0 as seen live (no warm-up: the prediction is filled from it).
        var noWarmup = FusionParameters()
        noWarmup.trackingModelWarmup = 0
        let fusion = SurfelFusion(intrinsics: source.intrinsics, classCount: 0, parameters: noWarmup)
        let live0 = fusion.liveFrame(depth: try XCTUnwrap(f0.depth))
        try fusion.integrate(depth: f0.depth!, color: f0.color, worldFromCamera: pose0, source: "", filteredDepth: live0.filteredDepth)
        fusion.acceptLiveFrame(live0.pyramid)
        let live1 = fusion.liveFrame(depth: try XCTUnwrap(f1.depth)).pyramid
        let model = fusion.predictedPyramid(from: pose0)

        let closer = LoopCloser()
        let found = closer.tracker.track(frame: live1, model: model, previousPose: .identity, threads: 2)
        XCTAssertNil(found.failure)
        let truth = pose0.inverse * pose1
        XCTAssertLessThan((found.pose.inverse * truth).translationNorm, 0.005, "ICP finds the motion (\(truth.translationNorm * 1000) mm)")

        let same = closer.restart(frame: live1, model: model, answer: found.pose, threads: 2)
        print(String(format: "restart from half of ICP's answer: %.2f mm %.3f deg from it", same.metres * 1000, same.degrees))
        XCTAssertNil(same.failure)
        XCTAssertLessThan(same.metres, 0.001)
        XCTAssertLessThan(same.degrees, 0.05)

        let off = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 1, 0), angle: 2 * .pi / 180), translation: SIMD3(0.04, 0, 0))
        let other = closer.restart(frame: live1, model: model, answer: found.pose * off, threads: 2)
        print(String(format: "restart from half of an answer 40 mm / 2 deg off: %.2f mm %.3f deg from it", other.metres * 1000, other.degrees))
        XCTAssertGreaterThan(other.metres, 0.03, "it went back to the minimum")
        let parameters = closer.parameters
        XCTAssertGreaterThan(other.metres, max(parameters.restartFloor, parameters.restartTolerance * off.translationNorm),
                             "the closure's test would refuse that answer")
    }

    /// The restart check decides before the map is bent: with a tolerance nothing can meet, the
    /// drifted loop that closes at the default (`testClosureRemovesInjectedDrift`) does not
    /// close, and the refusals say why.
    func testUnrepeatableRegistrationDoesNotBendTheMap() throws {
        var parameters = LoopClosureParameters()
        parameters.restartTolerance = 0
        parameters.restartFloor = -1
        parameters.restartFloorDegrees = -1
        let run = try fuseUntilClosure(frames: 205, closer: LoopCloser(parameters: parameters))
        XCTAssertTrue(run.closures.isEmpty, "closed at frame \(run.closures.first?.frame ?? -1)")
        let refusals = run.rejected.filter { $0.contains("registration not repeatable") }
        XCTAssertFalse(refusals.isEmpty, "rejected: \(run.rejected.suffix(5))")
        print("with an impossible restart tolerance: \(refusals.count) refusals, e.g. \(refusals.first ?? "")")
    }

    /// Without drift the old surface is recognised when it comes back into view (made active
    /// again, or joined by a closure), and whatever the registration finds is small: a closure
    /// must not damage a consistent map. (At 160x120 the old and new surface overlap on about
    /// 6 % of the pixels, so a registration can be a few millimetres off.)
    func testRejectionsAreTalliedByCheckMostFirst() {
        typealias Check = LoopCloser.Rejection.Check
        XCTAssertEqual(LoopCloser.Rejection.tally([:]), "")
        XCTAssertEqual(LoopCloser.Rejection.tally([.notRepeatable: 3, .fewInliers: 12, .beyondDrift: 3, .residual: 0]),
                       "12 too few inliers, 3 beyond the drift since the last agreement, 3 not repeatable")
    }

    func testNoDriftMeansNoHarm() throws {
        let renderer = Self.renderer(Self.intrinsics)
        let fusion = Self.makeFusion()
        let closer = LoopCloser()
        var recognised = 0
        for k in 0..<200 {
            let frame = renderer.render(k).frame
            var pose = try XCTUnwrap(frame.worldFromCamera)
            switch closer.attempt(fusion, pose: pose) {
            case .closed(let report, _, let corrected):
                recognised += 1
                print("closure without drift at frame \(k): \(report)")
                XCTAssertLessThan((corrected.translation - pose.translation).length, 0.01)
                XCTAssertLessThan((pose.inverse * corrected).rotationAngle * 180 / .pi, 0.5)
                pose = corrected
            case .reactivated(let n):
                recognised += n > 0 ? 1 : 0
            default: break
            }
            try fusion.integrate(depth: try XCTUnwrap(frame.depth), color: frame.color, worldFromCamera: pose)
        }
        XCTAssertGreaterThan(recognised, 0, "the old surface came back into view and was recognised")
        let map = fusion.map
        let stable = (0..<map.count).filter { map.confidences[$0] >= 10 }.map { map.positions[$0] }
        let error = try XCTUnwrap(SyntheticScene.livingRoom().score(positions: stable, labels: nil, classMap: nil)).medianDistance
        XCTAssertLessThan(error, 0.003, "the map stays on the true surfaces")
    }

    /// Global loop closure: the same loop at 320x240 (enough texture for keypoints) with a drift
    /// of 10 degrees and 20 cm per loop, through the global path alone. When the camera is back
    /// where it started, the frame looks like an old keyframe (ferns), is registered to it by
    /// keypoints, and the active model is registered to the old surface rendered from there: the
    /// map is bent and the camera put back near the truth.
    func testGlobalClosureFromAnOldKeyframe() throws {
        let intrinsics = SyntheticRenderer.defaultIntrinsics(width: 320, height: 240)
        let renderer = Self.renderer(intrinsics)
        func drift(_ k: Int) -> RigidTransform {
            let s = Double(k) / Double(Self.loop)
            return RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(0, 0, 1), angle: s * 10 * .pi / 180),
                                  translation: SIMD3(0.2 * s, 0.05 * s, 0))
        }
        var parameters = FusionParameters()
        parameters.timeDelta = 40
        parameters.keepConfidence = 1
        parameters.threads = 2
        let fusion = SurfelFusion(intrinsics: intrinsics, classCount: 0, parameters: parameters)
        var relocaliser = Relocaliser(intrinsics: intrinsics)
        var search = GlobalLoopSearch()
        let closer = LoopCloser()
        var truth: [RigidTransform] = [], drifted: [RigidTransform] = [], ticks: [Int] = []
        var closure: (frame: Int, report: LoopClosureReport, deformation: MapDeformation, pose: RigidTransform)?
        var rejected: [String] = []
        var driftRejections: [Int: Int] = [:]
        for k in 0..<240 {
            let frame = renderer.render(k).frame
            let depth = try XCTUnwrap(frame.depth)
            let t = try XCTUnwrap(frame.worldFromCamera)
            var pose = drift(k) * t
            let code = relocaliser.encode(color: frame.color, depth: depth)
            let live = fusion.liveFrame(depth: depth)
            if k >= Self.loop - 10 {
                // The same search, told the camera agreed with old surface 5 or 120 frames ago:
                // a correction of this loop's size (27 cm, 9 deg) is then a wrong match, not
                // drift (the bound allows 8.5 cm after 120 frames; the one before this allowed
                // 29 cm, and let slides along a wall through on a longer loop).
                for since in [5, 120] {
                    var doubtful = search
                    doubtful.lastConsistentTick = fusion.tick - since
                    let outcome = doubtful.attempt(fusion, pose: pose, closer: closer, relocaliser: relocaliser, code: code,
                                                   color: frame.color, depth: depth, live: live.pyramid).outcome
                    if case .closed = outcome { XCTFail("frame \(k): closed \(since) frames after a consistent camera") }
                    if case .rejected(let reason) = outcome, reason.check == .beyondDrift { driftRejections[since, default: 0] += 1 }
                }
            }
            let attempt = search.attempt(fusion, pose: pose, closer: closer, relocaliser: relocaliser, code: code, color: frame.color,
                                         depth: depth, live: live.pyramid)
            switch attempt.outcome {
            case .closed(let report, let deformation, let corrected):
                closure = (k, report, deformation, corrected)
                pose = corrected
                // Right after a closure the search waits: a camera retracing its old path must
                // not close again on every frame.
                let again = search.attempt(fusion, pose: pose, closer: closer, relocaliser: relocaliser, code: code, color: frame.color,
                                           depth: depth, live: live.pyramid)
                XCTAssertEqual(again.tried, 0, "no new attempt for \(search.parameters.retryAfter) frames after a closure")
            case .rejected(let reason): rejected.append("\(k): \(reason)")
            default: break
            }
            relocaliser.observe(color: frame.color, depth: depth, worldFromCamera: pose, position: k, tick: fusion.tick, code: code)
            try fusion.integrate(depth: depth, color: frame.color, worldFromCamera: pose, filteredDepth: live.filteredDepth)
            truth.append(t); drifted.append(drift(k) * t); ticks.append(fusion.tick)
            if closure != nil { break }
        }
        let c = try XCTUnwrap(closure, "no global closure; rejected: \(rejected.suffix(5)); \(relocaliser.keyframeCount) keyframes")
        print("global loop closed at frame \(c.frame): \(c.report)")
        XCTAssertEqual(c.report.kind, .global)
        XCTAssertGreaterThan(driftRejections[5, default: 0], 0, "the drift bound refused the closure when told of a recent consistent camera")
        XCTAssertGreaterThan(driftRejections[120, default: 0], 0, "the drift bound refused the closure 120 frames after a consistent camera")
        XCTAssertTrue(search.lastConsistentTick != nil, "a closure makes the camera consistent")
        XCTAssertGreaterThanOrEqual(c.frame, Self.loop - 10, "only when the camera is back where it started")
        XCTAssertLessThan(try XCTUnwrap(c.report.keyframePosition), 40, "from a keyframe of the loop's start")
        let k = c.frame
        let before = (drifted[k].translation - truth[k].translation).length
        let after = (c.pose.translation - truth[k].translation).length
        print(String(format: "camera at the closure: %.1f mm from the truth, drifted %.1f mm", after * 1000, before * 1000))
        XCTAssertGreaterThan(before, 0.15)
        // The old surface the frame is registered to carries the drift of the frames that made
        // it (up to 2 degrees and 4 cm by frame 40), so "near the truth" is within that.
        XCTAssertLessThan(after, 0.2 * before)
        XCTAssertLessThan((truth[k].inverse * c.pose).rotationAngle, 0.2 * (truth[k].inverse * drifted[k]).rotationAngle)
        let earlier = 0..<k
        let raw = try XCTUnwrap(AbsoluteTrajectoryError(estimated: earlier.map { drifted[$0] }, groundTruth: earlier.map { truth[$0] }))
        let poses = earlier.map { c.deformation.deform(drifted[$0], time: ticks[$0]) }
        let bent = try XCTUnwrap(AbsoluteTrajectoryError(estimated: poses, groundTruth: earlier.map { truth[$0] }))
        print("ATE before the global closure \(raw), after \(bent)")
        XCTAssertLessThanOrEqual(bent.rmse, raw.rmse)
        // The bend goes where the map's nodes are densest in space (a rotation between nodes
        // close together costs little regularisation), so it is not spread evenly over the loop:
        // the last third moves back towards the truth, the surface pinned at the start stays.
        func error(_ poses: [RigidTransform], _ frames: Range<Int>) -> Double {
            frames.map { (poses[$0].translation - truth[$0].translation).length }.reduce(0, +) / Double(frames.count)
        }
        let lastThird = (2 * k / 3)..<k, start = 0..<20
        print(String(format: "mean camera error, last third: %.1f -> %.1f mm; first 20 frames: %.1f -> %.1f mm",
                     error(drifted, lastThird) * 1000, error(poses, lastThird) * 1000, error(drifted, start) * 1000, error(poses, start) * 1000))
        XCTAssertLessThan(error(poses, lastThird), 0.3 * error(drifted, lastThird))
        XCTAssertLessThan(error(poses, start), error(drifted, start) + 0.002)
    }
}
