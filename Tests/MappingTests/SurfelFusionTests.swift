import XCTest
import Geometry
import Imaging
import Semantics
@testable import Mapping

final class SurfelFusionTests: XCTestCase {
    private func fusePlane(frames: Int, threads: Int, classCount: Int = 0,
                           probabilities: ((Int) -> ClassProbabilityMap?)? = nil) throws -> SurfelFusion {
        let scene = PlaneScene()
        var params = FusionParameters()
        params.threads = threads
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: classCount, parameters: params)
        for i in 0..<frames {
            let pose = scene.pose(i)
            try fusion.integrate(depth: scene.depth(pose), color: scene.color(), worldFromCamera: pose,
                                 probabilities: probabilities?(i))
        }
        return fusion
    }

    func testPlaneSurfelsLieOnThePlaneWithCorrectNormals() throws {
        let fusion = try fusePlane(frames: 50, threads: 2)
        let map = fusion.map
        let scene = PlaneScene()
        XCTAssertGreaterThan(map.count, 3_000)
        let stable = (0..<map.count).filter { map.confidences[$0] >= 10 }
        // Checkerboard association (a quarter of the pixels per frame, the same two parity classes
        // every other frame) updates the surfels on those classes about every other frame with
        // weight <= 1, so after 50 frames about a quarter of the surfels reach confidence 10.
        XCTAssertGreaterThan(stable.count, map.count / 5, "a static plane seen 50 times must have stable surfels")
        for i in stable {
            XCTAssertLessThan(scene.distance(map.positions[i]), 1e-3)
            // Facing the camera: world normal (0, 0, -1).
            XCTAssertGreaterThan(-map.normals[i].z, cos(2 * Float.pi / 180))
        }
        // No duplicate explosion: a view of a plane needs at most about one surfel per pixel.
        XCTAssertLessThan(map.count, Int(Double(96 * 72) * 1.3))
    }

    func testConfidenceGrowsAndRadiusFollowsDepth() throws {
        let fusion = try fusePlane(frames: 12, threads: 1)
        let map = fusion.map
        let maxConf = map.confidences.max() ?? 0
        XCTAssertGreaterThan(maxConf, 4)
        // r0 = sqrt(2) z / f with z = 2, f = 72, facing the camera.
        let r0: Float = Float(2).squareRoot() * 2 / 72
        let centre = (0..<map.count).min { map.positions[$0].x * map.positions[$0].x + map.positions[$0].y * map.positions[$0].y
            < map.positions[$1].x * map.positions[$1].x + map.positions[$1].y * map.positions[$1].y }!
        XCTAssertEqual(map.radii[centre], r0, accuracy: r0 * 0.05)
    }

    /// A fusion whose workspace was released (a piece kept beside the map) fuses on exactly as
    /// one that kept it: the buffers hold nothing from one frame to the next that the map
    /// depends on.
    func testReleasedWorkspaceIsAllocatedAgain() throws {
        let scene = PlaneScene()
        let kept = try fusePlane(frames: 12, threads: 2).map
        let fusion = try fusePlane(frames: 6, threads: 2)
        fusion.releaseWorkspace()
        for i in 6..<12 {
            try fusion.integrate(depth: scene.depth(scene.pose(i)), color: scene.color(), worldFromCamera: scene.pose(i))
        }
        XCTAssertEqual(fusion.map.count, kept.count)
        XCTAssertEqual(fusion.map.positions, kept.positions)
        XCTAssertEqual(fusion.map.confidences, kept.confidences)
        XCTAssertEqual(fusion.map.lastSeen, kept.lastSeen)
    }

    /// Absorbing a piece as the current view takes its clock and live frame; absorbing one left
    /// earlier puts its surface at the end of this map's time and keeps this map's clock.
    func testAbsorbedPieceTimes() throws {
        let piece = try fusePlane(frames: 4, threads: 1)
        let pieceCount = piece.map.count
        let beside = RigidTransform(translation: SIMD3(10, 0, 0))   // no surface in common
        let earlier = try fusePlane(frames: 10, threads: 1)
        let before = earlier.map.count
        let offset = earlier.absorb(piece, transformedBy: beside, current: false)
        XCTAssertEqual(offset, 10 - 4)
        XCTAssertEqual(earlier.tick, 10, "the clock stays")
        XCTAssertEqual(earlier.map.count, before + pieceCount)
        XCTAssertEqual(earlier.map.lastSeen[before...].max(), 10, "the piece's last frame is now")
        XCTAssertEqual(Array(earlier.map.initTimes[before...]), piece.map.initTimes.map { $0 + 6 })

        let current = try fusePlane(frames: 10, threads: 1)
        XCTAssertEqual(current.absorb(try fusePlane(frames: 4, threads: 1), transformedBy: .identity), 10)
        XCTAssertEqual(current.tick, 14, "the piece's frames follow this map's")
    }

    /// A piece left earlier drops, when absorbed, the surfels that lie on this map's surface (the
    /// map rebuilt it meanwhile): all of the same plane, about half of it moved half its width
    /// along itself, none of it 10 cm behind.
    func testALateJoinDropsTheSurfaceTheMapAlreadyHas() throws {
        func added(_ transform: RigidTransform) throws -> (added: Int, of: Int) {
            let map = try fusePlane(frames: 10, threads: 1), piece = try fusePlane(frames: 4, threads: 1)
            let before = map.map.count, count = piece.map.count
            map.absorb(piece, transformedBy: transform, current: false)
            return (map.map.count - before, count)
        }
        let same = try added(.identity)
        XCTAssertLessThan(same.added, same.of / 20, "\(same)")
        let along = try added(RigidTransform(translation: SIMD3(1.3, 0, 0)))
        XCTAssertGreaterThan(along.added, along.of * 3 / 10, "\(along)")
        XCTAssertLessThan(along.added, along.of * 7 / 10, "\(along)")
        let behind = try added(RigidTransform(translation: SIMD3(0, 0, 0.1)))
        XCTAssertEqual(behind.added, behind.of)
    }

    func testThreadCountDoesNotChangeTheMap() throws {
        let a = try fusePlane(frames: 8, threads: 1).map
        let b = try fusePlane(frames: 8, threads: 2).map
        XCTAssertEqual(a.count, b.count)
        XCTAssertEqual(a.positions, b.positions)
        XCTAssertEqual(a.confidences, b.confidences)
    }

    /// The periodic spatial reordering moves surfels in storage only: fused with it (every 4
    /// frames) and without it, the maps hold the same surfels bit for bit, class distributions
    /// included; and the exposed index map is renumbered with the map, so every pixel's surfel
    /// still projects onto that pixel at the depth shown.
    func testSpatialOrderChangesOnlyWhereSurfelsAreStored() throws {
        let scene = PlaneScene()
        func probabilities(_ i: Int) -> ClassProbabilityMap {
            var v = [Float](repeating: 0, count: 24 * 18 * 3)
            for p in 0..<(24 * 18) {
                let a = Float((p * 7 + i * 3) % 11) / 11
                v[p * 3] = 0.2 + 0.5 * a; v[p * 3 + 1] = 0.5 - 0.4 * a; v[p * 3 + 2] = 0.3 - 0.1 * a
            }
            return ClassProbabilityMap(width: 24, height: 18, classCount: 3, values: v)
        }
        func fuse(interval: Int, storage: LabelStorage) throws -> SurfelFusion {
            var params = FusionParameters()
            params.threads = 2
            params.spatialOrderInterval = interval
            params.spatialOrderCell = 0.02
            params.labelStorage = storage
            let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 3, parameters: params)
            for i in 0..<28 {
                // A jump at frame 14 leaves part of the old view, so the cleanup removes surfels too.
                let pose = RigidTransform(rotation: scene.pose(i).rotation,
                                          translation: scene.pose(i).translation + SIMD3(i >= 14 ? 0.3 : 0, 0, 0))
                try fusion.integrate(depth: scene.depth(pose), color: scene.color(), worldFromCamera: pose,
                                     probabilities: probabilities(i))
            }
            return fusion
        }
        for storage in [LabelStorage.dense, .topK(2), .log8] {
            let plain = try fuse(interval: 0, storage: storage), sorted = try fuse(interval: 4, storage: storage)
            let a = plain.map, b = sorted.map
            XCTAssertEqual(a.count, b.count)
            XCTAssertNotEqual(a.positions, b.positions, "the order must have changed for the test to mean anything")
            func rows(_ m: SurfelMap) -> [String] {
                (0..<m.count).map { i in
                    "\(m.positions[i]) \(m.normals[i]) \(m.radii[i]) \(m.confidences[i]) \(m.colors[i]) \(m.initTimes[i]) "
                        + "\(m.lastSeen[i]) \(m.labelUpdates[i]) \(m.classProbabilities(of: i)) \(String(describing: m.label(of: i)))"
                }.sorted()
            }
            XCTAssertEqual(rows(a), rows(b), "\(storage)")
            // The last frame (28) was reordered after its cleanup.
            let index = sorted.indexMap, pose = RigidTransform(rotation: scene.pose(27).rotation,
                                                              translation: scene.pose(27).translation + SIMD3(0.3, 0, 0))
            let k = scene.intrinsics, cameraFromWorld = pose.inverse.float
            let fx = Float(k.fx), fy = Float(k.fy), cx = Float(k.cx), cy = Float(k.cy)
            var shown = 0
            for y in 0..<k.height {
                for x in 0..<k.width where index.surfel[y * k.width + x] >= 0 {
                    let c = cameraFromWorld.apply(b.positions[Int(index.surfel[y * k.width + x])])
                    XCTAssertEqual(Int((fx * c.x / c.z + cx + 0.5).rounded(.down)), x)
                    XCTAssertEqual(Int((fy * c.y / c.z + cy + 0.5).rounded(.down)), y)
                    XCTAssertEqual(index.depth[y * k.width + x], c.z)
                    shown += 1
                }
            }
            XCTAssertGreaterThan(shown, k.width * k.height / 2)
        }
    }

    func testUnconfirmedSurfelsAreRemovedAndInactiveOnesKept() throws {
        let scene = PlaneScene()
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 0)
        let pose = scene.pose(0)
        try fusion.integrate(depth: scene.depth(pose), color: scene.color(), worldFromCamera: pose)
        let created = fusion.map.count
        XCTAssertGreaterThan(created, 5_000)
        // Look away (empty depth) for 25 frames: surfels seen once (confidence < 10) must go.
        let empty = DepthImage(width: 96, height: 72, repeating: 0)
        for _ in 0..<25 {
            try fusion.integrate(depth: empty, color: scene.color(), worldFromCamera: pose)
        }
        XCTAssertEqual(fusion.map.count, 0)
    }

    /// After frames whose cleanup compacted the map (and on some, reordered it), the exposed
    /// post-fusion index map names surfels by their new indices: each pixel's surfel projects
    /// onto that pixel from the frame's camera (the compaction's renumbering is applied when
    /// the map is read, or before a reordering).
    func testExposedIndexMapFollowsTheCompaction() throws {
        let scene = PlaneScene()
        var params = FusionParameters()
        params.unstableTimeout = 2
        params.spatialOrderInterval = 3   // some frames are also reordered after their compaction
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 0, parameters: params)
        let k = scene.intrinsics
        var checkedFrames = 0, checkedPixels = 0
        for i in 0..<30 {
            let pose = scene.pose(i)
            let report = try fusion.integrate(depth: scene.depth(pose), color: scene.color(), worldFromCamera: pose)
            guard report.removed > 0 else { continue }
            let index = fusion.indexMap, T = pose.inverse.float
            for y in 0..<k.height {
                for x in 0..<k.width {
                    let id = Int(index.surfel[y * k.width + x])
                    guard id >= 0 else { continue }
                    XCTAssertLessThan(id, fusion.map.count)
                    guard id < fusion.map.count else { return }
                    let c = T.apply(fusion.map.positions[id])
                    let u = (Float(k.fx) * c.x / c.z + Float(k.cx) + 0.5).rounded(.down)
                    let v = (Float(k.fy) * c.y / c.z + Float(k.cy) + 0.5).rounded(.down)
                    XCTAssertEqual(Int(u), x); XCTAssertEqual(Int(v), y)
                    XCTAssertEqual(index.depth[y * k.width + x], c.z)
                    checkedPixels += 1
                }
            }
            checkedFrames += 1
        }
        XCTAssertGreaterThan(checkedFrames, 0, "no frame removed surfels")
        XCTAssertGreaterThan(checkedPixels, 1_000)
    }

    func testStableSurfelsSurviveOutsideTheActiveWindow() throws {
        let scene = PlaneScene()
        var params = FusionParameters()
        params.timeDelta = 5
        params.unstableTimeout = 3
        params.confidenceThreshold = 3
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 0, parameters: params)
        for i in 0..<20 {
            try fusion.integrate(depth: scene.depth(scene.pose(i)), color: scene.color(), worldFromCamera: scene.pose(i))
        }
        let stable = fusion.map.stableCount(threshold: 3)
        XCTAssertGreaterThan(stable, 1000)
        let empty = DepthImage(width: 96, height: 72, repeating: 0)
        for _ in 0..<10 { try fusion.integrate(depth: empty, color: scene.color(), worldFromCamera: scene.pose(19)) }
        XCTAssertEqual(fusion.map.count, stable, "only the unstable surfels go; stable inactive surfels are kept")
    }

    func testLabelFusionFixesInconsistentPerFrameLabels() throws {
        // Class 2 is right; in 40 % of frames (pseudo-random per frame) the evidence favours 5.
        var rng = SplitMix64(seed: 3)
        let wrongFrames = (0..<50).map { _ in rng.nextDouble() < 0.4 }
        func probs(_ i: Int) -> ClassProbabilityMap? {
            var v = [Float](repeating: 0.02, count: 40 * 30 * 8)
            for p in 0..<(40 * 30) {
                v[p * 8 + 2] = wrongFrames[i] ? 0.3 : 0.5
                v[p * 8 + 5] = wrongFrames[i] ? 0.5 : 0.3
            }
            return ClassProbabilityMap(width: 40, height: 30, classCount: 8, values: v)
        }
        let map = try fusePlane(frames: 50, threads: 2, classCount: 8, probabilities: probs).map
        var labelled = 0, correct = 0
        for i in 0..<map.count where map.confidences[i] >= 10 {
            guard let (label, p) = map.label(of: i) else { continue }
            labelled += 1
            if label == 2 { correct += 1 }
            XCTAssertEqual(map.classProbabilities(of: i).reduce(0, +), 1, accuracy: 1e-4)
            XCTAssertGreaterThan(p, 0.5)
        }
        XCTAssertGreaterThan(labelled, 1000 / 4)
        XCTAssertEqual(Double(correct) / Double(labelled), 1, accuracy: 0.01)
    }

    func testPixelsWithoutEvidenceLeaveLabelsUntouched() throws {
        let zeros = ClassProbabilityMap(width: 16, height: 12, classCount: 4, values: [Float](repeating: 0, count: 16 * 12 * 4))
        let map = try fusePlane(frames: 5, threads: 1, classCount: 4, probabilities: { _ in zeros }).map
        for i in 0..<map.count {
            XCTAssertNil(map.label(of: i))
            XCTAssertEqual(Array(map.classProbabilities(of: i)), [0.25, 0.25, 0.25, 0.25])
        }
    }

    func testBadInputsAreRejectedWithoutChangingTheMap() throws {
        let scene = PlaneScene()
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 3)
        let pose = scene.pose(0)
        let depth = scene.depth(pose)
        XCTAssertThrowsError(try fusion.integrate(depth: DepthImage(width: 80, height: 60, repeating: 1), color: scene.color(),
                                                  worldFromCamera: pose, source: "f7")) { error in
            XCTAssertTrue("\(error)".contains("f7") && "\(error)".contains("80x60"), "\(error)")
        }
        var nanPose = pose
        nanPose.translation.x = .nan
        XCTAssertThrowsError(try fusion.integrate(depth: depth, color: scene.color(), worldFromCamera: nanPose))
        let wrongClasses = ClassProbabilityMap(width: 4, height: 3, classCount: 5, values: [Float](repeating: 0.2, count: 60))
        XCTAssertThrowsError(try fusion.integrate(depth: depth, color: scene.color(), worldFromCamera: pose, probabilities: wrongClasses))
        var nan = [Float](repeating: 0.3, count: 36)
        nan[7] = .nan
        XCTAssertThrowsError(try fusion.integrate(depth: depth, color: scene.color(), worldFromCamera: pose,
                                                  probabilities: ClassProbabilityMap(width: 4, height: 3, classCount: 3, values: nan))) { error in
            XCTAssertTrue("\(error)".contains("nan"), "\(error)")
        }
        XCTAssertEqual(fusion.map.count, 0)
        XCTAssertEqual(fusion.tick, 0)
        // NaN and zero depth are simply missing measurements.
        var holes = depth
        for i in stride(from: 0, to: holes.count, by: 3) { holes.pixels[i] = i % 2 == 0 ? .nan : 0 }
        try fusion.integrate(depth: holes, color: scene.color(), worldFromCamera: pose)
        XCTAssertTrue(fusion.map.positions.allSatisfy { $0.isFinite })
    }
}
