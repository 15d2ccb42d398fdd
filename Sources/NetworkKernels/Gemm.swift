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
package func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
          c: UnsafeMutablePointer<Float>, beta: Float = 0, threads: Int = 1) {
    // Below ~2 M multiply-adds a second thread costs more than it saves.
    let workers = m * n * k >= (1 << 21) && n >= 64 ? max(1, min(threads, n / 32)) : 1
    if workers == 1 {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    1, a, Int32(k), b, Int32(n), beta, c, Int32(n))
        return
    }
    KernelThreads.shared.run(workers) { w in
        // Block edges on multiples of 16 columns keep each block's rows vector-aligned.
        let start = (n * w / workers) & ~15, end = w == workers - 1 ? n : (n * (w + 1) / workers) & ~15
        guard start < end else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(end - start), Int32(k),
                    1, a, Int32(k), b + start, Int32(n), beta, c + start, Int32(n))
    }
}

/// Keeps OpenBLAS single-threaded (see `gemm`).
package func configureBLAS() {
    openblas_set_num_threads(1)
}

/// A 1x1 convolution with its epilogue (folded BatchNorm bias, optional residual, optional
/// ReLU6): `pointwiseConvolution` with ReLU6 as its clamp, or with `quantised` weights the int8
/// GEMM with the same epilogue as it stores.
package func convolution1x1(_ input: FeatureMap, into output: FeatureMap, weights: UnsafePointer<Float>,
                    bias: UnsafePointer<Float>?, residual: FeatureMap? = nil, relu6: Bool, threads: Int,
                    quantised: QuantisedWeights? = nil, workspace: Workspace? = nil) {
    let clamp: Clamp = relu6 ? .relu6 : .none
    guard let quantised, let workspace else {
        pointwiseConvolution(input, into: output, weights: weights, bias: bias, clamp: clamp, residual: residual, threads: threads)
        return
    }
    precondition(quantised.rows == output.channels && quantised.columns == input.channels)
    int8Gemm(weights: quantised, n: input.plane, b: input.base, ldb: input.plane, c: output.base, ldc: output.plane,
             threads: threads, workspace: workspace, bias: bias, residual: residual.map { UnsafePointer($0.base) },
             residualStride: input.plane, clamp: clamp)
}
