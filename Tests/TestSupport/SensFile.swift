import Foundation

/// Writes ScanNet `.sens` files (version 4) for tests, from the format's description (ScanNet's
/// SensReader/README.md and sensorData.h), independently of the reader: header, four row-major
/// float32 4x4 calibration matrices, compression types, sizes, depth shift, frame count, then per
/// frame a camera-to-world 4x4, two uint64 timestamps, two uint64 sizes and the blocks, and
/// optionally the IMU section (a count of 0) after the frames. Blocks are given encoded.
public struct SensFile {
    public struct Record {
        public var pose: [Float]
        public var colorTime: UInt64, depthTime: UInt64
        public var color: [UInt8], depth: [UInt8]
        public init(pose: [Float], colorTime: UInt64, depthTime: UInt64, color: [UInt8], depth: [UInt8]) {
            self.pose = pose; self.colorTime = colorTime; self.depthTime = depthTime; self.color = color; self.depth = depth
        }
    }

    public var version: UInt32 = 4
    public var sensorName = "StructureSensor"
    public var colorIntrinsics: [Float]
    public var colorExtrinsics = SensFile.identity
    public var depthIntrinsics: [Float]
    public var depthExtrinsics = SensFile.identity
    /// -1 unknown, 0 raw, 1 png, 2 jpeg.
    public var colorCompression: Int32 = 2
    /// -1 unknown, 0 raw_ushort, 1 zlib_ushort, 2 occi_ushort.
    public var depthCompression: Int32 = 1
    public var colorWidth: UInt32, colorHeight: UInt32, depthWidth: UInt32, depthHeight: UInt32
    public var depthShift: Float = 1000
    /// The frame count written (default: the records').
    public var declaredCount: UInt64?
    public var records: [Record] = []
    public var imuSection = true

    public static let identity: [Float] = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]

    public static func intrinsics(fx: Float, fy: Float, cx: Float, cy: Float) -> [Float] {
        [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    }

    public init(colorIntrinsics: [Float], depthIntrinsics: [Float], colorSize: (Int, Int), depthSize: (Int, Int)) {
        self.colorIntrinsics = colorIntrinsics
        self.depthIntrinsics = depthIntrinsics
        colorWidth = UInt32(colorSize.0); colorHeight = UInt32(colorSize.1)
        depthWidth = UInt32(depthSize.0); depthHeight = UInt32(depthSize.1)
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func put(_ m: [Float]) { for v in m { put(v.bitPattern) } }
        put(version)
        put(UInt64(sensorName.utf8.count))
        out += Array(sensorName.utf8)
        put(colorIntrinsics); put(colorExtrinsics); put(depthIntrinsics); put(depthExtrinsics)
        put(colorCompression); put(depthCompression)
        put(colorWidth); put(colorHeight); put(depthWidth); put(depthHeight)
        put(depthShift.bitPattern)
        put(declaredCount ?? UInt64(records.count))
        for r in records {
            put(r.pose)
            put(r.colorTime); put(r.depthTime)
            put(UInt64(r.color.count)); put(UInt64(r.depth.count))
            out += r.color
            out += r.depth
        }
        if imuSection { put(UInt64(0)) }
        return out
    }

    public func write(to url: URL) throws { try Data(encode()).write(to: url) }
}
