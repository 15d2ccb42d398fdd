import Foundation
import Imaging

/// The vertex element of a PLY file: property names and types, comments and every value.
public struct PLYFile: Sendable {
    public enum ScalarType: String, Sendable {
        case int8, uint8, int16, uint16, int32, uint32, float32, float64
        var size: Int {
            switch self {
            case .int8, .uint8: return 1
            case .int16, .uint16: return 2
            case .int32, .uint32, .float32: return 4
            case .float64: return 8
            }
        }
        /// PLY's type names and their sized aliases.
        init?(ply name: String) {
            switch name {
            case "char", "int8": self = .int8
            case "uchar", "uint8": self = .uint8
            case "short", "int16": self = .int16
            case "ushort", "uint16": self = .uint16
            case "int", "int32": self = .int32
            case "uint", "uint32": self = .uint32
            case "float", "float32": self = .float32
            case "double", "float64": self = .float64
            default: return nil
            }
        }
    }

    public var format: String
    public var comments: [String]
    public var properties: [(name: String, type: ScalarType)]
    public var vertexCount: Int
    /// Column-major values: `columns[k][i]` is property k of vertex i.
    public var columns: [[Double]]
    /// Triangles of the face element (polygons fanned), nil when the file has none.
    public var faces: [SIMD3<UInt32>]? = nil

    public func column(named name: String) -> [Double]? {
        properties.firstIndex { $0.name == name }.map { columns[$0] }
    }

    /// Maps the known property names back to a `PointCloud`.
    public func pointCloud() -> PointCloud {
        func f(_ name: String) -> [Float]? { column(named: name)?.map { Float($0) } }
        let x = f("x") ?? [], y = f("y") ?? [], z = f("z") ?? []
        var cloud = PointCloud(positions: (0..<vertexCount).map { SIMD3(x[$0], y[$0], z[$0]) })
        if let nx = f("nx"), let ny = f("ny"), let nz = f("nz") {
            cloud.normals = (0..<vertexCount).map { SIMD3(nx[$0], ny[$0], nz[$0]) }
        }
        if let r = column(named: "red"), let g = column(named: "green"), let b = column(named: "blue") {
            // Clamped in Double: a float colour of NaN or 1e300 must not trap in an Int conversion.
            func byte(_ v: Double) -> UInt8 { v.isNaN ? 0 : UInt8(Swift.max(0, Swift.min(255, v))) }
            cloud.colors = (0..<vertexCount).map { RGB8(byte(r[$0]), byte(g[$0]), byte(b[$0])) }
        }
        cloud.labels = column(named: "label")?.map { Int32($0) }
        cloud.labelConfidence = f("label_confidence")
        cloud.confidence = f("confidence")
        cloud.radius = f("radius")
        let probNames = properties.map(\.name).filter { $0.hasPrefix("prob_") }
        if !probNames.isEmpty {
            let cols = (0..<probNames.count).compactMap { f("prob_\($0)") }
            if cols.count == probNames.count {
                var values = [Float](repeating: 0, count: vertexCount * cols.count)
                for i in 0..<vertexCount { for k in 0..<cols.count { values[i * cols.count + k] = cols[k][i] } }
                cloud.classProbabilities = (cols.count, values)
            }
        }
        return cloud
    }
}

/// Reads the vertex and face elements of ASCII and binary (little/big-endian) PLY files, in
/// whichever order they come; polygons are fanned into triangles. Other elements before them
/// are read past; anything after both is ignored.
public enum PLYReader {
    public static func read(_ url: URL) throws -> PLYFile {
        let data: Data
        do { data = try FileData.read(url) } catch let error as ImagingError {
            throw ExportError.malformedPLY(path: url.path, reason: error.description)
        }
        return try decode(data, path: url.path)
    }

    public static func decode(_ data: Data, path: String) throws -> PLYFile {
        let bytes = [UInt8](data)
        func fail(_ reason: String) -> ExportError { .malformedPLY(path: path, reason: reason) }
        guard bytes.count >= 4, String(bytes: bytes[0..<3], encoding: .ascii) == "ply" else { throw fail("missing 'ply' magic") }
        // Header: lines up to "end_header".
        guard let endRange = findEndHeader(bytes) else { throw fail("no end_header line") }
        guard let header = String(bytes: bytes[0..<endRange.lowerBound], encoding: .ascii) else { throw fail("header is not ASCII") }
        var format: String?
        var comments: [String] = []
        enum Property { case scalar(String, PLYFile.ScalarType), list(String, count: PLYFile.ScalarType, item: PLYFile.ScalarType) }
        struct Element { var name: String; var count: Int; var properties: [Property] }
        var elements: [Element] = []
        for (n, raw) in header.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let parts = line.split(separator: " ").map(String.init)
            guard let keyword = parts.first else { continue }
            switch keyword {
            case "ply": continue
            case "format":
                guard parts.count >= 3, ["ascii", "binary_little_endian", "binary_big_endian"].contains(parts[1]) else {
                    throw fail("header line \(n + 1): unknown format '\(line)'")
                }
                format = parts[1]
            case "comment", "obj_info": comments.append(parts.dropFirst().joined(separator: " "))
            case "element":
                guard parts.count == 3, let count = Int(parts[2]), count >= 0 else { throw fail("header line \(n + 1): bad element '\(line)'") }
                elements.append(Element(name: parts[1], count: count, properties: []))
            case "property":
                guard !elements.isEmpty else { throw fail("header line \(n + 1): property before any element") }
                if parts.count >= 2 && parts[1] == "list" {
                    guard parts.count == 5, let countType = PLYFile.ScalarType(ply: parts[2]), let itemType = PLYFile.ScalarType(ply: parts[3]),
                          countType != .float32, countType != .float64 else {
                        throw fail("header line \(n + 1): bad list property '\(line)'")
                    }
                    elements[elements.count - 1].properties.append(.list(parts[4], count: countType, item: itemType))
                    continue
                }
                guard parts.count == 3, let type = PLYFile.ScalarType(ply: parts[1]) else {
                    throw fail("header line \(n + 1): unknown property type in '\(line)'")
                }
                elements[elements.count - 1].properties.append(.scalar(parts[2], type))
            default:
                throw fail("header line \(n + 1): unexpected '\(keyword)'")
            }
        }
        guard let format else { throw fail("no format line") }
        guard let vertexIndex = elements.firstIndex(where: { $0.name == "vertex" }) else { throw fail("no vertex element") }
        let vertex = elements[vertexIndex]
        var properties: [(name: String, type: PLYFile.ScalarType)] = []
        for property in vertex.properties {
            guard case .scalar(let name, let type) = property else { throw fail("list properties in the vertex element are not supported") }
            properties.append((name, type))
        }
        for axis in ["x", "y", "z"] where !properties.contains(where: { $0.name == axis }) {
            throw fail("the vertex element has no '\(axis)' property")
        }
        let faceIndex = elements.firstIndex { $0.name == "face" }
        let bodyStart = endRange.upperBound
        let bodyBytes = bytes.count - bodyStart
        // Every declared row takes at least one byte (binary) or one character (ASCII), so a
        // count above the body's size is refused before anything is allocated.
        for e in elements[...max(vertexIndex, faceIndex ?? vertexIndex)] where e.count > bodyBytes {
            throw fail((format == "ascii" ? "" : "truncated binary body: ") + "\(e.count) '\(e.name)' elements: more than the \(bodyBytes) bytes after the header can hold; the body ends inside element '\(e.name)' (truncated or crafted file)")
        }
        var reader = BodyReader(bytes: bytes, offset: bodyStart, format: format, path: path)
        var columns: [[Double]] = []
        var faces: [SIMD3<UInt32>]?
        for (index, e) in elements.enumerated() where index <= max(vertexIndex, faceIndex ?? vertexIndex) {
            if index == vertexIndex {
                if format != "ascii" {
                    let stride = properties.reduce(0) { $0 + $1.type.size }
                    let (needed, overflow) = vertex.count.multipliedReportingOverflow(by: stride)
                    guard !overflow, needed <= bytes.count - reader.offset else {
                        throw fail("truncated binary body: \(vertex.count) vertices of \(stride) bytes need \(overflow ? "more than \(Int.max)" : "\(needed)") bytes, found \(bytes.count - reader.offset)")
                    }
                }
                columns = [[Double]](repeating: [Double](repeating: 0, count: vertex.count), count: properties.count)
                for i in 0..<vertex.count {
                    reader.beginRow("vertex \(i)", expected: "\(properties.count)")
                    for k in 0..<properties.count {
                        guard let v = try reader.next(properties[k].type) else { throw fail("body ends after \(i) of \(vertex.count) vertices") }
                        columns[k][i] = v
                    }
                    reader.endRow()
                }
                continue
            }
            let isFace = index == faceIndex
            var triangles: [SIMD3<UInt32>] = []
            if isFace { triangles.reserveCapacity(e.count) }
            for row in 0..<e.count {
                reader.beginRow("\(e.name) \(row)", expected: "more")
                for property in e.properties {
                    switch property {
                    case .scalar(_, let type):
                        guard try reader.next(type) != nil else { throw fail("body ends inside element '\(e.name)' (row \(row) of \(e.count))") }
                    case .list(let name, let countType, let itemType):
                        guard let n = try reader.next(countType) else { throw fail("body ends inside element '\(e.name)' (row \(row) of \(e.count))") }
                        guard n >= 0, n <= 1024, n == n.rounded() else { throw fail("\(e.name) \(row): list of \(n) items") }
                        var polygon: [UInt32] = []
                        for _ in 0..<Int(n) {
                            guard let v = try reader.next(itemType) else { throw fail("body ends inside element '\(e.name)' (row \(row) of \(e.count))") }
                            if isFace && (name == "vertex_indices" || name == "vertex_index") {
                                guard v >= 0, v < Double(vertex.count), v == v.rounded() else {
                                    throw fail("face \(row) refers to vertex \(v); there are \(vertex.count)")
                                }
                                polygon.append(UInt32(v))
                            }
                        }
                        if polygon.count >= 3 {
                            for k in 1..<(polygon.count - 1) { triangles.append(SIMD3(polygon[0], polygon[k], polygon[k + 1])) }
                        }
                    }
                }
                reader.endRow()
            }
            if isFace { faces = triangles }
        }
        // `pointCloud()` turns labels into Int32 and colours into bytes: a label must be an
        // integer in range, or the conversion would trap on a crafted value.
        if let k = properties.firstIndex(where: { $0.name == "label" }),
           let bad = columns[k].firstIndex(where: { Int32(exactly: $0) == nil }) {
            throw fail("vertex \(bad): label \(columns[k][bad]) is not a 32-bit integer")
        }
        var file = PLYFile(format: format, comments: comments, properties: properties, vertexCount: vertex.count, columns: columns)
        file.faces = faces
        return file
    }

    private static func findEndHeader(_ bytes: [UInt8]) -> Range<Int>? {
        let marker = Array("end_header".utf8)
        guard bytes.count >= marker.count else { return nil }
        var i = 0
        while i + marker.count <= bytes.count {
            if bytes[i] == marker[0] && Array(bytes[i..<(i + marker.count)]) == marker && (i == 0 || bytes[i - 1] == 0x0A) {
                var end = i + marker.count
                if end < bytes.count && bytes[end] == 0x0D { end += 1 }
                if end < bytes.count && bytes[end] == 0x0A { end += 1 }
                return i..<end
            }
            i += 1
            if i > 1 << 20 { return nil }   // headers are small; do not scan a huge body
        }
        return nil
    }

    static func value(_ p: UnsafeRawPointer, _ type: PLYFile.ScalarType, bigEndian: Bool) -> Double {
        @inline(__always) func u16() -> UInt16 { let v = p.loadUnaligned(as: UInt16.self); return bigEndian ? v.bigEndian : v.littleEndian }
        @inline(__always) func u32() -> UInt32 { let v = p.loadUnaligned(as: UInt32.self); return bigEndian ? v.bigEndian : v.littleEndian }
        switch type {
        case .int8: return Double(p.load(as: Int8.self))
        case .uint8: return Double(p.load(as: UInt8.self))
        case .int16: return Double(Int16(bitPattern: u16()))
        case .uint16: return Double(u16())
        case .int32: return Double(Int32(bitPattern: u32()))
        case .uint32: return Double(u32())
        case .float32: return Double(Float(bitPattern: u32()))
        case .float64:
            let v = p.loadUnaligned(as: UInt64.self)
            return Double(bitPattern: bigEndian ? v.bigEndian : v.littleEndian)
        }
    }
}

/// Reads a PLY body value by value: binary with bounds checks, or ASCII one whitespace-separated
/// token at a time, each row on its own line.
struct BodyReader {
    let bytes: [UInt8]
    var offset: Int
    let format: String
    let path: String
    private var row = "", expected = "", valuesInRow = 0

    init(bytes: [UInt8], offset: Int, format: String, path: String) {
        self.bytes = bytes; self.offset = offset; self.format = format; self.path = path
    }

    mutating func beginRow(_ name: String, expected: String) {
        row = name; self.expected = expected; valuesInRow = 0
    }

    /// The next value, nil at the end of the body.
    mutating func next(_ type: PLYFile.ScalarType) throws -> Double? {
        if format == "ascii" {
            while offset < bytes.count, Self.isSpace(bytes[offset]) {
                if bytes[offset] == 0x0A && valuesInRow > 0 {
                    throw ExportError.malformedPLY(path: path, reason: "\(row) has \(valuesInRow) values, expected \(expected)")
                }
                offset += 1
            }
            guard offset < bytes.count else { return nil }
            valuesInRow += 1
            let start = offset
            while offset < bytes.count, !Self.isSpace(bytes[offset]) { offset += 1 }
            guard offset - start <= 64, let text = String(bytes: bytes[start..<offset], encoding: .ascii), let v = Double(text) else {
                throw ExportError.malformedPLY(path: path, reason: "'\(String(decoding: bytes[start..<min(offset, start + 64)], as: UTF8.self))' is not a number (byte \(start))")
            }
            return v
        }
        guard offset + type.size <= bytes.count else { return nil }
        defer { offset += type.size }
        return bytes.withUnsafeBytes { PLYReader.value($0.baseAddress! + offset, type, bigEndian: format == "binary_big_endian") }
    }

    /// ASCII rows end at a line break: values beyond a row's properties are ignored.
    mutating func endRow() {
        guard format == "ascii" else { return }
        while offset < bytes.count, bytes[offset] != 0x0A { offset += 1 }
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
}
