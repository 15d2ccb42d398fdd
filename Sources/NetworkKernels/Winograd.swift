import CBLAS
import CPrefetch

/// Dense 3x3 convolution (padding 1, stride 1) by Winograd's minimal filtering F(4x4, 3x3)
/// (Lavin & Gray 2016): each 4x4 output tile is A^T [(G g G^T) ⊙ (B^T d B)] A of its 6x6 input
/// patch d. The 36 element-wise products over all channels are 36 GEMMs with 2.25/9 of the
/// per-tap GEMM's multiply-adds (4x fewer); the transforms are a few adds per value.
///
/// Why: the 40-class head's 3x3 (1.77 GMAC at 640x480) was a quarter of the joint network's time
/// as per-tap GEMMs running at the machine's FMA peak, so only fewer multiplies could make it
/// faster. The transforms' constants (up to 8 and 1/24) cost some accuracy: a few 1e-6 of the
/// output range in float32 against the direct sum (`KernelTests`; the golden 480x640 logits
/// 3.9e-6 of their range against per-tap's 3.9e-6).
///
/// Layout: tiles go across the image in rows, eight tiles per SIMD lane group (the input patches
/// of eight neighbouring tiles are four-way de-interleaved from contiguous loads). Blocks of a
/// few lane groups are handed to the threads in equal shares; each thread transforms its
/// block's input into `V[ξ][cin][tiles]`, multiplies `U[ξ][cout][cin] · V[ξ]` with
/// single-threaded BLAS and transforms the 36 products back into the output.
package enum Winograd {
    /// `U[ξ][cout][cin]`, ξ = 6a + b, from per-tap weights `[tap][cout][cin]` (tap = 3·dy + dx):
    /// U = G g G^T per output/input channel pair. Computed once per set of weights, in Double.
    package static func transformedWeights(tapWeights: UnsafePointer<Float>, outputChannels cout: Int,
                                           inputChannels cin: Int) -> [Float] {
        let g: [[Double]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                             [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        var u = [Float](repeating: 0, count: 36 * cout * cin)
        for o in 0..<cout {
            for i in 0..<cin {
                var w = [[Double]](repeating: [0, 0, 0], count: 3)
                for dy in 0..<3 { for dx in 0..<3 { w[dy][dx] = Double(tapWeights[((3 * dy + dx) * cout + o) * cin + i]) } }
                for a in 0..<6 {
                    for b in 0..<6 {
                        var s = 0.0
                        for dy in 0..<3 { for dx in 0..<3 { s += g[a][dy] * w[dy][dx] * g[b][dx] } }
                        u[((6 * a + b) * cout + o) * cin + i] = Float(s)
                    }
                }
            }
        }
        return u
    }

    /// out = conv3x3(x) + bias with `transformed` from `transformedWeights`, where x is the input,
    /// or with `inputScale` min(max(input · scale[c], 0), 6) (the heads' depthwise 1x1 + ReLU6,
    /// applied as the patch rows are read instead of in a pass of its own).
    package static func convolution3x3(_ input: FeatureMap, into output: FeatureMap, transformed: UnsafePointer<Float>,
                                       bias: UnsafePointer<Float>, inputScale: UnsafePointer<Float>? = nil,
                                       workspace: Workspace, threads: Int) {
        let h = input.height, w = input.width, cin = input.channels, cout = output.channels
        precondition(output.height == h && output.width == w, "Winograd 3x3 keeps the size")
        guard h > 0, w > 0, cin > 0, cout > 0 else { return }
        let tilesX = (w + 3) / 4, tilesY = (h + 3) / 4
        let rowGroups = (tilesX + 7) / 8   // lane groups of eight tiles per tile row
        let groups = tilesY * rowGroups
        // Blocks of about `groupsPerBlockTarget` lane groups, in equal shares per thread.
        let threads = max(1, threads)
        let perThread = (groups + threads - 1) / threads
        let blocksPerThread = (perThread + groupsPerBlockTarget - 1) / groupsPerBlockTarget
        let groupsPerBlock = max(1, (perThread + blocksPerThread - 1) / blocksPerThread)
        let blocks = (groups + groupsPerBlock - 1) / groupsPerBlock
        let workers = max(1, min(threads, blocks))
        let n = 8 * groupsPerBlock
        let vCount = 36 * cin * n, mCount = 36 * cout * n
        let perWorker = vCount + mCount + scratchFloats(rowGroups: rowGroups)
        let scratch = workspace.floats("winograd.\(cin).\(cout)", count: workers * perWorker)
        let geometry = Geometry(height: h, width: w, cin: cin, cout: cout, tilesX: tilesX, rowGroups: rowGroups, n: n)
        parallelRanges(blocks, threads: workers) { worker, range in
            let v = scratch + worker * perWorker
            let m = v + vCount, lines = m + mCount
            for block in range {
                let units = (block * groupsPerBlock)..<min(groups, (block + 1) * groupsPerBlock)
                transformInput(input, scale: inputScale, v: v, groups: units, geometry: geometry, scratch: lines)
                for xi in 0..<36 {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(8 * units.count), Int32(cin),
                                1, transformed + xi * cout * cin, Int32(cin), v + xi * cin * n, Int32(n),
                                0, m + xi * cout * n, Int32(n))
                }
                transformOutput(m, into: output, bias: bias, groups: units, geometry: geometry)
            }
        }
    }

    /// Lane groups (of eight tiles) per block. The block's transformed input, 36 · cin · 8 floats
    /// per group (1.4 MB for 5 groups of 256 channels), is written by the transform and read by
    /// the GEMMs; fewer groups keep it nearer the core but make the GEMMs too thin (N = 8 per
    /// group). Measured on the 40-class head at 640x480 (1 and 2 threads): 1 group 26.4 / 13.8 ms,
    /// 2-3 groups 21.5 / 10.8, 5 groups 19.0 / 9.8, 8 groups 19.9 / 10.4, 15 groups 21.4 / 11.1.
    static let groupsPerBlockTarget = 6

    /// Per worker beyond V and M: six zero-padded patch rows and the row pass's 36 vectors of
    /// eight per lane group.
    static func scratchFloats(rowGroups: Int) -> Int { 6 * lineFloats(rowGroups: rowGroups) + 36 * 8 }

    /// A padded patch row: input column x at x + 1, zeros left of 0 and right of the width, long
    /// enough for the last lane group's 36-column loads.
    static func lineFloats(rowGroups: Int) -> Int { 32 * rowGroups + 8 }

    struct Geometry {
        let height: Int, width: Int, cin: Int, cout: Int, tilesX: Int, rowGroups: Int, n: Int
    }

    /// Columns 4j + c (j = 0..<8 tiles, c = 0..<6) from `src` as six vectors over the eight tiles:
    /// eight contiguous loads and two rounds of even/odd de-interleaving.
    @inline(__always)
    static func patchRow(_ src: UnsafeRawPointer)
        -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let a = SIMD16<Float>(lowHalf: src.loadUnaligned(as: SIMD8<Float>.self),
                              highHalf: src.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
        let b = SIMD16<Float>(lowHalf: src.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self),
                              highHalf: src.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
        let c = SIMD16<Float>(lowHalf: src.loadUnaligned(fromByteOffset: 16, as: SIMD8<Float>.self),
                              highHalf: src.loadUnaligned(fromByteOffset: 48, as: SIMD8<Float>.self))
        let d = SIMD16<Float>(lowHalf: src.loadUnaligned(fromByteOffset: 80, as: SIMD8<Float>.self),
                              highHalf: src.loadUnaligned(fromByteOffset: 112, as: SIMD8<Float>.self))
        // a, b: columns 0..<32; c, d: columns 4..<36.
        let abEven = SIMD16(lowHalf: a.evenHalf, highHalf: b.evenHalf), abOdd = SIMD16(lowHalf: a.oddHalf, highHalf: b.oddHalf)
        let cdEven = SIMD16(lowHalf: c.evenHalf, highHalf: d.evenHalf), cdOdd = SIMD16(lowHalf: c.oddHalf, highHalf: d.oddHalf)
        return (abEven.evenHalf, abOdd.evenHalf, abEven.oddHalf, abOdd.oddHalf, cdEven.evenHalf, cdOdd.evenHalf)
    }

    /// B^T applied to six values (one row or column of a patch).
    @inline(__always)
    static func inputTransform(_ d0: SIMD8<Float>, _ d1: SIMD8<Float>, _ d2: SIMD8<Float>, _ d3: SIMD8<Float>,
                               _ d4: SIMD8<Float>, _ d5: SIMD8<Float>)
        -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let four = SIMD8<Float>(repeating: 4), five = SIMD8<Float>(repeating: 5)
        let p = d4 - four * d2, q = d3 - four * d1
        let r = d4 - d2, s = (d3 - d1) * 2
        return (four * d0 - five * d2 + d4, p + q, p - q, r + s, r - s, four * d1 - five * d3 + d5)
    }

    /// V[6a + k][i][tile] = (B^T d B)[a][k] for every input channel i and tile of the block's
    /// lane groups (group u: tile row u / rowGroups, tiles 8·(u % rowGroups) + 0..<8).
    static func transformInput(_ input: FeatureMap, scale: UnsafePointer<Float>?, v: UnsafeMutablePointer<Float>, groups units: Range<Int>,
                               geometry g: Geometry, scratch: UnsafeMutablePointer<Float>) {
        let lineCount = lineFloats(rowGroups: g.rowGroups)
        let lines = scratch, rows = UnsafeMutableRawPointer(scratch + 6 * lineCount)
        lines.initialize(repeating: 0, count: 6 * lineCount)   // the padding stays zero
        let planeStride = g.cin * g.n * 4   // bytes between ξ in V
        let firstRow = max(0, 4 * (units.lowerBound / g.rowGroups) - 1)
        let lastRow = min(g.height, 4 * ((units.upperBound - 1) / g.rowGroups) + 5)
        for i in 0..<g.cin {
            let channel = input.channel(i)
            // The next channel's rows of this block: short runs in another plane, which the
            // hardware prefetcher does not pick up before they are read (the reads missed the
            // cache on most rows).
            if i + 1 < g.cin {
                let next = UnsafeRawPointer(input.channel(i + 1) + firstRow * g.width)
                for offset in stride(from: 0, to: (lastRow - firstRow) * g.width * 4, by: 64) {
                    semfuse_prefetch_for_read(next + offset)
                }
            }
            var loadedRow = -1
            for u in units {
                let ty = u / g.rowGroups, group = u % g.rowGroups
                if ty != loadedRow {
                    // The tile row's six patch rows, zero-padded (rows outside stay as they were
                    // only when inside; outside rows are zeroed).
                    for r in 0..<6 {
                        let y = 4 * ty - 1 + r
                        let line = lines + r * lineCount
                        if y >= 0 && y < g.height {
                            if let scale {
                                scaleReLU6(channel + y * g.width, by: scale[i], into: line + 1, count: g.width)
                            } else {
                                (line + 1).update(from: channel + y * g.width, count: g.width)
                            }
                        } else {
                            (line + 1).update(repeating: 0, count: g.width)
                        }
                    }
                    loadedRow = ty
                }
                // Row pass: rows[6r + k] = Σ_c B^T[k][c] d[r][c] for the six patch rows.
                for r in 0..<6 {
                    let d = patchRow(UnsafeRawPointer(lines + r * lineCount + 32 * group))
                    let o = inputTransform(d.0, d.1, d.2, d.3, d.4, d.5)
                    let at = 6 * r * 32
                    rows.storeBytes(of: o.0, toByteOffset: at, as: SIMD8<Float>.self)
                    rows.storeBytes(of: o.1, toByteOffset: at + 32, as: SIMD8<Float>.self)
                    rows.storeBytes(of: o.2, toByteOffset: at + 64, as: SIMD8<Float>.self)
                    rows.storeBytes(of: o.3, toByteOffset: at + 96, as: SIMD8<Float>.self)
                    rows.storeBytes(of: o.4, toByteOffset: at + 128, as: SIMD8<Float>.self)
                    rows.storeBytes(of: o.5, toByteOffset: at + 160, as: SIMD8<Float>.self)
                }
                @inline(__always) func row(_ index: Int) -> SIMD8<Float> {
                    rows.loadUnaligned(fromByteOffset: index * 32, as: SIMD8<Float>.self)
                }
                // Column pass, stored as V[6a + k][i][tile].
                let out = UnsafeMutableRawPointer(v + i * g.n + 8 * (u - units.lowerBound))
                let step = 6 * planeStride
                for k in 0..<6 {
                    let o = inputTransform(row(k), row(6 + k), row(12 + k), row(18 + k), row(24 + k), row(30 + k))
                    let at = k * planeStride
                    out.storeBytes(of: o.0, toByteOffset: at, as: SIMD8<Float>.self)
                    out.storeBytes(of: o.1, toByteOffset: at + step, as: SIMD8<Float>.self)
                    out.storeBytes(of: o.2, toByteOffset: at + 2 * step, as: SIMD8<Float>.self)
                    out.storeBytes(of: o.3, toByteOffset: at + 3 * step, as: SIMD8<Float>.self)
                    out.storeBytes(of: o.4, toByteOffset: at + 4 * step, as: SIMD8<Float>.self)
                    out.storeBytes(of: o.5, toByteOffset: at + 5 * step, as: SIMD8<Float>.self)
                }
            }
        }
    }

    /// A^T applied to six values.
    @inline(__always)
    static func outputTransform(_ m0: SIMD8<Float>, _ m1: SIMD8<Float>, _ m2: SIMD8<Float>, _ m3: SIMD8<Float>,
                                _ m4: SIMD8<Float>, _ m5: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4
        return (m0 + a + c, b + d * 2, a + c * 4, b + d * 8 + m5)
    }

    static func transformOutput(_ m: UnsafeMutablePointer<Float>, into output: FeatureMap, bias: UnsafePointer<Float>,
                                groups units: Range<Int>, geometry g: Geometry) {
        typealias Six = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)
        let planeStride = g.cout * g.n
        let zero = SIMD8<Float>()
        for o in 0..<g.cout {
            let dst = output.channel(o)
            let b = bias[o]
            for u in units {
                let ty = u / g.rowGroups, firstTile = 8 * (u % g.rowGroups)
                let src = UnsafeRawPointer(m + o * g.n + 8 * (u - units.lowerBound))
                @inline(__always) func load(_ xi: Int) -> SIMD8<Float> {
                    src.loadUnaligned(fromByteOffset: xi * planeStride * 4, as: SIMD8<Float>.self)
                }
                @inline(__always) func columnPass(_ k: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
                    outputTransform(load(k), load(6 + k), load(12 + k), load(18 + k), load(24 + k), load(30 + k))
                }
                // Column pass: s_j[k] = Σ_a A^T[j][a] M[6a + k], then the row pass per output row.
                var s0: Six = (zero, zero, zero, zero, zero, zero), s1 = s0, s2 = s0, s3 = s0
                var c = columnPass(0); s0.0 = c.0; s1.0 = c.1; s2.0 = c.2; s3.0 = c.3
                c = columnPass(1); s0.1 = c.0; s1.1 = c.1; s2.1 = c.2; s3.1 = c.3
                c = columnPass(2); s0.2 = c.0; s1.2 = c.1; s2.2 = c.2; s3.2 = c.3
                c = columnPass(3); s0.3 = c.0; s1.3 = c.1; s2.3 = c.2; s3.3 = c.3
                c = columnPass(4); s0.4 = c.0; s1.4 = c.1; s2.4 = c.2; s3.4 = c.3
                c = columnPass(5); s0.5 = c.0; s1.5 = c.1; s2.5 = c.2; s3.5 = c.3
                let lanes = min(8, g.tilesX - firstTile)
                @inline(__always) func emit(_ j: Int, _ sj: Six) {
                    let y = 4 * ty + j
                    guard y < g.height else { return }
                    let r = outputTransform(sj.0, sj.1, sj.2, sj.3, sj.4, sj.5)
                    let line = dst + y * g.width
                    for lane in 0..<lanes {
                        let x = 4 * (firstTile + lane)
                        let inside = g.width - x
                        line[x] = r.0[lane] + b
                        if inside > 1 { line[x + 1] = r.1[lane] + b }
                        if inside > 2 { line[x + 2] = r.2[lane] + b }
                        if inside > 3 { line[x + 3] = r.3[lane] + b }
                    }
                }
                emit(0, s0); emit(1, s1); emit(2, s2); emit(3, s3)
            }
        }
    }
}
