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
    }

    @inline(__always) static func local(_ x: Int, _ y: Int, _ z: Int) -> Int { (z * side + y) * side + x }

    @inline(__always) static func floorDiv(_ v: Int32) -> Int32 { v >= 0 ? v / 8 : -((-v + 7) / 8) }
}
