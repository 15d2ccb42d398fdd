/// 5x5 max-pooling with stride 1 and padding 2, padded with −inf as PyTorch does, so the window
/// is simply clipped at the borders (CRP stages after the first see signed values, so zero padding
/// would be wrong). Separable, two output rows at a time: the vertical maxima of the rows both
/// windows share (y − 1 … y + 2) are taken once and finished with row y − 2 for the first and
/// row y + 3 for the second, into two −inf-bordered lines, then each line's horizontal maxima
/// go to the output. No intermediate plane: the work stays in L1 next to the input rows.
/// `rowBuffer` holds `2 * (width + 16)` floats.
@inline(__always)
package func maxPool5x5(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, height: Int, width: Int,
                        rowBuffer: UnsafeMutablePointer<Float>) {
    let ninf = -Float.infinity, lineStride = width + 16
    for line in 0..<2 {
        let l = rowBuffer + line * lineStride
        l[0] = ninf; l[1] = ninf
        for i in 0..<12 { l[width + 2 + i] = ninf }
    }
    let first = rowBuffer + 2, second = rowBuffer + lineStride + 2
    var y = 0
    while y < height {
        let pair = y + 1 < height
        let s0 = max(0, y - 1), s1 = min(height - 1, y + 2)
        let above: UnsafePointer<Float>? = y >= 2 ? src + (y - 2) * width : nil
        let below: UnsafePointer<Float>? = pair && y + 3 < height ? src + (y + 3) * width : nil
        var x = 0
        while x + 8 <= width {
            var m = load8(src + s0 * width + x)
            var r = s0 + 1
            while r <= s1 { m = vmax(m, load8(src + r * width + x)); r += 1 }
            store8(above.map { vmax(m, load8($0 + x)) } ?? m, first + x)
            if pair { store8(below.map { vmax(m, load8($0 + x)) } ?? m, second + x) }
            x += 8
        }
        while x < width {
            var m = src[s0 * width + x]
            var r = s0 + 1
            while r <= s1 { m = max(m, src[r * width + x]); r += 1 }
            first[x] = above.map { max(m, $0[x]) } ?? m
            if pair { second[x] = below.map { max(m, $0[x]) } ?? m }
            x += 1
        }
        maxPool5Horizontal(first - 2, into: dst + y * width, width: width)
        if pair { maxPool5Horizontal(second - 2, into: dst + (y + 1) * width, width: width) }
        y += 2
    }
}

/// `out[x] = max(line[x ... x + 4])`: a −inf-bordered line (two before, twelve after) to one
/// output row.
@inline(__always)
private func maxPool5Horizontal(_ line: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>, width: Int) {
    var x = 0
    while x + 8 <= width {
        let m = vmax(vmax(load8(line + x), load8(line + x + 1)), vmax(vmax(load8(line + x + 2), load8(line + x + 3)), load8(line + x + 4)))
        store8(m, out + x)
        x += 8
    }
    while x < width {
        out[x] = max(max(line[x], line[x + 1]), max(max(line[x + 2], line[x + 3]), line[x + 4]))
        x += 1
    }
}

/// How a pooling pass also folds the previous CRP stage into the running sum, saving one
/// pass over memory per stage.
package enum Accumulate { case copy, add }

/// `pooled[c] = maxpool(src[c])`, and `acc[c] = src[c]` (first stage) or `acc[c] += src[c]`:
/// the pooling half of a dense CRP stage fused with the residual sum of the stage before.
package func maxPoolAccumulating(_ src: FeatureMap, into pooled: FeatureMap, accumulator: FeatureMap, mode: Accumulate,
                         workspace: Workspace, threads: Int) {
    let h = src.height, w = src.width
    let workers = max(1, min(threads, src.channels))
    let perWorker = 2 * (w + 16)
    let scratch = workspace.floats("maxpool.scratch", count: perWorker * workers)
    parallelRanges(src.channels, threads: workers) { worker, channels in
        let rowBuffer = scratch + worker * perWorker
        for c in channels {
            maxPool5x5(src.channel(c), into: pooled.channel(c), height: h, width: w, rowBuffer: rowBuffer)
            switch mode {
            case .copy: accumulator.channel(c).update(from: src.channel(c), count: src.plane)
            case .add: addInPlace(accumulator.channel(c), src.channel(c), src.plane)
            }
        }
    }
}

/// The whole depthwise CRP block (crp1) channel by channel, since a depthwise stage never mixes
/// channels: `acc = x; b = x; 4×: b = w_i[c]·maxpool(b); acc += b`. Each channel's planes stay in
/// cache for all four stages.
/// `stageWeights` holds `stages` blocks of one scale per channel.
package func depthwiseCRP(_ input: FeatureMap, into output: FeatureMap, stageWeights: UnsafePointer<Float>, stages: Int,
                  workspace: Workspace, threads: Int) {
    let h = input.height, w = input.width, plane = input.plane
    let workers = max(1, min(threads, input.channels))
    let perWorker = 2 * (w + 16) + 2 * (plane + 8)
    let scratch = workspace.floats("crp.depthwise.scratch", count: perWorker * workers)
    parallelRanges(input.channels, threads: workers) { worker, channels in
        let rowBuffer = scratch + worker * perWorker
        let pooled = rowBuffer + 2 * (w + 16)
        let branch = pooled + (plane + 8)
        for c in channels {
            let acc = output.channel(c)
            acc.update(from: input.channel(c), count: plane)
            var source = UnsafePointer(input.channel(c))
            for stage in 0..<stages {
                maxPool5x5(source, into: pooled, height: h, width: w, rowBuffer: rowBuffer)
                let s = stageWeights[stage * input.channels + c], sv = F8(repeating: s)
                var i = 0
                while i + 8 <= plane {
                    let v = load8(pooled + i) * sv
                    store8(v, branch + i)
                    store8(load8(acc + i) + v, acc + i)
                    i += 8
                }
                while i < plane { let v = pooled[i] * s; branch[i] = v; acc[i] += v; i += 1 }
                source = UnsafePointer(branch)
            }
        }
    }
}
