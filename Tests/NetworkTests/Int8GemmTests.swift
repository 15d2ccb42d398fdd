import CInt8
@testable import NetworkKernels
import XCTest

/// The int8 GEMM (`int8Gemm`, `QuantisedWeights`): exact against its own integer arithmetic
/// redone here in doubles, the VNNI and portable kernels bit for bit, independent of threads,
/// and close to the float GEMM it stands in for.
final class Int8GemmTests: XCTestCase {
    struct Random {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)
        }
    }

    /// Weights [m, k] and activations [k, n] (row stride n + 3, so ldb != n is exercised); the
    /// activations include ReLU-like non-negative rows, signed rows and, if asked, NaN and ±∞.
    func makeData(m: Int, n: Int, k: Int, seed: UInt64, specials: Bool = false) -> (w: [Float], b: [Float], ldb: Int) {
        var random = Random(state: seed)
        let w = (0..<(m * k)).map { _ in random.next() * 2 - 1 }
        let ldb = n + 3
        var b = [Float](repeating: 0, count: k * ldb)
        for r in 0..<k {
            for j in 0..<n { b[r * ldb + j] = r % 3 == 0 ? random.next() * 6 : (random.next() - 0.3) * 4 }
        }
        if specials && k * n > 3 {
            b[1] = .nan; b[ldb * (k - 1)] = .infinity; b[2 % n] = -.infinity
        }
        return (w, b, ldb)
    }

    func run(_ q: QuantisedWeights, n: Int, b: [Float], ldb: Int, threads: Int = 1, portable: Bool = false) -> [Float] {
        var c = [Float](repeating: .nan, count: q.rows * n)
        let workspace = Workspace()
        b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
            int8Gemm(weights: q, n: n, b: b.baseAddress!, ldb: ldb, c: c.baseAddress!, ldc: n, threads: threads,
                     workspace: workspace, forcePortable: portable)
        } }
        return c
    }

    /// The quantisation of column j exactly as the kernels define it (CInt8.h), and the exact sum
    /// of the dequantised products.
    func reference(_ q: QuantisedWeights, n: Int, b: [Float], ldb: Int) -> [Double] {
        var out = [Double](repeating: 0, count: q.rows * n)
        for j in 0..<n {
            var lo: Float = 0, hi: Float = 0
            for r in 0..<q.columns where b[r * ldb + j].isFinite { lo = min(lo, b[r * ldb + j]); hi = max(hi, b[r * ldb + j]) }
            let scale: Float = hi > lo ? (hi - lo) / 255 : 1
            let zero = max(0, min(255, (-lo / scale).rounded(.toNearestOrEven)))
            let inverse = 1 / scale
            let codes = (0..<q.columns).map { r -> Double in
                let x = b[r * ldb + j]
                var y = x * inverse
                y = y + zero
                let clamped = y.isNaN ? 0 : min(max(y, 0), 255)
                return Double(clamped.rounded(.toNearestOrEven) - zero)
            }
            for i in 0..<q.rows {
                var sum = 0.0
                for r in 0..<q.columns { sum += Double(q.weight(row: i, column: r)) * codes[r] }
                out[i * n + j] = sum * Double(scale)
            }
        }
        return out
    }

    /// Both kernels (the dispatched one and the portable one), tile edges included.
    func testMatchesItsIntegerArithmeticOnEveryTileShape() {
        var checked = 0
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (8, 16, 4), (9, 17, 5), (13, 33, 37), (16, 64, 64), (21, 70, 30), (2, 100, 3)] {
            for specials in [false, true] {
                let (w, b, ldb) = makeData(m: m, n: n, k: k, seed: UInt64(m * 1000 + n * 10 + k), specials: specials)
                let q = w.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: m, columns: k) }
                let expected = reference(q, n: n, b: b, ldb: ldb)
                for portable in [false, true] {
                    let c = run(q, n: n, b: b, ldb: ldb, portable: portable)
                    for i in 0..<(m * n) {
                        XCTAssertEqual(Double(c[i]), expected[i], accuracy: 1e-5 * max(1, abs(expected[i])),
                                       "m \(m) n \(n) k \(k) at \(i), portable \(portable)")
                    }
                    checked += m * n
                }
            }
        }
        XCTAssertGreaterThan(checked, 2000)
    }

    func testVNNIAndPortableKernelsAgreeBitForBit() throws {
        try XCTSkipUnless(int8KernelUsesVNNI, "the AVX-512 VNNI kernels do not run here (no VNNI, or SEMFUSE_INT8_PORTABLE=1): only the portable ones (tested above)")
        // The last two span several column chunks of the VNNI kernel (~24 KB of packed values
        // each: 608 and 96 columns here), the last chunk partial, with 8 + 8 + 2 + 1 and 8 + 4 rows.
        for (m, n, k) in [(1, 1, 1), (9, 17, 5), (13, 33, 37), (24, 200, 96), (40, 47, 300), (19, 1000, 40), (12, 250, 256)] {
            let (w, b, ldb) = makeData(m: m, n: n, k: k, seed: UInt64(7 + m + n + k), specials: true)
            let q = w.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: m, columns: k) }
            let fast = run(q, n: n, b: b, ldb: ldb), slow = run(q, n: n, b: b, ldb: ldb, portable: true)
            XCTAssertEqual(fast.map(\.bitPattern), slow.map(\.bitPattern), "m \(m) n \(n) k \(k)")
        }
    }

    /// The epilogue applied as the kernels store (bias, residual with its own row stride, clamp,
    /// on top of accumulation) equals the same float operations applied afterwards, in both kernels.
    func testEpilogueAsStoredEqualsTheSameStepsAfterwards() {
        let (m, n, k) = (13, 45, 20)
        let (w, b, ldb) = makeData(m: m, n: n, k: k, seed: 21)
        let q = w.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: m, columns: k) }
        let bias = (0..<m).map { Float($0) * 0.25 - 1.5 }
        let ldr = n + 5
        let residual = (0..<(m * ldr)).map { Float(($0 * 37) % 23) * 0.1 - 1 }
        let start = (0..<(m * n)).map { Float(($0 * 11) % 7) * 0.5 }
        let clamp = Clamp(lo: -0.5, hi: 6)
        for portable in [false, true] {
            var fused = start, plain = start
            let workspace = Workspace()
            b.withUnsafeBufferPointer { b in bias.withUnsafeBufferPointer { bias in residual.withUnsafeBufferPointer { residual in
                fused.withUnsafeMutableBufferPointer { c in
                    int8Gemm(weights: q, n: n, b: b.baseAddress!, ldb: ldb, c: c.baseAddress!, ldc: n, threads: 1, workspace: workspace,
                             accumulate: true, bias: bias.baseAddress!, residual: residual.baseAddress!, residualStride: ldr,
                             clamp: clamp, forcePortable: portable)
                }
                plain.withUnsafeMutableBufferPointer { c in
                    int8Gemm(weights: q, n: n, b: b.baseAddress!, ldb: ldb, c: c.baseAddress!, ldc: n, threads: 1, workspace: workspace,
                             accumulate: true, forcePortable: portable)
                }
            } } }
            for i in 0..<m {
                for j in 0..<n {
                    var f = plain[i * n + j] + bias[i]
                    f = f + residual[i * ldr + j]
                    f = min(max(f, clamp.lo), clamp.hi)
                    XCTAssertEqual(fused[i * n + j].bitPattern, f.bitPattern, "(\(i), \(j)), portable \(portable)")
                }
            }
            XCTAssertTrue(fused.contains(6) && fused.contains(-0.5), "both bounds were hit")
        }
    }

    func testThreadsDoNotChangeTheResult() {
        let (m, n, k) = (64, 3000, 96)
        let (w, b, ldb) = makeData(m: m, n: n, k: k, seed: 99)
        let q = w.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: m, columns: k) }
        XCTAssertEqual(run(q, n: n, b: b, ldb: ldb, threads: 1).map(\.bitPattern), run(q, n: n, b: b, ldb: ldb, threads: 2).map(\.bitPattern))
    }

    /// Against the float GEMM of the unquantised values: each product is off by at most half a
    /// weight step times |x| plus half an activation step times |w| (and their product), summed.
    func testCloseToTheFloatProduct() {
        let (m, n, k) = (32, 50, 64)
        let (w, b, ldb) = makeData(m: m, n: n, k: k, seed: 5)
        let q = w.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: m, columns: k) }
        let c = run(q, n: n, b: b, ldb: ldb)
        for i in 0..<m {
            for j in 0..<n {
                var exact = 0.0, bound = 0.0
                var lo: Float = 0, hi: Float = 0
                for r in 0..<k { lo = min(lo, b[r * ldb + j]); hi = max(hi, b[r * ldb + j]) }
                let step = Double(hi - lo) / 255
                for r in 0..<k {
                    let x = Double(b[r * ldb + j]), v = Double(w[i * k + r])
                    exact += v * x
                    bound += Double(q.scales[i]) / 2 * abs(x) + step / 2 * abs(v) + Double(q.scales[i]) * step / 4
                }
                XCTAssertEqual(Double(c[i * n + j]), exact, accuracy: bound + 1e-5, "(\(i), \(j))")
            }
        }
    }

    /// Weights that lie on an 8-bit grid (as a file stores them) keep their integers: exact, in
    /// unsigned (zero point 128) and signed (zero point 0) storage, per tensor or per channel.
    func testTheFilesOwnGridIsKeptExactly() throws {
        let m = 5, k = 11
        for (range, zeros) in [(Float(0)...255, [Float](repeating: 131, count: 5)), (-128...127, [0, 0, 0, 0, 0]), (0...255, [3, 250, 128, 0, 255])] {
            let scales: [Float] = [0.02, 0.5, 0.013, 1.7, 0.0031]
            var random = Random(state: 3)
            var w = [Float](repeating: 0, count: m * k)
            for r in 0..<m { for j in 0..<k {
                let v = (range.lowerBound + (random.next() * 255).rounded()).clamped(to: range)
                w[r * k + j] = scales[r] * (v - zeros[r])
            } }
            let q = try XCTUnwrap(w.withUnsafeBufferPointer {
                QuantisedWeights($0.baseAddress!, rows: m, columns: k, scales: scales, zeroPoints: zeros, storedRange: range)
            })
            XCTAssertTrue(q.exact)
            for r in 0..<m { for j in 0..<k { XCTAssertEqual(q.weight(row: r, column: j), w[r * k + j]) } }
            // One weight off the grid: no exact grid.
            w[7] += scales[0] * 0.25
            XCTAssertNil(w.withUnsafeBufferPointer {
                QuantisedWeights($0.baseAddress!, rows: m, columns: k, scales: scales, zeroPoints: zeros, storedRange: range)
            })
        }
    }

    func testFloatWeightsArePerRowSymmetric() {
        let w: [Float] = [0.5, -1, 0.25, 0, 0, 0, 100, -100, 3]
        let q = w.withUnsafeBufferPointer { QuantisedWeights($0.baseAddress!, rows: 3, columns: 3) }
        XCTAssertFalse(q.exact)
        XCTAssertEqual(q.stride, 4)
        XCTAssertEqual(q.weight(row: 0, column: 1), -1)
        XCTAssertEqual(q.weight(row: 0, column: 0), 0.5, accuracy: 1.0 / 254)
        XCTAssertEqual(q.weight(row: 1, column: 2), 0)          // an all-zero row
        XCTAssertEqual(q.weight(row: 2, column: 0), 100)
        XCTAssertEqual(q.weight(row: 2, column: 2), 3, accuracy: 100.0 / 254)
        XCTAssertEqual(q.offsets[2], Int32(q.values[8]) + Int32(q.values[9]) + Int32(q.values[10]) - 3 * 128)
    }
}

private extension Comparable {
    func clamped(to range: ClosedRange<Self>) -> Self { min(max(self, range.lowerBound), range.upperBound) }
}
