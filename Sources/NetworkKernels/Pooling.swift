/// 5x5 max-pooling with stride 1 and padding 2, padded with −inf as PyTorch does, so the window
/// is simply clipped at the borders (CRP stages after the first see signed values, so zero padding
/// would be wrong). Separable: a horizontal pass into `rows`, then a vertical pass.
/// `rowBuffer` holds `width + 16` floats, `rows` `height * width + 8`.
@inline(__always)
package func maxPool5x5(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, height: Int, width: Int,
                rowBuffer: UnsafeMutablePointer<Float>, rows: UnsafeMutablePointer<Float>) {
    let ninf = -Float.infinity
    rowBuffer[0] = ninf; rowBuffer[1] = ninf
    for i in 0..<12 { rowBuffer[width + 2 + i] = ninf }
    for y in 0..<height {
        (rowBuffer + 2).update(from: src + y * width, count: width)
        let out = rows + y * width
        var x = 0
        while x + 8 <= width {
            let m = vmax(vmax(load8(rowBuffer + x), load8(rowBuffer + x + 1)),
                                 vmax(vmax(load8(rowBuffer + x + 2), load8(rowBuffer + x + 3)), load8(rowBuffer + x + 4)))
            store8(m, out + x)
            x += 8
        }
        while x < width {
            out[x] = max(max(rowBuffer[x], rowBuffer[x + 1]), max(max(rowBuffer[x + 2], rowBuffer[x + 3]), rowBuffer[x + 4]))
            x += 1
        }
    }
    for y in 0..<height {
        let y0 = max(0, y - 2), y1 = min(height - 1, y + 2)
        let out = dst + y * width
        var x = 0
        while x + 8 <= width {
            var m = load8(rows + y0 * width + x)
            var yy = y0 + 1
            while yy <= y1 { m = vmax(m, load8(rows + yy * width + x)); yy += 1 }
            store8(m, out + x)
            x += 8
        }
        while x < width {
            var m = rows[y0 * width + x]
            var yy = y0 + 1
            while yy <= y1 { m = max(m, rows[yy * width + x]); yy += 1 }
            out[x] = m
            x += 1
        }
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
    let perWorker = (w + 16) + (h * w + 8)
    let scratch = workspace.floats("maxpool.scratch", count: perWorker * workers)
    parallelRanges(src.channels, threads: workers) { worker, channels in
        let rowBuffer = scratch + worker * perWorker, rows = rowBuffer + (w + 16)
        for c in channels {
            maxPool5x5(src.channel(c), into: pooled.channel(c), height: h, width: w, rowBuffer: rowBuffer, rows: rows)
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
    let perWorker = (w + 16) + 3 * (plane + 8)
    let scratch = workspace.floats("crp.depthwise.scratch", count: perWorker * workers)
    parallelRanges(input.channels, threads: workers) { worker, channels in
        let rowBuffer = scratch + worker * perWorker
        let rows = rowBuffer + (w + 16)
        let pooled = rows + (plane + 8)
        let branch = pooled + (plane + 8)
        for c in channels {
            let acc = output.channel(c)
            acc.update(from: input.channel(c), count: plane)
            var source = UnsafePointer(input.channel(c))
            for stage in 0..<stages {
                maxPool5x5(source, into: pooled, height: h, width: w, rowBuffer: rowBuffer, rows: rows)
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
