import CBLAS
import CInt8

/// The weights of one MobileNet-v2 inverted residual (1x1 expand + ReLU6 → 3x3 depthwise +
/// ReLU6 → 1x1 project, BatchNorm folded into the biases), as `fusedInvertedResidual` reads them.
package struct InvertedResidualWeights {
    /// `[hidden][cin]` and `[hidden]`.
    package var expand: UnsafePointer<Float>, expandBias: UnsafePointer<Float>
    /// `[hidden][3][3]` and `[hidden]`.
    package var depthwise: UnsafePointer<Float>, depthwiseBias: UnsafePointer<Float>
    /// `[cout][hidden]` and `[cout]`.
    package var project: UnsafePointer<Float>, projectBias: UnsafePointer<Float>
    package var hidden: Int
    package var stride: Int
    /// The 1x1 layers on an 8-bit grid for the int8 path (`int8Gemm`'s arithmetic, activations
    /// quantised per pixel); nil: float32 GEMMs.
    package var quantised: (expand: QuantisedWeights, project: QuantisedWeights)?
    /// Each layer's activation: ReLU6, ReLU6, none in MobileNet-v2; a converted model's own
    /// output ranges otherwise.
    package var expandClamp = Clamp.relu6, depthwiseClamp = Clamp.relu6, projectClamp = Clamp.none
    /// The depthwise layer's padding above and left of the image: 1 (PyTorch, and TensorFlow's
    /// SAME at stride 1 or on odd sizes) or 0 (SAME at stride 2 on even sizes, which pads
    /// below and right only).
    package var padTop = 1, padLeft = 1

    package init(expand: UnsafePointer<Float>, expandBias: UnsafePointer<Float>, depthwise: UnsafePointer<Float>,
                 depthwiseBias: UnsafePointer<Float>, project: UnsafePointer<Float>, projectBias: UnsafePointer<Float>,
                 hidden: Int, stride: Int, quantised: (expand: QuantisedWeights, project: QuantisedWeights)? = nil) {
        self.expand = expand; self.expandBias = expandBias; self.depthwise = depthwise; self.depthwiseBias = depthwiseBias
        self.project = project; self.projectBias = projectBias; self.hidden = hidden; self.stride = stride
        self.quantised = quantised
    }

    /// Runs `body` with the weights of a block held in arrays (`[hidden][cin]`, `[hidden]`,
    /// `[hidden][9]`, `[hidden]`, `[cout][hidden]`, `[cout]`); `configure` sets clamps and padding.
    package static func with<R>(expand: [Float], expandBias: [Float], depthwise: [Float], depthwiseBias: [Float],
                                project: [Float], projectBias: [Float], hidden: Int, stride: Int,
                                quantised: (expand: QuantisedWeights, project: QuantisedWeights)? = nil,
                                configure: (inout InvertedResidualWeights) -> Void = { _ in },
                                _ body: (InvertedResidualWeights) -> R) -> R {
        precondition(expand.count % hidden == 0 && expandBias.count == hidden && depthwise.count == 9 * hidden
                     && depthwiseBias.count == hidden && project.count == projectBias.count * hidden)
        return expand.withUnsafeBufferPointer { ew in expandBias.withUnsafeBufferPointer { eb in
        depthwise.withUnsafeBufferPointer { dw in depthwiseBias.withUnsafeBufferPointer { db in
        project.withUnsafeBufferPointer { pw in projectBias.withUnsafeBufferPointer { pb in
            var k = InvertedResidualWeights(expand: ew.baseAddress!, expandBias: eb.baseAddress!, depthwise: dw.baseAddress!,
                                            depthwiseBias: db.baseAddress!, project: pw.baseAddress!, projectBias: pb.baseAddress!,
                                            hidden: hidden, stride: stride, quantised: quantised)
            configure(&k)
            return body(k)
        } } } } } }
    }
}

/// Input width from which a block runs fused. At 40 columns (576 or 960 hidden channels) the
/// per-row GEMMs repack their weights too often and the three separate layers were faster
/// (docs/results.md, "One pass per inverted residual").
package let fusedInvertedResidualMinimumWidth = 64

/// A whole inverted residual in one pass over its input, output row by output row, so the
/// expanded map (6x the input's channels, 30 MB for the joint network's first stride-2 block at
/// 640x480) and the depthwise output never go to memory: each worker expands the input rows its
/// next depthwise row needs into a ring of three zero-bordered rows (one GEMM per input row,
/// straight from the input map), runs the depthwise row into a band of a few output rows, and
/// projects the band with one GEMM into the output (plus the input when `residual`).
///
/// Why: in `bench network` the first four blocks took 15 ms of the 80 ms pass for 2.5 ms of
/// arithmetic, waiting on the round trips of their expanded maps through memory
/// (docs/results.md, "One pass per inverted residual"). The arithmetic is that of the three
/// separate layers (same GEMMs per column, same depthwise sums), so results agree with them to
/// float rounding (`KernelTests`). With `quantised` weights the two GEMMs are the int8 path's
/// (each pixel's activations on their own 8-bit grid, so a row at a time gives the same values
/// as the whole map at once).
package func fusedInvertedResidual(_ input: FeatureMap, into output: FeatureMap, weights k: InvertedResidualWeights,
                                   residual: Bool, workspace: Workspace, threads: Int) {
    let cin = input.channels, hidden = k.hidden, cout = output.channels, s = k.stride
    let h = input.height, w = input.width, ho = output.height, wo = output.width, plane = input.plane
    precondition(s == 1 || s == 2)
    precondition(ho == (h + s - 1) / s && wo == (w + s - 1) / s)
    precondition(!residual || (s == 1 && cin == cout))
    precondition((0...1).contains(k.padTop) && (0...1).contains(k.padLeft))
    if let q = k.quantised {
        precondition(q.expand.rows == hidden && q.expand.columns == cin && q.project.rows == cout && q.project.columns == hidden)
    }
    // A ring row: input column x at x + 1, zeros left of it and right of the width as far as the
    // depthwise row's loads reach (as in `depthwiseConvolution`), which start at column
    // −padLeft.
    let shift = 1 - k.padLeft
    let paddedWidth = max(1 + w, s * ((wo + 15) & ~15) + 2 + shift)
    let slotFloats = hidden * paddedWidth
    // Output rows per projection GEMM: about 32k floats of depthwise output, so the band stays in
    // L2 next to the ring.
    let bandRows = max(1, min(ho, (1 << 15) / max(1, hidden * wo)))
    let workers = max(1, min(threads, ho))
    let perWorker = 3 * slotFloats + paddedWidth + hidden * bandRows * wo
    let scratch = workspace.floats("fused.ir.scratch", count: perWorker * workers)
    // Int8: each worker's quantised, packed GEMM input (an input row, or a band).
    let packedBytes = k.quantised == nil ? 0
        : (max(semfuse_s8_block_bytes(cin, w), semfuse_s8_block_bytes(hidden, bandRows * wo)) + 63) & ~63
    let packedScratch = workspace.raw("fused.ir.packed", bytes: max(1, packedBytes * workers)).assumingMemoryBound(to: UInt8.self)
    let taps = workspace.raw("fused.ir.taps", bytes: hidden * MemoryLayout<Taps3x3>.stride)
        .bindMemory(to: Taps3x3.self, capacity: hidden)
    for c in 0..<hidden {
        (taps + c).initialize(to: Taps3x3(k.depthwise + 9 * c, bias: k.depthwiseBias[c], clamp: k.depthwiseClamp))
    }
    parallelRanges(ho, threads: workers) { worker, rows in
        let ring = scratch + worker * perWorker, zeros = ring + 3 * slotFloats, band = zeros + paddedWidth
        let packed = packedScratch + worker * packedBytes
        // Borders are zeroed once per call; the expand GEMMs write only each row's interior.
        ring.initialize(repeating: 0, count: 3 * slotFloats + paddedWidth)
        var held = SIMD3<Int>(repeating: -1)   // the input row each ring slot holds

        /// Row `iy` of every hidden channel, expanded and clamped, in its ring slot.
        func expandedRow(_ iy: Int) -> UnsafeMutablePointer<Float> {
            let slot = iy % 3, line = ring + slot * slotFloats
            if held[slot] != iy {
                if let q = k.quantised?.expand {
                    quantisedGemm(q, n: w, b: input.base + iy * w, ldb: plane, packed: packed, c: line + 1, ldc: paddedWidth,
                                  bias: k.expandBias, residual: nil, residualStride: 0, clamp: k.expandClamp)
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(hidden), Int32(w), Int32(cin),
                                1, k.expand, Int32(cin), input.base + iy * w, Int32(plane), 0, line + 1, Int32(paddedWidth))
                    for c in 0..<hidden {
                        clampEpilogue(line + c * paddedWidth + 1, count: w, bias: k.expandBias[c], residual: nil, clamp: k.expandClamp)
                    }
                }
                held[slot] = iy
            }
            return line
        }

        var y0 = rows.lowerBound
        while y0 < rows.upperBound {
            let y1 = min(rows.upperBound, y0 + bandRows), n = (y1 - y0) * wo
            for y in y0..<y1 {
                let top = y * s - k.padTop
                func rowAt(_ iy: Int) -> UnsafeMutablePointer<Float>? { iy >= 0 && iy < h ? expandedRow(iy) + shift : nil }
                let r0 = rowAt(top), r1 = rowAt(top + 1), r2 = rowAt(top + 2)
                let out = band + (y - y0) * wo
                for c in 0..<hidden {
                    let offset = c * paddedWidth
                    taps[c].row(r0.map { $0 + offset } ?? zeros, r1.map { $0 + offset } ?? zeros, r2.map { $0 + offset } ?? zeros,
                                into: out + c * n, count: wo, dilationX: 1, strideX: s)
                }
            }
            let target = output.base + y0 * wo
            let skip = residual ? UnsafePointer(input.base + y0 * w) : nil
            if let q = k.quantised?.project {
                quantisedGemm(q, n: n, b: band, ldb: n, packed: packed, c: target, ldc: output.plane,
                              bias: k.projectBias, residual: skip, residualStride: plane, clamp: k.projectClamp)
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(n), Int32(hidden),
                            1, k.project, Int32(hidden), band, Int32(n), 0, target, Int32(output.plane))
                for c in 0..<cout {
                    clampEpilogue(target + c * output.plane, count: n, bias: k.projectBias[c],
                                  residual: skip.map { $0 + c * plane }, clamp: k.projectClamp)
                }
            }
            y0 = y1
        }
    }
}

/// One single-threaded int8 GEMM with its epilogue (`int8Gemm`'s arithmetic) on a caller's
/// packing buffer of `semfuse_s8_block_bytes(q.columns, n)` bytes: for kernels that are already
/// running on a worker and must not touch the shared workspace.
private func quantisedGemm(_ q: QuantisedWeights, n: Int, b: UnsafePointer<Float>, ldb: Int, packed: UnsafeMutablePointer<UInt8>,
                           c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>, residual: UnsafePointer<Float>?,
                           residualStride: Int, clamp: Clamp) {
    semfuse_s8_pack(b, q.columns, n, ldb, packed, 0)
    var epilogue = semfuse_epilogue(bias: bias, residual: residual, ldr: residualStride, lo: clamp.lo, hi: clamp.hi)
    q.values.withUnsafeBufferPointer { values in q.zeroPoints.withUnsafeBufferPointer { zeros in
    q.scales.withUnsafeBufferPointer { scales in q.offsets.withUnsafeBufferPointer { offsets in
        semfuse_u8s8_gemm(q.rows, n, q.columns, values.baseAddress!, q.stride, zeros.baseAddress!, scales.baseAddress!,
                          offsets.baseAddress!, packed, c, ldc, 0, &epilogue, 0)
    } } } }
}
