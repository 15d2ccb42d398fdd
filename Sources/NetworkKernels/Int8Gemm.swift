import CInt8
import Foundation

/// A convolution's weights `[rows, columns]` on an 8-bit grid for `int8Gemm`: per output channel
/// (row) weight = scale · (value − zeroPoint) with values in 0...255, rows padded with zeros to
/// a multiple of four columns (the int8 kernel reads four at a time).
package struct QuantisedWeights: Sendable {
    package let rows: Int, columns: Int
    /// Bytes from one row to the next (`columns` rounded up to 4).
    package let stride: Int
    package let values: [UInt8]
    package let zeroPoints: [Int32]
    package let scales: [Float]
    /// Per row: Σ (value − zeroPoint), for the activations' zero point.
    package let offsets: [Int32]
    /// Whether the values are the file's own integers (exact) rather than re-quantised floats.
    package let exact: Bool

    /// The largest `columns` whose int32 sums cannot overflow (255 · 255 · K < 2³¹).
    package static let maximumColumns = 1 << 15

    /// Quantises float weights per row, symmetrically: scale max|w| / 127, values round(w / scale) + 128.
    package init(_ weights: UnsafePointer<Float>, rows m: Int, columns k: Int) {
        precondition(m >= 0 && k >= 0 && k <= Self.maximumColumns)
        var values = [UInt8](repeating: 0, count: m * ((k + 3) & ~3)), scales = [Float](repeating: 1, count: m)
        let stride = (k + 3) & ~3
        for r in 0..<m {
            let row = weights + r * k
            var largest: Float = 0
            for j in 0..<k where row[j].isFinite { largest = max(largest, abs(row[j])) }
            let scale: Float = largest > 0 ? largest / 127 : 1
            for j in 0..<k {
                let q = row[j].isNaN ? 0 : max(-127, min(127, (row[j] / scale).rounded()))
                values[r * stride + j] = UInt8(Int(q) + 128)
            }
            scales[r] = scale
        }
        self.init(rows: m, columns: k, values: values, zeroPoints: Array(repeating: 128, count: m), scales: scales, exact: false)
    }

    /// The weights' own 8-bit grid, when every float weight is exactly scale · (v − zeroPoint) for
    /// an integer v in `storedRange` (a file that stores 8-bit weights): the int8 path then
    /// multiplies the file's integers and adds no weight rounding. Nil when any weight is off the grid.
    package init?(_ weights: UnsafePointer<Float>, rows m: Int, columns k: Int, scales: [Float], zeroPoints: [Float],
                  storedRange: ClosedRange<Float>) {
        precondition(m >= 0 && k >= 0)
        guard k <= Self.maximumColumns, scales.count == m, zeroPoints.count == m,
              storedRange.upperBound - storedRange.lowerBound <= 255 else { return nil }
        let stride = (k + 3) & ~3
        var values = [UInt8](repeating: 0, count: m * stride), zeros = [Int32](repeating: 0, count: m)
        for r in 0..<m {
            let s = scales[r], z = zeroPoints[r]
            guard s > 0, s.isFinite, z == z.rounded(), storedRange.contains(z) else { return nil }
            zeros[r] = Int32(z - storedRange.lowerBound)
            for j in 0..<k {
                let w = weights[r * k + j]
                let v = (w / s).rounded() + z
                guard storedRange.contains(v), s * (v - z) == w else { return nil }
                values[r * stride + j] = UInt8(v - storedRange.lowerBound)
            }
        }
        self.init(rows: m, columns: k, values: values, zeroPoints: zeros, scales: scales, exact: true)
    }

    private init(rows: Int, columns: Int, values: [UInt8], zeroPoints: [Int32], scales: [Float], exact: Bool) {
        self.rows = rows; self.columns = columns; stride = (columns + 3) & ~3
        self.values = values; self.zeroPoints = zeroPoints; self.scales = scales; self.exact = exact
        var offsets = [Int32](repeating: 0, count: rows)
        for r in 0..<rows {
            var sum: Int32 = 0
            for j in 0..<columns { sum += Int32(values[r * stride + j]) - zeroPoints[r] }
            offsets[r] = sum
        }
        self.offsets = offsets
    }

    /// The float weight these values stand for.
    package func weight(row r: Int, column j: Int) -> Float {
        scales[r] * Float(Int32(values[r * stride + j]) - zeroPoints[r])
    }
}

/// Whether `int8Gemm` runs the AVX-512 VNNI kernels here (otherwise portable ones, same results).
package var int8KernelUsesVNNI: Bool {
    semfuse_int8_vnni_available() != 0 && ProcessInfo.processInfo.environment["SEMFUSE_INT8_PORTABLE"] != "1"
}

/// `C[m, n] ≈ W · B` with W on an 8-bit grid (`QuantisedWeights`) and B (`[k, n]`, row stride
/// `ldb`) quantised on the fly to 8 bits per column: each pixel's channel vector on a grid over
/// its own range (asymmetric, 0 included), which factors out of the sum over channels. Int32
/// sums; the result does not depend on how the columns are split over threads. With
/// `accumulate` the product is added to C; then, as each value is stored, the convolution's
/// epilogue: + `bias[row]`, + `residual` (laid out like C, rows `residualStride` apart), clamp.
/// The columns go in blocks packed while they fit in cache, split evenly over `threads`.
package func int8Gemm(weights a: QuantisedWeights, n: Int, b: UnsafePointer<Float>, ldb: Int,
                      c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int, workspace: Workspace,
                      accumulate: Bool = false, bias: UnsafePointer<Float>? = nil, residual: UnsafePointer<Float>? = nil,
                      residualStride: Int = 0, clamp: Clamp = .none, forcePortable: Bool = false) {
    let m = a.rows, k = a.columns
    guard m > 0, n > 0 else { return }
    // Column blocks of ~96 KB packed (multiples of 32 columns), spread evenly over the threads.
    let blockColumns = max(32, min((n + 31) & ~31, (96 * 1024 / max(a.stride, 4)) & ~31))
    var blocks = (n + blockColumns - 1) / blockColumns
    let parallel = threads > 1 && m * n * k >= 1 << 20 && blocks > 1
    let columnWorkers = parallel ? min(threads, blocks) : 1
    if parallel { blocks = (blocks + columnWorkers - 1) / columnWorkers * columnWorkers }
    let perBlock = ((n + blocks - 1) / blocks + 31) & ~31
    blocks = (n + perBlock - 1) / perBlock
    let packedBytes = semfuse_s8_block_bytes(k, perBlock)
    let scratch = (0..<columnWorkers).map { workspace.raw("int8.packed.\($0)", bytes: packedBytes).assumingMemoryBound(to: UInt8.self) }
    a.values.withUnsafeBufferPointer { values in
    a.zeroPoints.withUnsafeBufferPointer { zeros in
    a.scales.withUnsafeBufferPointer { rowScale in
    a.offsets.withUnsafeBufferPointer { rowOffset in
        parallelRanges(blocks, threads: columnWorkers) { w, range in
            let packed = scratch[w]
            for block in range {
                let start = block * perBlock, count = min(n, start + perBlock) - start
                guard count > 0 else { continue }
                semfuse_s8_pack(b + start, k, count, ldb, packed, forcePortable ? 1 : 0)
                var epilogue = semfuse_epilogue(bias: bias, residual: residual.map { $0 + start }, ldr: residualStride,
                                                lo: clamp.lo, hi: clamp.hi)
                semfuse_u8s8_gemm(m, count, k, values.baseAddress!, a.stride, zeros.baseAddress!, rowScale.baseAddress!,
                                  rowOffset.baseAddress!, packed, c + start, ldc, accumulate ? 1 : 0, &epilogue, forcePortable ? 1 : 0)
            }
        }
    }}}}
}
