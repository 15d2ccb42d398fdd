import Foundation
import Imaging
@testable import Network
import TestSupport
import XCTest
import NetworkKernels

/// Checks the Swift network against PyTorch outputs of the same architecture and weights
/// (`../shared/data/network-golden`, see its README). Needs ../shared; skips with a message
/// otherwise.
final class GoldenTests: XCTestCase {
    static var cachedWeights: NetworkWeights?

    func golden(_ name: String) throws -> URL { try SharedData.require("network-golden/\(name)") }

    func goldenWeights() throws -> NetworkWeights {
        if let w = Self.cachedWeights { return w }
        let w = try NetworkWeights.load(try golden("weights.safetensors"))
        Self.cachedWeights = w
        return w
    }

    func input(_ size: String) throws -> NetworkInput {
        let array = try NPY.read(try golden("in_\(size).npy"))
        XCTAssertEqual(array.shape.count, 4)
        return try NetworkInput(height: array.shape[2], width: array.shape[3], values: array.values)
    }

    /// Largest absolute difference relative to the reference's value range.
    func relativeError(_ ours: [Float], _ reference: [Float]) -> Float {
        precondition(ours.count == reference.count)
        let range = (reference.max() ?? 0) - (reference.min() ?? 0)
        var worst: Float = 0
        for i in 0..<ours.count { worst = max(worst, abs(ours[i] - reference[i])) }
        return worst / max(range, 1e-12)
    }

    func testParameterCountAndArchitecture() throws {
        let weights = try goldenWeights()
        XCTAssertEqual(weights.architecture, NetworkArchitecture(classCount: 40, hasNormals: false))
        XCTAssertEqual(weights.parameterCount, 3_070_057)
        XCTAssertEqual(weights.architecture.expectedTensors.count, 291)
        let network = JointNetwork(weights: weights, threads: 1)
        XCTAssertEqual(network.multiplyAdds(height: 480, width: 640) / 1e9, 5.940, accuracy: 0.005)
        XCTAssertEqual(network.multiplyAdds(height: 96, width: 128) / 1e9, 0.238, accuracy: 0.001)
        // 58 dense convolutions (docs/network.md §11), the 3x3 heads as one per-tap GEMM each.
        let direct = network.layerPlan(height: 480, width: 640, asRun: false)
        XCTAssertEqual(direct.gemms.count, 1 + 2 * 17 + 6 + 3 * 5 + 2)
        XCTAssertEqual(direct.gemms.filter { $0.m == 360 && $0.k == 256 }.first?.n, 19_200, "segm head")
        // As run: the 40-class head as Winograd's 36 GEMMs over the 30 x 40 tiles of 4x4, the
        // 1-channel depth head as a direct sum (no GEMM).
        let plan = network.layerPlan(height: 480, width: 640)
        XCTAssertEqual(plan.gemms.count, 1 + 2 * 17 + 6 + 3 * 5 + 36)
        XCTAssertEqual(plan.gemms.filter { $0.m == 40 && $0.k == 256 && $0.n == 1_200 }.count, 36, "segm head")
        XCTAssertEqual(plan.otherMultiplyAdds - direct.otherMultiplyAdds, Double(9 * 19_200 * 256), "depth head")
    }

    func testPreprocessingMatchesNotebook() throws {
        let u8 = try NPY.read(try golden("in_96x128_u8.npy"))
        let (h, w) = (u8.shape[0], u8.shape[1])
        let pixels = (0..<(h * w)).map { RGB8(UInt8(u8.values[3 * $0]), UInt8(u8.values[3 * $0 + 1]), UInt8(u8.values[3 * $0 + 2])) }
        let ours = try NetworkInput(image: ColorImage(width: w, height: h, pixels: pixels))
        let reference = try input("96x128")
        XCTAssertEqual(ours.values, reference.values, "normalisation must be bit-identical to numpy's float64 → float32")
    }

    /// Every intermediate tensor at 96x128, in order, so a failure points at the first wrong layer.
    func testIntermediatesAt96x128() throws {
        let directory = try golden("inter_96x128")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".npy") }.sorted()
        XCTAssertEqual(files.count, 26)
        var references: [String: NPYArray] = [:]
        for file in files {
            let name = String(file.dropFirst(3).dropLast(4))   // "07_layer8.npy" → "layer8"
            references[name] = try NPY.read(directory.appendingPathComponent(file))
        }
        let network = JointNetwork(weights: try goldenWeights(), threads: 2)
        var seen: [String] = []
        _ = network.forward(try input("96x128")) { name, shape, values in
            seen.append(name)
            guard let reference = references[name] else { return XCTFail("no reference for \(name)") }
            XCTAssertEqual([1] + shape, reference.shape, name)
            guard reference.values.count == values.count else { return }
            let error = self.relativeError(Array(values), reference.values)
            XCTAssertLessThan(error, 1e-4, "\(name): max |Δ| / range = \(error)")
        }
        XCTAssertEqual(Set(seen), Set(references.keys), "every reference tensor is produced")
    }

    func checkOutputs(_ size: String, threads: Int) throws -> (segm: Float, depth: Float, agreement: Double) {
        let network = JointNetwork(weights: try goldenWeights(), threads: threads)
        let output = network.forward(try input(size))
        let segm = try NPY.read(try golden("out_\(size)_segm.npy"))
        let depth = try NPY.read(try golden("out_\(size)_depth.npy"))
        let argmax = try NPY.read(try golden("out_\(size)_argmax.npy"))
        XCTAssertEqual([1, output.classCount, output.height, output.width], segm.shape)
        XCTAssertEqual([1, 1, output.height, output.width], depth.shape)
        let labels = output.labelsAtOutputResolution()
        let agree = zip(labels.pixels, argmax.values).filter { Float($0) == $1 }.count
        return (relativeError(output.logits, segm.values), relativeError(output.depth, depth.values),
                Double(agree) / Double(argmax.values.count))
    }

    func testOutputsAt96x128() throws {
        for threads in [1, 2] {
            let r = try checkOutputs("96x128", threads: threads)
            XCTAssertLessThan(r.segm, 1e-3, "segmentation logits, \(threads) thread(s)")
            XCTAssertLessThan(r.depth, 1e-3, "depth, \(threads) thread(s)")
            XCTAssertGreaterThanOrEqual(r.agreement, 0.999, "argmax agreement, \(threads) thread(s)")
        }
    }

    func testOutputsAt480x640() throws {
        let r = try checkOutputs("480x640", threads: 2)
        XCTAssertLessThan(r.segm, 1e-3, "segmentation logits")
        XCTAssertLessThan(r.depth, 1e-3, "depth")
        XCTAssertGreaterThanOrEqual(r.agreement, 0.999, "argmax agreement")
        print("480x640: segm max|Δ|/range \(r.segm), depth \(r.depth), argmax agreement \(r.agreement)")
    }

    /// The int8 path (`NetworkPrecision.int8`) against float32 on the golden 480x640 input:
    /// argmax agreement of the 40 logits and the depth's difference relative to its range.
    /// These weights are random (uniform), so every weight carries the full 8-bit rounding
    /// error: measured 96.0 % agreement and a median depth difference of 1.7 % of the range,
    /// nearly all from the weights (float32 with the 8-bit weights alone: 96.6 %, 1.4 %).
    func testInt8AgreesWithFloat32At480x640() throws {
        let x = try input("480x640")
        let float = JointNetwork(weights: try goldenWeights(), threads: 2)
        let int8 = JointNetwork(weights: try goldenWeights(), threads: 2)
        int8.precision = .int8
        let a = float.forward(x), b = int8.forward(x)
        let c = a.classCount, n = a.height * a.width
        var same = 0
        for p in 0..<n {
            var bestA = 0, bestB = 0
            for k in 1..<c {
                if a.logits[k * n + p] > a.logits[bestA * n + p] { bestA = k }
                if b.logits[k * n + p] > b.logits[bestB * n + p] { bestB = k }
            }
            if bestA == bestB { same += 1 }
        }
        let range = (a.depth.max() ?? 0) - (a.depth.min() ?? 0)
        var differences = zip(a.depth, b.depth).map { abs($1 - $0) / max(range, 1e-12) }
        differences.sort()
        let agreement = Double(same) / Double(n)
        print(String(format: "joint network 480x640, int8 against float32: argmax agreement %.2f %%; depth |Δ| / range median %.4f, 99th percentile %.4f; segm max|Δ|/range %.4f",
                     100 * agreement, differences[n / 2], differences[n * 99 / 100], relativeError(b.logits, a.logits)))
        XCTAssertGreaterThan(agreement, 0.95)
        XCTAssertLessThan(differences[n / 2], 0.025)
    }

    func testSecondFrameAllocatesNothing() throws {
        let network = JointNetwork(weights: try goldenWeights(), threads: 2)
        let x = try input("96x128")
        let first = network.forward(x)
        let allocations = network.workspaceAllocations
        let second = network.forward(x)
        XCTAssertEqual(network.workspaceAllocations, allocations, "buffers are planned once per input size")
        XCTAssertEqual(first.logits, second.logits, "repeat runs are deterministic")
        // Another size may add buffers on its first frame (e.g. odd sizes resize through a table),
        // then alternating between the sizes allocates nothing.
        let small = try NetworkInput(height: 50, width: 70, values: [Float](repeating: 0.1, count: 3 * 50 * 70))
        _ = network.forward(small)
        let afterBoth = network.workspaceAllocations
        _ = network.forward(x)
        _ = network.forward(small)
        XCTAssertEqual(network.workspaceAllocations, afterBoth)
    }
}
