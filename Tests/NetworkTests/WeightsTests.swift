import Foundation
@testable import Network
import TestSupport
import XCTest

final class WeightsTests: XCTestCase {
    func randomTensors() -> [String: NamedTensor] {
        var tensors: [String: NamedTensor] = [:]
        for (name, shape) in NetworkArchitecture().expectedTensors {
            tensors[name] = NamedTensor(shape: shape, values: [Float](repeating: name.hasSuffix("running_var") ? 1 : 0.01, count: shape.reduce(1, *)))
        }
        return tensors
    }

    func testSafetensorsRoundTripAndDtypes() throws {
        let tensors = ["a": NamedTensor(shape: [2, 3], values: [1, 2, 3, 4, 5, -6]), "b": NamedTensor(shape: [], values: [7])]
        let data = try Safetensors.encode(tensors, metadata: ["format": "pt"])
        XCTAssertEqual(try Safetensors.decode(data, path: "x"), tensors)
        // F64 and F16 entries are converted; integer ones too, with their dtype kept.
        var header = #"{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"h":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},"n":{"dtype":"I64","shape":[],"data_offsets":[18,26]}}"#
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        var blob = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { blob.append(contentsOf: $0) }
        blob.append(Data(header.utf8))
        for v in [1.5, -2.25] { withUnsafeBytes(of: v.bitPattern.littleEndian) { blob.append(contentsOf: $0) } }
        withUnsafeBytes(of: Float16(0.5).bitPattern.littleEndian) { blob.append(contentsOf: $0) }
        withUnsafeBytes(of: Int64(3).littleEndian) { blob.append(contentsOf: $0) }
        let decoded = try Safetensors.decode(blob, path: "mixed")
        XCTAssertEqual(decoded["d"]?.values, [1.5, -2.25])
        XCTAssertEqual(decoded["h"]?.values, [0.5])
        XCTAssertEqual(decoded["n"]?.values, [3])
        XCTAssertEqual(decoded["n"]?.dtype, "I64")
        XCTAssertEqual(decoded["d"]?.dtype, "F64")
    }

    func testCorruptSafetensorsAreRejected() throws {
        let good = try Safetensors.encode(["a": NamedTensor(shape: [4], values: [1, 2, 3, 4])])
        func expectError(_ data: Data, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try Safetensors.decode(data, path: "w.safetensors"), file: file, line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("w.safetensors") && text.contains(fragment), text, file: file, line: line)
            }
        }
        expectError(Data([1, 2, 3]), "shorter than")
        expectError(good.prefix(good.count - 4), "outside the")
        expectError(good.prefix(12), "does not fit")
        expectError(Data([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]), "convert it with tools/convert_checkpoint.py")
        var garbage = good
        garbage[8] = UInt8(ascii: "x")
        expectError(garbage, "not a JSON object")
        XCTAssertThrowsError(try Safetensors.read(URL(fileURLWithPath: "/nonexistent/w.safetensors"))) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
    }

    func testDeclaredShapesAreCheckedWithOverflow() throws {
        func file(_ entry: String, body: Int) -> Data {
            var header = "{\"a\":\(entry)}"
            while (8 + header.utf8.count) % 8 != 0 { header += " " }
            var blob = Data()
            withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { blob.append(contentsOf: $0) }
            return blob + Data(header.utf8) + Data(count: body)
        }
        func expect(_ entry: String, body: Int = 8, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try Safetensors.decode(file(entry, body: body), path: "shape.safetensors"), line: line) { error in
                guard case NetworkError.malformedSafetensors(let path, let reason) = error else { return XCTFail("\(error)", line: line) }
                XCTAssertEqual(path, "shape.safetensors", line: line)
                XCTAssertTrue(reason.contains(fragment), reason, line: line)
            }
        }
        // 2^62 · 4 · 4 bytes wraps to 0 and matched an empty data range.
        expect(#"{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}"#, "needs more than the 8-byte data section")
        expect(#"{"dtype":"F64","shape":[2147483648,2147483648,2147483648],"data_offsets":[0,8]}"#, "needs more than")
        expect(#"{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}"#, "malformed shape")
        expect(#"{"dtype":"F32","shape":[2],"data_offsets":[0,1e300]}"#, "malformed shape or offsets")
        XCTAssertEqual(try Safetensors.decode(file(#"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, body: 8), path: "ok")["a"]?.values, [0, 0])
        XCTAssertEqual(try Safetensors.decode(file(#"{"dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[0,0]}"#, body: 8), path: "ok")["a"]?.count, 0)
    }

    func testLoadingChecksEveryNameAndShape() throws {
        var tensors = randomTensors()
        XCTAssertNoThrow(try NetworkWeights(tensors: tensors, source: "ok"))
        tensors["conv8.weight"] = nil
        tensors["segm.bias"] = NamedTensor(shape: [41], values: [Float](repeating: 0, count: 41))
        tensors["module.extra"] = NamedTensor(shape: [1], values: [0])
        tensors["layer1.1.num_batches_tracked"] = NamedTensor(shape: [], values: [3])
        XCTAssertThrowsError(try NetworkWeights(tensors: tensors, source: "bad.safetensors")) { error in
            guard case NetworkError.weightMismatch(let path, let missing, let extra, let misshaped) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "bad.safetensors")
            XCTAssertEqual(missing, ["conv8.weight"])
            XCTAssertEqual(misshaped, ["segm.bias [41] (expected [40])"])
            XCTAssertTrue(extra.contains("module.extra"))
            XCTAssertFalse(extra.contains("layer1.1.num_batches_tracked"), "num_batches_tracked is ignored")
            let text = "\(error)"
            XCTAssertTrue(text.contains("missing (1): conv8.weight") && text.contains("module."), text)
        }
        var integer = randomTensors()
        integer["segm.bias"] = NamedTensor(shape: [40], values: [Float](repeating: 0, count: 40), dtype: "I64")
        XCTAssertThrowsError(try NetworkWeights(tensors: integer, source: "int.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("segm.bias has dtype I64"), "\(error)")
        }
        var nan = randomTensors()
        nan["depth.bias"] = NamedTensor(shape: [1], values: [.nan])
        XCTAssertThrowsError(try NetworkWeights(tensors: nan, source: "nan.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("depth.bias") && "\(error)".contains("NaN"), "\(error)")
        }
    }

    func testVariantsAreReadFromTheFile() throws {
        var tensors = randomTensors()
        // 3-task checkpoint: an extra normal head.
        tensors["pre_normal.weight"] = NamedTensor(shape: [256, 1, 1, 1], values: [Float](repeating: 0.1, count: 256))
        tensors["normal.weight"] = NamedTensor(shape: [3, 256, 3, 3], values: [Float](repeating: 0.01, count: 3 * 256 * 9))
        tensors["normal.bias"] = NamedTensor(shape: [3], values: [0, 0, 1])
        let three = try NetworkWeights(tensors: tensors, source: "three")
        XCTAssertTrue(three.architecture.hasNormals)
        XCTAssertEqual(three.parameterCount, 3_077_228, "the 3-task parameter count of docs/network.md")
        let output = JointNetwork(weights: three, threads: 1).forward(try NetworkInput(height: 33, width: 47, values: [Float](repeating: 0.2, count: 3 * 33 * 47)))
        XCTAssertEqual(output.normals?.count, 3 * 9 * 12)
        // KITTI: 6 classes.
        let kitti = NetworkWeights.random(NetworkArchitecture(classCount: 6))
        XCTAssertEqual(kitti.architecture.classCount, 6)
    }

    func testInputValidation() {
        XCTAssertThrowsError(try NetworkInput(height: 1, width: 10, values: [Float](repeating: 0, count: 30)))
        XCTAssertThrowsError(try NetworkInput(height: 4, width: 4, values: [Float](repeating: 0, count: 47)))
        XCTAssertThrowsError(try NetworkInput(height: 4, width: 4, values: [Float](repeating: .nan, count: 48)))
    }
}
