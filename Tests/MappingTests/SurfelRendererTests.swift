import XCTest
import Geometry
import Imaging
@testable import Mapping

final class SurfelRendererTests: XCTestCase {
    func testRenderedDepthMatchesTheSurfaceAndCoversTheView() throws {
        let scene = PlaneScene()
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 0)
        for i in 0..<10 {
            try fusion.integrate(depth: scene.depth(scene.pose(i)), color: scene.color(), worldFromCamera: scene.pose(i))
        }
        // A view the map has not been fused from: between frames, slightly rotated.
        let pose = RigidTransform(rotation: Matrix3.rotation(axis: SIMD3(1, 0, 0), angle: 0.01), translation: SIMD3(0.004, 0, 0.003))
        let truth = scene.depth(pose)
        let out = SurfelRenderer().render(fusion.map, cameraFromWorld: pose.inverse, intrinsics: scene.intrinsics, threads: 2)
        var errors = [Float]()
        for i in 0..<truth.count where out.depth.pixels[i] > 0 { errors.append(abs(out.depth.pixels[i] - truth.pixels[i])) }
        errors.sort()
        XCTAssertGreaterThan(Double(errors.count) / Double(truth.count), 0.9, "splats must cover the view")
        XCTAssertLessThan(errors[errors.count / 2], 1e-3)
        XCTAssertLessThan(errors[errors.count * 99 / 100], 5e-3)
        // Vertices are consistent with depth, normals face the camera.
        let mid = (scene.intrinsics.height / 2) * scene.intrinsics.width + scene.intrinsics.width / 2
        XCTAssertEqual(out.vertices[mid].z, out.depth.pixels[mid])
        XCTAssertLessThan(out.normals[mid].z, -0.99)
    }

    func testThreadCountDoesNotChangeTheRender() throws {
        let scene = PlaneScene()
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 0)
        try fusion.integrate(depth: scene.depth(scene.pose(0)), color: scene.color(), worldFromCamera: scene.pose(0))
        let a = SurfelRenderer().render(fusion.map, cameraFromWorld: .identity, intrinsics: scene.intrinsics, threads: 1)
        let b = SurfelRenderer().render(fusion.map, cameraFromWorld: .identity, intrinsics: scene.intrinsics, threads: 2)
        XCTAssertEqual(a.surfel, b.surfel)
        XCTAssertEqual(a.depth.pixels, b.depth.pixels)
    }

    /// `madeBy` draws only surfels made by a map time (a keyframe's surface for a global loop
    /// closure): after fusing the plane twice from two far-apart places, the first frame's
    /// surfels alone cover the first view, and none of the second's is drawn.
    func testMadeByDrawsOnlyTheSurfaceOfItsTime() throws {
        let scene = PlaneScene()
        let fusion = SurfelFusion(intrinsics: scene.intrinsics, classCount: 0)
        let second = RigidTransform(rotation: .identity, translation: SIMD3(8, 0, 0))
        try fusion.integrate(depth: scene.depth(scene.pose(0)), color: scene.color(), worldFromCamera: scene.pose(0))
        try fusion.integrate(depth: scene.depth(scene.pose(0)), color: scene.color(), worldFromCamera: second)
        let map = fusion.map
        let firstTime = map.initTimes.min()!
        XCTAssertGreaterThan(map.initTimes.max()!, firstTime, "the second frame made surfels of its own")
        let all = SurfelRenderer().render(map, cameraFromWorld: second.inverse, intrinsics: scene.intrinsics, threads: 2)
        let old = SurfelRenderer().render(map, cameraFromWorld: second.inverse, intrinsics: scene.intrinsics,
                                          selection: .init(madeBy: Int(firstTime)), threads: 2)
        let first = SurfelRenderer().render(map, cameraFromWorld: scene.pose(0).inverse, intrinsics: scene.intrinsics,
                                            selection: .init(madeBy: Int(firstTime)), threads: 2)
        XCTAssertGreaterThan(all.gridCoverage, 0.7)
        XCTAssertEqual(old.gridCoverage, 0, "the second frame's surface is newer")
        XCTAssertGreaterThan(first.gridCoverage, 0.7)
        XCTAssertTrue(first.surfel.allSatisfy { $0 < 0 || map.initTimes[Int($0)] <= firstTime })
    }
}
