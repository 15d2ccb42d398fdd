import CBLAS
import Foundation

/// The one BLAS entry point: `C[M,N] = A[M,K] · B[K,N] + beta·C`, all row-major. A 1x1
/// convolution over a CHW map is exactly this with A = weights [cout, cin] and B = the map.
///
/// OpenBLAS itself runs single-threaded; with `threads > 1` the columns (pixels) are split into
/// contiguous blocks, one single-threaded GEMM each. OpenBLAS's own worker threads spin-wait
/// after every call and starved the network's other parallel kernels on two cores (they ran no
/// faster with 2 threads than with 1); splitting ourselves also keeps small layers on one thread.
@inline(__always)
func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
          c: UnsafeMutablePointer<Float>, beta: Float = 0, threads: Int = 1) {
    // Below ~2 M multiply-adds a second thread costs more than it saves.
    let workers = m * n * k >= (1 << 21) && n >= 64 ? max(1, min(threads, n / 32)) : 1
    if workers == 1 {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    1, a, Int32(k), b, Int32(n), beta, c, Int32(n))
        return
    }
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        // Block edges on multiples of 16 columns keep each block's rows vector-aligned.
        let start = (n * w / workers) & ~15, end = w == workers - 1 ? n : (n * (w + 1) / workers) & ~15
        guard start < end else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(end - start), Int32(k),
                    1, a, Int32(k), b + start, Int32(n), beta, c + start, Int32(n))
    }
}

/// Keeps OpenBLAS single-threaded (see `gemm`).
func configureBLAS() {
    openblas_set_num_threads(1)
}

/// A 1x1 convolution with its epilogue (folded BatchNorm bias, optional residual, optional
/// ReLU6) applied block by block: the pixels are cut into column blocks small enough that a
/// block's outputs are still in cache when the epilogue touches them, instead of a second full
/// pass over a map that can be 30 MB at 1/2 resolution. Blocks are spread over the threads.
/// Meant for the encoder's thin layers: with 256x256 weights (decoder) re-packing A per block
/// costs more than the cache saves, so those use `gemm`.
func convolution1x1(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>,
                    bias: UnsafePointer<Float>?, residual: FeatureMap? = nil, relu6: Bool, threads: Int) {
    let m = output.channels, n = input.plane, k = input.channels
    // ~192 KB of outputs per block (half of a Zen3 L2), in multiples of 64 columns.
    let parallel = m * n * k >= (1 << 20) && threads > 1
    let target = max(256, (48 * 1024 / max(m, 1)) & ~63)
    // A multiple of the thread count of equal blocks (multiples of 16 columns), so small maps
    // (1/16, 1/32 resolution) still split evenly instead of into one big and one tiny block.
    var blocks = max(1, (n + target - 1) / target)
    if parallel { blocks = (blocks + threads - 1) / threads * threads }
    let columnsPerBlock = max(16, ((n + blocks - 1) / blocks + 15) & ~15)
    blocks = (n + columnsPerBlock - 1) / columnsPerBlock
    let workers = parallel ? max(1, min(threads, blocks)) : 1
    parallelRanges(blocks, threads: workers) { _, range in
        for block in range {
            let start = block * columnsPerBlock, end = min(n, start + columnsPerBlock), count = end - start
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(count), Int32(k),
                        1, weights, Int32(k), input.base + start, Int32(n), 0, output.base + start, Int32(n))
            guard bias != nil || residual != nil || relu6 else { continue }
            for c in 0..<m {
                biasEpilogue(output.channel(c) + start, count: count, bias: bias?[c] ?? 0,
                             residual: residual.map { $0.channel(c) + start }, relu6: relu6)
            }
        }
    }
}
