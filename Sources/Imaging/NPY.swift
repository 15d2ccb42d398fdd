import Foundation

/// A NumPy array read from or written to a `.npy` file (C order), values as Float.
public struct NPYArray: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]
    public init(shape: [Int], values: [Float]) { self.shape = shape; self.values = values }
}

/// NumPy `.npy` files (format versions 1-3): little-endian float32, float16 and uint8 in C order.
/// Used for recorded class probabilities and the network's raw outputs.
public enum NPY {
    public enum DType: String, Sendable {
        case float32 = "<f4"
        case float16 = "<f2"
        case uint8 = "|u1"
        var size: Int { self == .float32 ? 4 : (self == .float16 ? 2 : 1) }
    }

    /// NumPy's own limit on the number of dimensions.
    static let maxDimensions = 64

    public static func read(_ url: URL) throws -> NPYArray {
        try decode(FileData.read(url), path: url.path)
    }

    public static func decode(_ data: Data, path: String) throws -> NPYArray {
        let bytes = [UInt8](data)
        func fail(_ reason: String) -> ImagingError { .corrupt(path: path, reason: "NPY: \(reason)") }
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw fail("bad magic (not a .npy file)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unsupported format version \(major)")
        }
        guard headerStart + headerLength <= bytes.count,
              let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .ascii) else {
            throw fail("truncated header")
        }
        guard let descr = field("descr", in: header)?.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")),
              let dtype = DType(rawValue: descr == "<u1" ? "|u1" : descr) else {
            throw fail("unsupported dtype in header \(header.trimmingCharacters(in: .whitespacesAndNewlines)) (need <f4, <f2 or |u1)")
        }
        guard let fortran = field("fortran_order", in: header), fortran.contains("False") else {
            throw fail("Fortran-ordered arrays are not supported")
        }
        guard let shapeText = header.range(of: "'shape':").map({ header[$0.upperBound...] }),
              let open = shapeText.firstIndex(of: "("), let close = shapeText[open...].firstIndex(of: ")") else {
            throw fail("no shape in header")
        }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: open)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else { throw fail("bad shape entry '\(t)'") }
            shape.append(v)
            guard shape.count <= maxDimensions else { throw fail("more than \(maxDimensions) dimensions in shape") }
        }
        // The declared shape is checked against the bytes present, with overflow-checked
        // products, before the values are allocated: a shape such as (40, 2^31, 2^31) must not
        // wrap to a small count.
        let bodyStart = headerStart + headerLength
        let available = bytes.count - bodyStart
        func tooLarge() -> ImagingError {
            .tooLarge(path: path, reason: "NPY: shape \(shape) of \(dtype.rawValue) needs more than the \(available) bytes of data in the file (truncated or crafted file)")
        }
        var expected = dtype.size
        for dimension in shape.contains(0) ? [0] : shape {
            let (product, overflow) = expected.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= available else { throw tooLarge() }
            expected = product
        }
        // A 0-d shape `()` is one element: the loop above never compared it with the data.
        guard expected <= available else { throw tooLarge() }
        let count = expected / dtype.size
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            let body = raw.baseAddress! + bodyStart
            switch dtype {
            case .float32:
                for i in 0..<count { values[i] = Float(bitPattern: UInt32(littleEndian: body.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .float16:
                for i in 0..<count { values[i] = Float(Float16(bitPattern: UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
            case .uint8:
                for i in 0..<count { values[i] = Float(body.load(fromByteOffset: i, as: UInt8.self)) }
            }
        }
        return NPYArray(shape: shape, values: values)
    }

    private static func field(_ name: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(name)':") else { return nil }
        let rest = header[r.upperBound...]
        let end = rest.firstIndex(of: ",") ?? rest.endIndex
        return String(rest[..<end])
    }

    public static func encode(_ array: NPYArray, dtype: DType = .float32) throws -> Data {
        guard array.shape.reduce(1, *) == array.values.count else {
            throw ImagingError.writeFailed(path: "<npy>", reason: "shape \(array.shape) does not match \(array.values.count) values")
        }
        let shapeText = array.shape.count == 1 ? "(\(array.shape[0]),)" : "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        switch dtype {
        case .float32:
            var body = [UInt8](repeating: 0, count: array.values.count * 4)
            for (i, v) in array.values.enumerated() {
                let b = v.bitPattern.littleEndian
                body[4 * i] = UInt8(b & 0xFF); body[4 * i + 1] = UInt8((b >> 8) & 0xFF)
                body[4 * i + 2] = UInt8((b >> 16) & 0xFF); body[4 * i + 3] = UInt8(b >> 24)
            }
            data.append(contentsOf: body)
        case .float16:
            var body = [UInt8](repeating: 0, count: array.values.count * 2)
            for (i, v) in array.values.enumerated() {
                let b = Float16(v).bitPattern.littleEndian
                body[2 * i] = UInt8(b & 0xFF); body[2 * i + 1] = UInt8(b >> 8)
            }
            data.append(contentsOf: body)
        case .uint8:
            data.append(contentsOf: array.values.map { UInt8(max(0, min(255, $0.rounded()))) })
        }
        return data
    }

    public static func write(_ array: NPYArray, to url: URL, dtype: DType = .float32) throws {
        do {
            try FileData.writeAtomically(encode(array, dtype: dtype), to: url)
        } catch ImagingError.writeFailed(_, let reason) {
            throw ImagingError.writeFailed(path: url.path, reason: reason)
        }
    }
}
