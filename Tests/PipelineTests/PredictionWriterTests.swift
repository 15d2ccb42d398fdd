import Foundation
import Imaging
import Network
import Sequences
@testable import Pipeline
import TestSupport
import XCTest

final class PredictionWriterTests: XCTestCase {
    /// Post-processing conventions: depth = |raw| in metres stored at 5000 per metre, labels are
    /// the argmax with the NYU palette, 3-task outputs get a normals image.
    func testFilesAndConventions() throws {
        let (h, w) = (6, 8)
        var logits = [Float](repeating: 0, count: 40 * h * w)
        for i in 0..<(h * w) { logits[5 * h * w + i] = 3 }           // class 5 (sofa) everywhere
        let normals = [Float](repeating: 0, count: 2 * h * w) + [Float](repeating: -1, count: h * w) // facing the camera
        let output = NetworkOutput(height: h, width: w, logits: logits, classCount: 40,
                                   depth: [Float](repeating: -1.5, count: h * w), normals: normals)
        let image = ColorImage(width: 4 * w, height: 4 * h, repeating: RGB8(10, 20, 30))
        let dir = try SharedData.temporaryDirectory(self)
        var options = PredictionWriter.Options()
        options.probabilities = true
        options.rawDirectory = dir.appendingPathComponent("raw")
        let files = try PredictionWriter.write(output, image: image, stem: "f", to: dir, options: options)
        XCTAssertEqual(Set(files.map(\.lastPathComponent)),
                       ["f.depth.png", "f.labels.png", "f.label-ids.png", "f.preview.png", "f.normals.png", "f.probabilities.npy",
                        "segm.npy", "depth.npy", "normal.npy"])
        let depth = try PNGCodec.readGray16(dir.appendingPathComponent("f.depth.png"))
        XCTAssertEqual([depth.width, depth.height], [32, 24])
        XCTAssertTrue(depth.pixels.allSatisfy { $0 == 7500 }, "|−1.5 m| × 5000")
        let ids = try PNGCodec.readGray8(dir.appendingPathComponent("f.label-ids.png"))
        XCTAssertTrue(ids.pixels.allSatisfy { $0 == 5 })
        let colours = try PNGCodec.readRGB(dir.appendingPathComponent("f.labels.png"))
        XCTAssertEqual(colours.pixels[0], RGB8(0, 128, 128), "sofa in the notebooks' palette")
        let normalColours = try PNGCodec.readRGB(dir.appendingPathComponent("f.normals.png"))
        XCTAssertEqual(normalColours.pixels[0], RGB8(128, 128, 255))
        let probabilities = try NPY.read(dir.appendingPathComponent("f.probabilities.npy"))
        XCTAssertEqual(probabilities.shape, [40, h, w])
        let raw = try NPY.read(dir.appendingPathComponent("raw/depth.npy"))
        XCTAssertEqual(raw.shape, [1, 1, h, w])
        XCTAssertEqual(raw.values.first, -1.5, "raw depth is before abs")
    }

    func testNetworkPredictorRunsEveryNthFrame() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let weights = dir.appendingPathComponent("w.safetensors")
        // Random weights written and loaded through the same path users take.
        var tensors: [String: NamedTensor] = [:]
        let random = NetworkArchitecture().expectedTensors
        for (name, shape) in random {
            let count = shape.reduce(1, *)
            tensors[name] = NamedTensor(shape: shape, values: (0..<count).map { name.hasSuffix("running_var") ? 1 : Float(($0 * 7919) % 13) * 0.01 - 0.06 })
        }
        try Safetensors.encode(tensors).write(to: weights)
        let predictor = try NetworkPredictor(weights: weights, every: 3, predictsDepth: true, threads: 1)
        var ran: [Int] = []
        for k in 0..<7 {
            let frame = Frame(index: k, timestamp: Double(k), color: ColorImage(width: 20, height: 14, repeating: RGB8(UInt8(k * 30), 90, 200)))
            if let p = try predictor.predict(frame) {
                ran.append(k)
                XCTAssertEqual(p.probabilities?.classCount, 40)
                XCTAssertEqual([p.probabilities?.width, p.probabilities?.height], [5, 4], "stride 4, ceil")
                XCTAssertEqual([p.depth?.width, p.depth?.height], [20, 14], "depth at frame size")
                XCTAssertTrue(p.depth?.pixels.allSatisfy { $0 >= 0 && $0.isFinite } ?? false)
            }
        }
        XCTAssertEqual(ran, [0, 3, 6])
        XCTAssertEqual(predictor.runs, 3)
        XCTAssertTrue(predictor.report.contains("ran on 3 of 7 frames"), predictor.report)
    }
}
