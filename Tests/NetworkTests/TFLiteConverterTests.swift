import Foundation
@testable import Network
import TestSupport
import XCTest
import NetworkKernels

/// `tools/convert_tflite.py` (Python 3 + numpy + the `flatbuffers` runtime), run as users run it,
/// on the two real TFLite models in ../shared/data/weights and on corrupted copies of one.
/// Skips with a message when python3 cannot import numpy and flatbuffers (scripts/setup.sh).
final class TFLiteConverterTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @discardableResult
    func convert(_ arguments: [String], expectSuccess: Bool = true) throws -> (status: Int32, output: String) {
        let (status, output) = try ProcessRunner.env(["python3", Self.repository.appendingPathComponent("tools/convert_tflite.py").path] + arguments)
        if expectSuccess { XCTAssertEqual(status, 0, output) }
        return (status, output)
    }

    override func setUpWithError() throws {
        let probe = try? ProcessRunner.env(["python3", "-c", "import numpy, flatbuffers"])
        if probe?.status != 0 {
            throw XCTSkip("needs python3 with numpy and flatbuffers for tools/convert_tflite.py (scripts/setup.sh installs them)")
        }
    }

    /// The safetensors header: metadata and each tensor's dtype and shape.
    func header(_ url: URL) throws -> (metadata: [String: String], tensors: [String: (dtype: String, shape: [Int])]) {
        let data = try Data(contentsOf: url)
        let length = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        XCTAssertEqual((8 + length) % 8, 0, "header padded to a multiple of 8")
        let json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as! [String: Any]
        var tensors: [String: (String, [Int])] = [:]
        for (name, value) in json where name != "__metadata__" {
            let entry = value as! [String: Any]
            tensors[name] = (entry["dtype"] as! String, (entry["shape"] as! [NSNumber]).map(\.intValue))
        }
        return (json["__metadata__"] as! [String: String], tensors)
    }

    func graph(_ metadata: [String: String]) throws -> [String: Any] {
        let text = try XCTUnwrap(metadata["semfuse.graph"])
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func testDeepLabConvertsToLogitsWith8BitWeights() throws {
        let model = try SharedData.require("weights/deeplabv3_mnv2_ade20k_uint8.tflite")
        let out = try SharedData.temporaryDirectory(self).appendingPathComponent("deeplab.safetensors")
        let result = try convert([model.path, out.path])
        XCTAssertTrue(result.output.contains("assumed class set ade32"), result.output)
        XCTAssertTrue(result.output.contains("segmenter (ade32), 75 ops"), result.output)
        let (metadata, tensors) = try header(out)
        XCTAssertEqual(metadata["semfuse.format"], "graph-v1")
        XCTAssertEqual(metadata["semfuse.kind"], "segmenter")
        XCTAssertEqual(metadata["semfuse.class_set"], "ade32")
        XCTAssertEqual(metadata["semfuse.source"], "deeplabv3_mnv2_ade20k_uint8.tflite md5:1b0a50e380612884f82c157e69c66d22")
        let g = try graph(metadata)
        let ops = try XCTUnwrap(g["ops"] as? [[String: Any]])
        XCTAssertEqual(ops.count, 75, "the final upsampling and ARG_MAX are dropped")
        XCTAssertFalse(ops.contains { ($0["op"] as? String) == "ARG_MAX" })
        let outputs = try XCTUnwrap(g["outputs"] as? [[String: String]])
        XCTAssertEqual(outputs.count, 1)
        XCTAssertEqual(outputs[0]["role"], "logits")
        let shapes = try XCTUnwrap(g["tensors"] as? [String: [String: Any]])
        let logits = try XCTUnwrap(shapes[outputs[0]["tensor"]!])
        XCTAssertEqual(logits["shape"] as? [Int], [1, 128, 128, 32])
        XCTAssertEqual(logits["name"] as? String, "logits/semantic/BiasAdd")
        let input = try XCTUnwrap(g["input"] as? [String: Any])
        XCTAssertEqual(input["scale"] as? Double, 0.0078125)
        XCTAssertEqual(input["zero_point"] as? Double, 128)
        XCTAssertEqual(input["height"] as? Int, 512)
        // The first conv: ReLU6 only through its output range (fused activation NONE).
        XCTAssertEqual(ops[0]["op"] as? String, "CONV_2D")
        XCTAssertEqual(ops[0]["activation"] as? String, "NONE")
        let clamp = try XCTUnwrap(ops[0]["clamp"] as? [Double])
        XCTAssertEqual(clamp[0], 0)
        XCTAssertEqual(clamp[1], 6, accuracy: 0.01)
        XCTAssertTrue(ops.contains { ($0["op"] as? String) == "AVERAGE_POOL_2D" && ($0["global"] as? Bool) == true })
        // uint8 weights with per-tensor scales; float32 biases.
        for (n, op) in ops.enumerated() where ["CONV_2D", "DEPTHWISE_CONV_2D"].contains(op["op"] as? String) {
            XCTAssertEqual(tensors["op\(n).weight"]?.dtype, "U8", "op \(n)")
            XCTAssertEqual(tensors["op\(n).weight_scale"]?.shape, [1], "op \(n)")
            XCTAssertEqual(tensors["op\(n).weight_zero_point"]?.dtype, "F32", "op \(n)")
            XCTAssertEqual(tensors["op\(n).bias"]?.dtype, "F32", "op \(n)")
        }
        // And the engine's own reader takes the file.
        let decoded = try Safetensors.read(out)
        XCTAssertEqual(decoded.count, tensors.count)
        XCTAssertGreaterThan(decoded["op0.weight_scale"]!.values[0], 0)
    }

    func testFastDepthConvertsToMetresWithPerChannelInt8() throws {
        let model = try SharedData.require("weights/fast_depth_224.tflite")
        let out = try SharedData.temporaryDirectory(self).appendingPathComponent("fastdepth.safetensors")
        let result = try convert([model.path, out.path])
        XCTAssertTrue(result.output.contains("assumed kind depth"), result.output)
        let (metadata, tensors) = try header(out)
        XCTAssertEqual(metadata["semfuse.kind"], "depth")
        XCTAssertNil(metadata["semfuse.class_set"])
        let g = try graph(metadata)
        let ops = try XCTUnwrap(g["ops"] as? [[String: Any]])
        XCTAssertEqual(ops.count, 66, "the trailing QUANTIZE is dropped")
        let outputs = try XCTUnwrap(g["outputs"] as? [[String: String]])
        XCTAssertEqual(outputs.first?["role"], "depth")
        let shapes = try XCTUnwrap(g["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(shapes[outputs[0]["tensor"]!]?["shape"] as? [Int], [1, 224, 224, 1])
        // Output clamp: the int8 output range in metres, 0 … 255 × 0.0717.
        let last = try XCTUnwrap(ops.last?["clamp"] as? [Double])
        XCTAssertEqual(last[0], 0)
        XCTAssertEqual(last[1], 255 * 0.07169981, accuracy: 1e-3)
        let input = try XCTUnwrap(g["input"] as? [String: Any])
        XCTAssertEqual(input["scale"] as! Double, 1.0 / 255, accuracy: 1e-8)
        XCTAssertEqual(input["zero_point"] as? Double, 0)
        var depthwise = 0
        for (n, op) in ops.enumerated() {
            switch op["op"] as? String {
            case "CONV_2D":
                XCTAssertEqual(tensors["op\(n).weight"]?.dtype, "I8", "op \(n)")
                XCTAssertEqual(op["weight_quant_axis"] as? Int, 0)
                XCTAssertEqual(tensors["op\(n).weight_scale"]?.shape, [tensors["op\(n).weight"]!.shape[0]], "per channel")
            case "DEPTHWISE_CONV_2D":
                depthwise += 1
                XCTAssertEqual(op["weight_quant_axis"] as? Int, 3)
                XCTAssertEqual(tensors["op\(n).weight_scale"]?.shape, [tensors["op\(n).weight"]!.shape[3]], "per channel")
            case "PAD":
                XCTAssertNotNil(op["paddings"] as? [[Int]])
            case "RESIZE_NEAREST_NEIGHBOR":
                let size = try XCTUnwrap(op["size"] as? [String: Any])
                XCTAssertTrue(size["like"] != nil || (size["scale"] as? [Int]) == [2, 2], "\(size)")
            default: break
            }
        }
        XCTAssertEqual(depthwise, 18)
    }

    /// Corrupted copies of fast_depth_224.tflite, patched at byte positions the converter's own
    /// `--layout` helper reports: each fails with status 1, a message naming the problem, and no
    /// output file.
    func testBadModelsFailWithAClearMessageAndNoOutput() throws {
        let model = try SharedData.require("weights/fast_depth_224.tflite")
        let dir = try SharedData.temporaryDirectory(self)
        let original = try Data(contentsOf: model)
        let layoutRun = try convert(["--layout", model.path])
        let layout = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(layoutRun.output.utf8)) as? [String: Any])

        // CONV_2D's operator code → SOFTMAX (25): the first conv is op 2, output t85.
        let codes = try XCTUnwrap(layout["operator_codes"] as? [[String: Any]])
        let conv = try XCTUnwrap(codes.first { ($0["name"] as? String) == "CONV_2D" })
        var unsupported = original
        if let at = conv["deprecated_builtin_code_at"] as? Int { unsupported[at] = 25 }
        if let at = conv["builtin_code_at"] as? Int { unsupported.replaceSubrange(at..<(at + 4), with: [25, 0, 0, 0]) }

        // The first conv's filter buffer one byte shorter than its shape needs.
        let tensors = try XCTUnwrap(layout["tensors"] as? [[String: Any]])
        let filter = try XCTUnwrap(tensors.first { ($0["name"] as? String) == "model/conv2d/Conv2D" })
        let buffers = try XCTUnwrap(layout["buffers"] as? [[String: Any]])
        let buffer = try XCTUnwrap(buffers.first { ($0["index"] as? Int) == (filter["buffer"] as? Int) })
        var wrongSize = original
        let at = buffer["length_at"] as! Int, length = UInt32(buffer["length"] as! Int) - 1
        wrongSize.replaceSubrange(at..<(at + 4), with: withUnsafeBytes(of: length.littleEndian, Array.init))

        let cases: [(String, Data, [String])] = [
            ("unsupported.tflite", unsupported, ["unsupported operator SOFTMAX", "t85", "model/tf.nn.relu6/Relu6"]),
            ("wrong-size.tflite", wrongSize, ["t46 'model/conv2d/Conv2D'", "431 bytes", "needs 432"]),
            ("truncated.tflite", original.prefix(original.count / 2), ["truncated"]),
            ("text.tflite", Data("hello, not a model".utf8), ["not a TFLite model", "TFL3"]),
            ("empty.tflite", Data(), ["empty file"]),
        ]
        let out = dir.appendingPathComponent("out.safetensors")
        for (name, data, messages) in cases {
            let path = dir.appendingPathComponent(name)
            try data.write(to: path)
            let result = try convert([path.path, out.path], expectSuccess: false)
            XCTAssertEqual(result.status, 1, "\(name): \(result.output)")
            XCTAssertTrue(result.output.contains(name), "\(name): \(result.output)")
            for message in messages { XCTAssertTrue(result.output.contains(message), "\(name) lacks '\(message)': \(result.output)") }
            XCTAssertFalse(result.output.contains("Traceback"), "\(name): \(result.output)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(name): no output is left behind")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("out.") }
        XCTAssertEqual(leftovers, [], "no temporary files either")
    }

    /// Tiny models built with the flatbuffers Builder (Fixtures/crafted_tflite.py), each declaring
    /// one index, offset or size the file cannot back: a buffer past the file's end, negative and
    /// huge shapes (2^64 elements wraps to 0 in int64), a negative tensor index (Python would read
    /// from the list's end) and an absent (-1) data input. The valid one converts, so the
    /// failures are the crafted fields' own; each other fails with one line naming the file.
    func testCraftedModelsFailWithAClearMessage() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/crafted_tflite.py")
        let made = try ProcessRunner.env(["python3", script.path, dir.path])
        XCTAssertEqual(made.status, 0, made.output)
        let out = dir.appendingPathComponent("out.safetensors")
        try convert([dir.appendingPathComponent("valid.tflite").path, out.path])
        try FileManager.default.removeItem(at: out)
        let cases: [(String, String)] = [
            ("buffer-past-end.tflite", "buffer 1: bytes 1099511627776..1099511627788 lie outside the file"),
            ("negative-shape.tflite", "tensor t2 'depth' has a dynamic shape [1, 4, -4, 1]"),
            ("huge-shape.tflite", "tensor t2 'depth' has shape [1, 65536, 65536, 1]: 4294967296 elements"),
            ("huge-constant.tflite", "tensor t1 'filter' has shape [65536, 65536, 65536, 65536]: 18446744073709551616 elements"),
            ("negative-index.tflite", "operator 0 (CONV_2D) refers to input tensor -3, but there are 3 tensors"),
            ("absent-input.tflite", "CONV_2D (TFLite op 0): input 0 is absent (-1)"),
        ]
        for (name, message) in cases {
            let path = dir.appendingPathComponent(name)
            let result = try convert([path.path, out.path], expectSuccess: false)
            XCTAssertEqual(result.status, 1, "\(name): \(result.output)")
            XCTAssertTrue(result.output.hasPrefix("error: \(path.path): \(message)"), "\(name): \(result.output)")
            XCTAssertEqual(result.output.split(separator: "\n").count, 1, "\(name): one line: \(result.output)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(name): no output")
        }
    }

    /// As for the checkpoint converter: never over a FIFO, a device or the input.
    func testOutputIsNeverASpecialFileOrTheInput() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/crafted_tflite.py")
        XCTAssertEqual(try ProcessRunner.env(["python3", script.path, dir.path]).status, 0)
        let input = dir.appendingPathComponent("valid.tflite")
        let original = try Data(contentsOf: input)
        let fifo = dir.appendingPathComponent("fifo.safetensors")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        for (output, message) in [(fifo.path, "is a FIFO (named pipe)"), ("/dev/null", "is a character device"),
                                  (input.path, "it is the input \(input.path)")] {
            let result = try convert([input.path, output], expectSuccess: false)
            XCTAssertEqual(result.status, 1, result.output)
            XCTAssertTrue(result.output.contains("\(output): cannot write: \(message)"), result.output)
        }
        XCTAssertEqual(FileKind(atPath: fifo.path), .fifo)
        XCTAssertEqual(FileKind(atPath: "/dev/null"), .characterDevice)
        XCTAssertEqual(try Data(contentsOf: input), original)
    }
}
