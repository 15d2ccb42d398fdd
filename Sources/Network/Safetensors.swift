import Foundation

/// One tensor read from a safetensors file, converted to Float32.
public struct NamedTensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]
    /// The dtype stored in the file (`F32`, `F16`, `I64`, …); values are converted to Float32.
    public var dtype: String
    public init(shape: [Int], values: [Float], dtype: String = "F32") {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not match \(values.count) values")
        self.shape = shape; self.values = values; self.dtype = dtype
    }
    public var isFloatingPoint: Bool { ["F32", "F64", "F16", "BF16"].contains(dtype) }
    public var count: Int { values.count }
}

/// Reader and writer for the safetensors format (8-byte little-endian header length, a JSON header
/// of `name: {dtype, shape, data_offsets}`, then the raw little-endian data), the format the
/// engine loads and `tools/convert_checkpoint.py` writes.
public enum Safetensors {
    /// Every dtype is converted to Float32 and remembered in `dtype`, so the loader can reject an
    /// integer tensor where a weight belongs (BatchNorm's integer `num_batches_tracked` is ignored).
    public static func read(_ url: URL) throws -> [String: NamedTensor] {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw NetworkError.unreadable(path: url.path, reason: FileManager.default.fileExists(atPath: url.path)
                                          ? error.localizedDescription : "no such file")
        }
        return try decode(data, path: url.path)
    }

    /// The tensors and the `__metadata__` string map (empty when the file has none).
    public static func readWithMetadata(_ url: URL) throws -> (tensors: [String: NamedTensor], metadata: [String: String]) {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw NetworkError.unreadable(path: url.path, reason: FileManager.default.fileExists(atPath: url.path)
                                          ? error.localizedDescription : "no such file")
        }
        return (try decode(data, path: url.path), try metadata(data, path: url.path))
    }

    /// The `__metadata__` entry of a safetensors file: string keys to string values.
    public static func metadata(_ data: Data, path: String) throws -> [String: String] {
        guard data.count >= 8 else { return [:] }
        let headerLength = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength > 0, headerLength <= UInt64(data.count - 8) else { return [:] }
        let header = data.subdata(in: data.startIndex + 8 ..< data.startIndex + 8 + Int(headerLength))
        guard let json = try? JSONSerialization.jsonObject(with: header) as? [String: Any],
              let meta = json["__metadata__"] else { return [:] }
        guard let strings = meta as? [String: String] else {
            throw NetworkError.malformedSafetensors(path: path, reason: "__metadata__ must map strings to strings")
        }
        return strings
    }

    public static func decode(_ data: Data, path: String) throws -> [String: NamedTensor] {
        func bad(_ reason: String) -> NetworkError { .malformedSafetensors(path: path, reason: reason) }
        guard data.count >= 8 else { throw bad("file is \(data.count) bytes, shorter than the 8-byte header length") }
        let headerLength = data.prefix(8).withUnsafeBytes { raw -> UInt64 in
            UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self))
        }
        guard headerLength > 0, headerLength <= UInt64(data.count - 8) else {
            let first = data[data.startIndex]
            if first == 0x80 || (first == 0x50 && data[data.startIndex + 1] == 0x4B) {
                throw bad("this looks like a PyTorch checkpoint (pickle or zip); convert it with tools/convert_checkpoint.py")
            }
            throw bad("header length \(headerLength) does not fit in a \(data.count)-byte file (truncated?)")
        }
        let headerEnd = 8 + Int(headerLength)
        let header = data.subdata(in: data.startIndex + 8 ..< data.startIndex + headerEnd)
        guard let json = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else {
            throw bad("header is not a JSON object")
        }
        let body = data.count - headerEnd
        var tensors: [String: NamedTensor] = [:]
        for (name, entry) in json where name != "__metadata__" {
            guard let info = entry as? [String: Any], let dtype = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any], let offsetsAny = info["data_offsets"] as? [Any],
                  offsetsAny.count == 2 else { throw bad("entry \(name) lacks dtype, shape or data_offsets") }
            let shape = shapeAny.compactMap(exactInteger)
            let offsets = offsetsAny.compactMap(exactInteger)
            guard shape.count == shapeAny.count, shape.allSatisfy({ $0 >= 0 }), offsets.count == 2 else {
                throw bad("entry \(name) has a malformed shape or offsets (need non-negative integers)")
            }
            let elementSize: Int
            switch dtype {
            case "F32", "I32", "U32": elementSize = 4
            case "F64", "I64", "U64": elementSize = 8
            case "F16", "BF16", "I16", "U16": elementSize = 2
            case "I8", "U8", "BOOL": elementSize = 1
            default: throw bad("entry \(name) has unsupported dtype \(dtype)")
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= body else {
                throw bad("entry \(name): data offsets \(offsets) lie outside the \(body)-byte data section (truncated file?)")
            }
            // The shape's byte count is computed with overflow checks and compared with the
            // data it claims before anything is allocated: a shape of 2^62 elements must not
            // wrap around to match a small data range.
            var byteCount = shape.contains(0) ? 0 : elementSize
            for dimension in shape where byteCount > 0 {
                let (product, overflow) = byteCount.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= body else {
                    throw bad("entry \(name): shape \(shape) of \(dtype) needs more than the \(body)-byte data section")
                }
                byteCount = product
            }
            guard offsets[1] - offsets[0] == byteCount else {
                throw bad("entry \(name): \(offsets[1] - offsets[0]) bytes of data for shape \(shape) of \(dtype)")
            }
            let count = byteCount / elementSize
            let start = data.startIndex + headerEnd + offsets[0]
            var values = [Float](repeating: 0, count: count)
            data[start ..< start + count * elementSize].withUnsafeBytes { raw in
                switch dtype {
                case "F32":
                    for i in 0..<count { values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                case "F64":
                    for i in 0..<count { values[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
                case "F16":
                    for i in 0..<count { values[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
                case "BF16": // the upper half of a Float32
                    for i in 0..<count { values[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
                case "I64": for i in 0..<count { values[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
                case "U64": for i in 0..<count { values[i] = Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
                case "I32": for i in 0..<count { values[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
                case "U32": for i in 0..<count { values[i] = Float(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                case "I16": for i in 0..<count { values[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
                case "U16": for i in 0..<count { values[i] = Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
                case "I8": for i in 0..<count { values[i] = Float(raw.load(fromByteOffset: i, as: Int8.self)) }
                default: // U8, BOOL
                    for i in 0..<count { values[i] = Float(raw.load(fromByteOffset: i, as: UInt8.self)) }
                }
            }
            tensors[name] = NamedTensor(shape: shape, values: values, dtype: dtype)
        }
        return tensors
    }

    /// A JSON number that is a whole number within Int's range; fractions, out-of-range values
    /// and non-numbers give nil instead of being truncated or trapping in a conversion.
    private static func exactInteger(_ any: Any) -> Int? {
        guard let number = any as? NSNumber else { return nil }
        let value = number.doubleValue
        guard value.isFinite, value.rounded() == value, value >= -0x1p63, value < 0x1p63 else { return nil }
        return Int(value)   // in range by the guard; beyond 2^53 a size fails the bounds checks anyway
    }

    /// Writes the tensors as Float32 (whatever `dtype` says), names sorted.
    public static func encode(_ tensors: [String: NamedTensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
            offset += 4 * t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            tensors[name]!.values.withUnsafeBufferPointer { buffer in
                out.append(contentsOf: UnsafeRawBufferPointer(buffer))
            }
        }
        return out
    }
}
