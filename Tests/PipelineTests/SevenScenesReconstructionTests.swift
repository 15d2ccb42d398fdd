import Foundation
import XCTest
import Geometry
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
}
