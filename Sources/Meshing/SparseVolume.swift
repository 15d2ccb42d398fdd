import Foundation

/// A sparse signed-distance volume: blocks of 8x8x8 voxels allocated only near surfels, each
/// voxel holding a weighted sum of signed distances and the sum of the weights.
///
/// Voxel (i, j, k) is the point (i, j, k) x `voxelSize` in world coordinates; block b holds the
/// voxels whose coordinates divided by 8 (rounded down) equal b.
struct SparseVolume {
    static let side = 8
    static let blockVoxels = side * side * side

    let voxelSize: Float
    /// Block coordinates in allocation order.
    private(set) var blocks: [SIMD3<Int32>] = []
    private(set) var blockIndex: [SIMD3<Int32>: Int32] = [:]
    /// Per voxel, block-major: Σ w·d and Σ w.
    var distanceSum: [Float] = []
    var weightSum: [Float] = []
    /// Per voxel, 1 where some surfel's disc (its radius, at least a voxel, plus half a voxel,
    /// and within a voxel of its plane) reaches it. The signed distance reaches further (the
    /// Gaussian's tail closes holes and corners, the band spans ±2 voxels); this marks where
    /// surface was actually seen, to trim what lies beyond.
    var covered: [UInt8] = []

    init(voxelSize: Float) { self.voxelSize = voxelSize }

    var blockCount: Int { blocks.count }

    /// The block's id, allocating it (zeroed) when new.
    mutating func allocate(_ key: SIMD3<Int32>) -> Int32 {
        if let id = blockIndex[key] { return id }
        let id = Int32(blocks.count)
        blocks.append(key)
        blockIndex[key] = id
        return id
    }

    mutating func allocateStorage() {
        distanceSum = [Float](repeating: 0, count: blocks.count * Self.blockVoxels)
        weightSum = [Float](repeating: 0, count: blocks.count * Self.blockVoxels)
        covered = [UInt8](repeating: 0, count: blocks.count * Self.blockVoxels)
    }

    /// Whether the voxel nearest to `p` (world coordinates) is covered; false outside the volume.
    func isCovered(near p: SIMD3<Float>) -> Bool {
        let q = (p / voxelSize).rounded(.toNearestOrAwayFromZero)
        guard q.min() > -Float(Int32.max / 2), q.max() < Float(Int32.max / 2) else { return false }
        let c = SIMD3<Int32>(Int32(q.x), Int32(q.y), Int32(q.z))
        let b = SIMD3(Self.floorDiv(c.x), Self.floorDiv(c.y), Self.floorDiv(c.z))
        guard let id = blockIndex[b] else { return false }
        let l = c &- b &* Int32(Self.side)
        return covered[Int(id) * Self.blockVoxels + Self.local(Int(l.x), Int(l.y), Int(l.z))] != 0
    }

    @inline(__always) static func local(_ x: Int, _ y: Int, _ z: Int) -> Int { (z * side + y) * side + x }

    @inline(__always) static func floorDiv(_ v: Int32) -> Int32 { v >= 0 ? v / 8 : -((-v + 7) / 8) }
}
