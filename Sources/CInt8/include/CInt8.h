#ifndef SEMFUSE_CINT8_H
#define SEMFUSE_CINT8_H
#include <stdint.h>

/* Int8 GEMM for quantised convolutions, int32 sums:
     C[i][j] = Σ_k scale[i]·(A[i][k] − a_zero[i]) · sb[j]·(q[k][j] − zb[j])
             = row_scale[i] · sb[j] · (Σ_k A[i][k]·B[k][j] − a_zero[i]·colsum[j] + row_offset[i]·(128 − zb[j]))
   A: unsigned 8-bit weights, one row per output channel, rows lda bytes apart, K padded to a
   multiple of 4 with zeros; row_scale[i] = scale[i] and row_offset[i] = Σ_k (A[i][k] − a_zero[i]).
   B: the activations, quantised per column (pixel) j by `semfuse_s8_pack`: q = round(x / sb[j]) +
   zb[j] in 0...255 over the column's own range, stored as B = q − 128 (signed), with
   colsum[j] = Σ_k B[k][j]. A per-column grid factors out of the sum over k, so each pixel's
   channel vector gets all 256 steps of its own range.

   The packed block is [K/4][npad][4] bytes (four consecutive k of one column together, npad =
   columns rounded up to 16: the operand layout of VNNI's u8×s8 dot product), then per column
   its sum, 128 − zb (int32) and sb (float). The AVX-512 VNNI kernels are chosen at run time when
   this CPU and OS support them; otherwise portable kernels compute the same numbers (integer
   arithmetic is exact, the float steps are the same operations in the same order). */

/* 1 when this CPU can run the AVX-512 VNNI kernels (AVX-512 F/BW/VL/VNNI and OS-saved ZMM state).
   They run unless the environment has SEMFUSE_INT8_PORTABLE=1 (to try the portable kernels). */
int semfuse_int8_vnni_available(void);

/* Bytes of the packed block (values and per-column data) for k rows and n columns. */
long semfuse_s8_packed_bytes(long k, long n);
/* Bytes of the buffer `semfuse_s8_pack` needs: the packed block and its scratch after it. */
long semfuse_s8_block_bytes(long k, long n);
/* Quantises B[0..k)[0..n) (row stride ldb) column by column and packs it (see above): each column's
   grid spans [min(0, lo), max(0, hi)] of its finite values in 255 steps; q = round(clamp(x / sb + zb,
   0, 255)), ties to even, NaN as 0. Padding rows and columns are 0. `packed` must hold
   semfuse_s8_block_bytes(k, n) bytes. */
void semfuse_s8_pack(const float *b, long k, long n, long ldb, uint8_t *packed, int force_portable);

/* What is applied to each result as it is stored: + bias[i] (if bias), + residual[i·ldr + j]
   (if residual; indexed like C), then clamped to [lo, hi] (NaN to lo). Row and column indices
   are those of this call's C. */
typedef struct {
    const float *bias;
    const float *residual;
    long ldr;
    float lo, hi;
} semfuse_epilogue;

/* C (row stride ldc) for m rows and n columns from A and a block packed for these k and n; with
   `accumulate`, C + that; then `epilogue` if it is not null. `force_portable` selects the
   portable kernels even where VNNI runs (tests compare the two). */
void semfuse_u8s8_gemm(long m, long n, long k, const uint8_t *a, long lda, const int32_t *a_zero,
                       const float *row_scale, const int32_t *row_offset, const uint8_t *packed,
                       float *c, long ldc, int accumulate, const semfuse_epilogue *epilogue, int force_portable);
#endif
