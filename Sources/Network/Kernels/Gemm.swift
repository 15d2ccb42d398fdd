import CBLAS

/// The one BLAS entry point: `C[M,N] = A[M,K] · B[K,N] + beta·C`, all row-major. A 1x1
/// convolution over a CHW map is exactly this with A = weights [cout, cin] and B = the map.
@inline(__always)
func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
          c: UnsafeMutablePointer<Float>, beta: Float = 0) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                1, a, Int32(k), b, Int32(n), beta, c, Int32(n))
}

/// Threads OpenBLAS may use for the next GEMMs.
func setBLASThreads(_ threads: Int) {
    openblas_set_num_threads(Int32(max(1, threads)))
}
