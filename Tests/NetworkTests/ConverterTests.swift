import Foundation
import Imaging
@testable import Network
import TestSupport
import XCTest

/// `tools/convert_checkpoint.py` (Python 3 + numpy, no torch), run as users run it. Needs
/// python3 with numpy (scripts/setup.sh installs python3-numpy); skips with a message otherwise.
final class ConverterTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    @discardableResult
    func convert(_ arguments: [String], expectSuccess: Bool = true) throws -> (status: Int32, output: String) {
        let (status, output) = try ProcessRunner.env(["python3", Self.repository.appendingPathComponent("tools/convert_checkpoint.py").path] + arguments)
        if expectSuccess { XCTAssertEqual(status, 0, output) }
        return (status, output)
    }

    override func setUpWithError() throws {
        let probe = try? ProcessRunner.env(["python3", "-c", "import numpy"])
        if probe?.status != 0 {
            throw XCTSkip("needs python3 with numpy for tools/convert_checkpoint.py (apt-get install python3-numpy)")
        }
    }

    /// Small checkpoints written by torch itself in both formats (tools/dev/make_checkpoint_fixtures.py):
    /// views with offsets and strides, shared storages, float64/float16, a Parameter, an int64
    /// buffer that must be skipped.
    func testBothTorchFormatsMatchTorchsOwnValues() throws {
        let expectedData = try Data(contentsOf: Self.fixtures.appendingPathComponent("fixture-expected.json"))
        let expected = try JSONSerialization.jsonObject(with: expectedData) as! [String: [String: Any]]
        let dir = try SharedData.temporaryDirectory(self)
        for format in ["zip", "legacy"] {
            let out = dir.appendingPathComponent("\(format).safetensors")
            try convert(["--mode", "any", Self.fixtures.appendingPathComponent("fixture-\(format).ckpt").path, out.path])
            let tensors = try Safetensors.read(out)
            XCTAssertEqual(Set(tensors.keys), Set(expected.keys), format)
            for (name, entry) in expected {
                let shape = (entry["shape"] as! [NSNumber]).map(\.intValue)
                let values = (entry["values"] as! [NSNumber]).map { Float($0.doubleValue) }
                XCTAssertEqual(tensors[name]?.shape, shape, "\(format) \(name)")
                XCTAssertEqual(tensors[name]?.values ?? [], values, "\(format) \(name)")
            }
        }
    }

    /// The golden legacy-format checkpoint converts to exactly the reference safetensors, so it
    /// gives the same network outputs.
    func testLegacyOfficialCheckpointConvertsExactly() throws {
        let legacy = try SharedData.require("network-golden/checkpoint-legacy.ckpt")
        let reference = try Safetensors.read(try SharedData.require("network-golden/weights.safetensors"))
        let out = try SharedData.temporaryDirectory(self).appendingPathComponent("converted.safetensors")
        let result = try convert([legacy.path, out.path])
        XCTAssertTrue(result.output.contains("291 tensors"), result.output)
        let converted = try Safetensors.read(out)
        XCTAssertEqual(converted.count, reference.count)
        for (name, tensor) in reference { XCTAssertEqual(converted[name], tensor, name) }
        // And the network built from the converted file reproduces PyTorch's outputs.
        let network = JointNetwork(weights: try NetworkWeights.load(out), threads: 2)
        let input = try NPY.read(try SharedData.require("network-golden/in_96x128.npy"))
        let output = network.forward(try NetworkInput(height: 96, width: 128, values: input.values))
        let segm = try NPY.read(try SharedData.require("network-golden/out_96x128_segm.npy"))
        let depth = try NPY.read(try SharedData.require("network-golden/out_96x128_depth.npy"))
        let range = segm.values.max()! - segm.values.min()!
        XCTAssertLessThan(zip(output.logits, segm.values).map { abs($0 - $1) }.max()! / range, 1e-3)
        XCTAssertLessThan(zip(output.depth, depth.values).map { abs($0 - $1) }.max()!, 1e-3)
    }

    func testTorchvisionEncoderMapping() throws {
        let pth = try SharedData.require("weights/mobilenet_v2-b0353104.pth")
        let out = try SharedData.temporaryDirectory(self).appendingPathComponent("encoder.safetensors")
        try convert([pth.path, out.path])
        let tensors = try Safetensors.read(out)
        let expected = NetworkArchitecture().expectedTensors
        let encoder = expected.filter { $0.name.hasPrefix("layer") }
        XCTAssertEqual(tensors.count, encoder.count, "exactly the encoder's keys")
        for (name, shape) in encoder { XCTAssertEqual(tensors[name]?.shape, shape, name) }
        // The extra expand of layer2 is an identity with an identity BatchNorm.
        let eye = tensors["layer2.0.output.0.0.weight"]!.values
        for o in 0..<32 { for i in 0..<32 { XCTAssertEqual(eye[o * 32 + i], o == i ? 1 : 0) } }
        // Loading it as a full network fails and names the missing decoder, nothing else.
        XCTAssertThrowsError(try NetworkWeights.load(out)) { error in
            guard case NetworkError.weightMismatch(_, let missing, let extra, let misshaped) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(Set(missing), Set(expected.map(\.name).filter { !$0.hasPrefix("layer") }))
            XCTAssertTrue(extra.isEmpty && misshaped.isEmpty)
        }
    }

    func testCorruptInputsFailWithAClearMessage() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let legacy = try Data(contentsOf: Self.fixtures.appendingPathComponent("fixture-legacy.ckpt"))
        let cases: [(String, Data, String)] = [
            ("empty.ckpt", Data(), "empty file"),
            ("text.ckpt", Data("hello".utf8), "not a torch checkpoint"),
            ("truncated.ckpt", legacy.prefix(legacy.count - 40), "truncated"),
            ("cut-pickle.ckpt", legacy.prefix(200), "truncated or corrupt"),
        ]
        for (name, data, message) in cases {
            let path = dir.appendingPathComponent(name)
            try data.write(to: path)
            let result = try convert([path.path, dir.appendingPathComponent("out.safetensors").path], expectSuccess: false)
            XCTAssertEqual(result.status, 1, name)
            XCTAssertTrue(result.output.contains(name) && result.output.contains(message), "\(name): \(result.output)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.safetensors").path),
                       "no output is left behind on failure")
        let missing = try convert([dir.appendingPathComponent("nope.ckpt").path, dir.appendingPathComponent("o.st").path], expectSuccess: false)
        XCTAssertTrue(missing.output.contains("nope.ckpt") && missing.output.contains("cannot read"), missing.output)
        // A fixture that is not the network, converted in the default (official) mode.
        let wrong = try convert([Self.fixtures.appendingPathComponent("fixture-zip.ckpt").path, dir.appendingPathComponent("o.st").path], expectSuccess: false)
        XCTAssertTrue(wrong.output.contains("missing (291)"), wrong.output)
    }

    /// Crafted checkpoints (Fixtures/crafted_checkpoints.py writes them; see its list): a pickle
    /// that would run `touch MARKER` through posix.system in each of the legacy header records
    /// and in a zip's data.pkl, views with negative, non-integer or absurd sizes, strides and
    /// offsets, storages that disagree with their data, zip members missing or claiming bytes
    /// they do not hold. Each: status 1, one line naming the file and the fault, no traceback,
    /// the command never run, no output written.
    func testCraftedCheckpointsNeverRunCodeOrCrash() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let marker = dir.appendingPathComponent("MARKER")
        let made = try ProcessRunner.env(["python3", Self.fixtures.appendingPathComponent("crafted_checkpoints.py").path, dir.path, marker.path])
        XCTAssertEqual(made.status, 0, made.output)
        let out = dir.appendingPathComponent("out.safetensors")
        let refused = "the pickle refers to the global posix.system, which is not on the converter's allow-list"
        let cases: [(String, String)] = [
            ("system-in-magic.ckpt", refused),
            ("system-in-sysinfo.ckpt", refused),
            ("system-in-zip.ckpt", refused),
            ("view-negative-stride.ckpt", "tensor w: stride (-1,) does not give one integer in 0..2^62"),
            ("view-negative-size.ckpt", "tensor w: size (-2, 2) is not a list"),
            ("view-float-size.ckpt", "tensor w: size (2.5,) is not a list"),
            ("view-past-storage.ckpt", "runs past its storage of 4 elements"),
            ("view-huge-count.ckpt", "view of 1208925819614629174706176 elements reads a storage of only 4"),
            ("view-huge-offset.ckpt", "storage offset 1180591620717411303424 is not an integer in 0..2^62"),
            ("storage-numel-mismatch.ckpt", "storage 0 holds -1 elements but the pickle declared 4"),
            ("zip-missing-member.ckpt", "storage 0 missing from the archive"),
            ("zip-oversized-member.ckpt", "storage 0 declares 4294967294 bytes but the archive holds only 16"),
            ("zip-multi-disk.ckpt", "corrupt zip checkpoint: zipfiles that span multiple disks are not supported"),
        ]
        for (name, message) in cases {
            let path = dir.appendingPathComponent(name)
            let result = try convert(["--mode", "any", path.path, out.path], expectSuccess: false)
            XCTAssertEqual(result.status, 1, "\(name): \(result.output)")
            XCTAssertTrue(result.output.hasPrefix("error: \(path.path): "), "\(name): \(result.output)")
            XCTAssertTrue(result.output.contains(message), "\(name) lacks '\(message)': \(result.output)")
            XCTAssertEqual(result.output.split(separator: "\n").count, 1, "\(name): one line: \(result.output)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path), "\(name) ran its command")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(name): no output")
        }
    }

    /// The output is written atomically over a regular file or nothing, never over a device,
    /// FIFO, folder or the input itself, which all stay as they were; a symbolic link to a
    /// regular file is followed (the link stays a link).
    func testOutputIsNeverASpecialFileOrTheInput() throws {
        let dir = try SharedData.temporaryDirectory(self)
        let input = dir.appendingPathComponent("in.ckpt")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("fixture-zip.ckpt"), to: input)
        let original = try Data(contentsOf: input)
        let fifo = dir.appendingPathComponent("fifo.safetensors")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        let folder = dir.appendingPathComponent("folder.safetensors")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        let cases: [(URL, String)] = [
            (fifo, "is a FIFO (named pipe)"),
            (folder, "is a folder"),
            (URL(fileURLWithPath: "/dev/null"), "is a character device"),
            (input, "it is the input \(input.path)"),
        ]
        for (output, message) in cases {
            let result = try convert(["--mode", "any", input.path, output.path], expectSuccess: false)
            XCTAssertEqual(result.status, 1, result.output)
            XCTAssertTrue(result.output.contains("\(output.path): cannot write: \(message)"), result.output)
        }
        XCTAssertEqual(FileKind(atPath: fifo.path), .fifo)
        XCTAssertEqual(FileKind(atPath: "/dev/null"), .characterDevice)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
        XCTAssertEqual(try Data(contentsOf: input), original)

        let real = dir.appendingPathComponent("real.safetensors")
        try Data("old".utf8).write(to: real)
        let link = dir.appendingPathComponent("link.safetensors")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: real)
        try convert(["--mode", "any", input.path, link.path])
        XCTAssertEqual(FileKind(atPath: link.path), .symbolicLink)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link.path), real.path)
        XCTAssertEqual(try Safetensors.read(real).count, 6)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("partial") }
        XCTAssertEqual(leftovers, [], "no temporary files")
    }
}
