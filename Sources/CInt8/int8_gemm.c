#include "CInt8.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif
/* Both kernels compute x·inv + zp as a multiply then an add: no fused multiply-add in one of them. */
#pragma STDC FP_CONTRACT OFF

int semfuse_int8_vnni_available(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;          /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;   /* SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM state saved */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned f = 1u << 16, bw = 1u << 30, vl = 1u << 31, vnni = 1u << 11;
    return (b & f) && (b & bw) && (b & vl) && (c & vnni);
#else
    return 0;
#endif
}

static int vnni_here(void) {
    /* CPUID traps to the hypervisor in a VM: ask once (a benign race, every thread stores the same
       value). SEMFUSE_INT8_PORTABLE=1 runs the portable kernels anyway, to try a CPU without VNNI. */
    static int vnni = -1;
    int known = __atomic_load_n(&vnni, __ATOMIC_RELAXED);
    if (known < 0) {
        const char *force = getenv("SEMFUSE_INT8_PORTABLE");
        known = force && strcmp(force, "1") == 0 ? 0 : semfuse_int8_vnni_available();
        __atomic_store_n(&vnni, known, __ATOMIC_RELAXED);
    }
    return known;
}

static long pad16(long n) { return (n + 15) & ~15L; }

/* After the values: per column its sum (int32), 128 − zero point (int32) and scale (float). */
long semfuse_s8_packed_bytes(long k, long n) { return ((k + 3) / 4) * pad16(n) * 4 + 3 * pad16(n) * 4; }

/* The block buffer: the packed block, then two float arrays of npad the VNNI pack uses as scratch. */
long semfuse_s8_block_bytes(long k, long n) { return semfuse_s8_packed_bytes(k, n) + 2 * pad16(n) * 4; }

static int32_t *colsum_of(uint8_t *packed, long k, long npad) { return (int32_t *)(void *)(packed + ((k + 3) / 4) * npad * 4); }
static int32_t *colzero_of(uint8_t *packed, long k, long npad) { return colsum_of(packed, k, npad) + npad; }
static float *colscale_of(uint8_t *packed, long k, long npad) { return (float *)(void *)(colsum_of(packed, k, npad) + 2 * npad); }

/* ---- portable kernels ----
   Plain C. On x86-64 they are compiled for AVX2 (x86-64-v3, which every semfuse kernel needs:
   KernelCPU checks it before any network runs), so the compiler can vectorise them. */
#if defined(__x86_64__)
#define PORTABLE __attribute__((target("avx2,fma,bmi,bmi2,f16c,lzcnt,movbe,popcnt")))
#else
#define PORTABLE
#endif

static PORTABLE int32_t quantise(float x, float inv, float offset) {
    float y = x * inv;
    y = y + offset;
    /* fmaxf(NaN, 0) is 0; the clamp keeps the conversion defined. */
    return (int32_t)nearbyintf(fminf(fmaxf(y, 0.0f), 255.0f));
}

/* Column j's grid: asymmetric over [min(0, lo), max(0, hi)] of its finite values, 255 steps. */
static PORTABLE void column_grid(float lo, float hi, float *scale, float *inv, int32_t *zp) {
    lo = lo < 0 ? lo : 0; hi = hi > 0 ? hi : 0;
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    float z = nearbyintf(-lo / s);
    *scale = s; *inv = 1.0f / s; *zp = (int32_t)(z < 0 ? 0 : z > 255 ? 255 : z);
}

static PORTABLE void pack_portable(const float *b, long k, long n, long ldb, uint8_t *packed) {
    const long groups = (k + 3) / 4, npad = pad16(n);
    int32_t *colsum = colsum_of(packed, k, npad), *colzero = colzero_of(packed, k, npad);
    float *colscale = colscale_of(packed, k, npad);
    for (long j = 0; j < npad; j++) {
        float lo = INFINITY, hi = -INFINITY;
        for (long r = 0; j < n && r < k; r++) {
            float x = b[r * ldb + j];
            if (x - x == 0) { lo = x < lo ? x : lo; hi = x > hi ? x : hi; }   /* finite only */
        }
        float scale, inv; int32_t zp;
        column_grid(lo, hi, &scale, &inv, &zp);
        int32_t sum = 0;
        for (long g = 0; g < groups; g++) {
            for (int t = 0; t < 4; t++) {
                long r = 4 * g + t;
                int32_t v = r < k && j < n ? quantise(b[r * ldb + j], inv, (float)zp) - 128 : 0;
                ((int8_t *)packed)[(g * npad + j) * 4 + t] = (int8_t)v;
                sum += v;
            }
        }
        colsum[j] = sum; colzero[j] = j < n ? 128 - zp : 0; colscale[j] = j < n ? scale : 0;
    }
}

static PORTABLE void gemm_portable(long m, long n, long k, const uint8_t *a, long lda, const int32_t *a_zero,
                          const float *row_scale, const int32_t *row_offset, const uint8_t *packed,
                          float *c, long ldc, int accumulate, const semfuse_epilogue *e) {
    const long groups = (k + 3) / 4, npad = pad16(n);
    const int32_t *colsum = colsum_of((uint8_t *)packed, k, npad), *colzero = colzero_of((uint8_t *)packed, k, npad);
    const float *colscale = colscale_of((uint8_t *)packed, k, npad);
    enum { CHUNK = 256 };
    uint32_t acc[CHUNK];   /* wraps like the vector lanes; the final value fits (see the header) */
    for (long i = 0; i < m; i++) {
        const uint8_t *row = a + i * lda;
        for (long j0 = 0; j0 < n; j0 += CHUNK) {
            const long count = n - j0 < CHUNK ? n - j0 : CHUNK;
            for (long j = 0; j < count; j++) acc[j] = 0;
            /* Columns innermost: contiguous bytes, so the compiler can vectorise. */
            for (long g = 0; g < groups; g++) {
                const int32_t w0 = row[4 * g], w1 = row[4 * g + 1], w2 = row[4 * g + 2], w3 = row[4 * g + 3];
                const int8_t *q = (const int8_t *)(packed + (g * npad + j0) * 4);
                for (long j = 0; j < count; j++) {
                    acc[j] += (uint32_t)(w0 * q[4 * j] + w1 * q[4 * j + 1] + w2 * q[4 * j + 2] + w3 * q[4 * j + 3]);
                }
            }
            for (long j = 0; j < count; j++) {
                const long col = j0 + j;
                uint32_t t = acc[j] - (uint32_t)a_zero[i] * (uint32_t)colsum[col] + (uint32_t)row_offset[i] * (uint32_t)colzero[col];
                float f = (float)(int32_t)t * colscale[col] * row_scale[i];
                if (accumulate) f = c[i * ldc + col] + f;
                if (e) {
                    f = f + (e->bias ? e->bias[i] : 0.0f);
                    if (e->residual) f = f + e->residual[i * e->ldr + col];
                    f = fminf(fmaxf(f, e->lo), e->hi);   /* fmaxf(NaN, lo) is lo, as the vector max */
                }
                c[i * ldc + col] = f;
            }
        }
    }
}

/* ---- AVX-512 VNNI kernels ---- */
#if defined(__x86_64__)
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

/* Two passes over the block's rows in memory order (a few streams the prefetcher follows, rather
   than all k rows per sixteen columns): the column ranges, then the quantised values. The
   per-column arrays serve as scratch for the ranges (lo in the scales, hi in the sums). */
static VNNI void pack_vnni(const float *b, long k, long n, long ldb, uint8_t *packed, float *scratch) {
    const long groups = (k + 3) / 4, npad = pad16(n);
    int32_t *colsum = colsum_of(packed, k, npad), *colzero = colzero_of(packed, k, npad);
    float *colscale = colscale_of(packed, k, npad), *hi_of = (float *)(void *)colsum;
    const __m512 inf = _mm512_set1_ps(INFINITY), zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
    const __m512 steps = _mm512_set1_ps(255.0f), one = _mm512_set1_ps(1.0f);
    const __m512i bias = _mm512_set1_epi32(128), low = _mm512_set1_epi32(0xFF);
#define COLUMNS_IN(j) (n - (j) >= 16 ? (__mmask16)0xFFFF : (n > (j) ? (__mmask16)((1u << (n - (j))) - 1) : (__mmask16)0))
    for (long j = 0; j < npad; j += 16) { _mm512_storeu_ps(colscale + j, zero); _mm512_storeu_ps(hi_of + j, zero); }
    for (long r0 = 0; r0 < k; r0 += 4) {   /* four rows per update of the ranges */
        const long rows = k - r0 < 4 ? k - r0 : 4;
        for (long j = 0; j < npad; j += 16) {
            __mmask16 in = COLUMNS_IN(j);
            __m512 lo = _mm512_loadu_ps(colscale + j), hi = _mm512_loadu_ps(hi_of + j);
            for (long t = 0; t < rows; t++) {
                __m512 x = _mm512_maskz_loadu_ps(in, b + (r0 + t) * ldb + j);
                __mmask16 finite = _mm512_mask_cmp_ps_mask(in, _mm512_abs_ps(x), inf, _CMP_LT_OQ);
                lo = _mm512_mask_min_ps(lo, finite, lo, x);
                hi = _mm512_mask_max_ps(hi, finite, hi, x);
            }
            _mm512_storeu_ps(colscale + j, lo);
            _mm512_storeu_ps(hi_of + j, hi);
        }
    }
    /* The column grids (column_grid, sixteen at a time, same operations). */
    for (long j = 0; j < npad; j += 16) {
        __mmask16 in = COLUMNS_IN(j);
        __m512 lo = _mm512_loadu_ps(colscale + j), hi = _mm512_loadu_ps(hi_of + j);
        __mmask16 wide = _mm512_cmp_ps_mask(hi, lo, _CMP_GT_OQ);
        __m512 scale = _mm512_mask_div_ps(one, wide, _mm512_sub_ps(hi, lo), steps);
        __m512 z = _mm512_roundscale_ps(_mm512_div_ps(_mm512_sub_ps(zero, lo), scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        z = _mm512_min_ps(_mm512_max_ps(z, zero), top);
        _mm512_storeu_si512((void *)(colzero + j), _mm512_maskz_sub_epi32(in, bias, _mm512_cvtps_epi32(z)));
        _mm512_storeu_ps(colscale + j, _mm512_maskz_mov_ps(in, scale));
        _mm512_storeu_si512((void *)(colsum + j), _mm512_setzero_si512());
    }
    /* Per column 1 / scale and the zero point as a float, for the quantisation pass. */
    float *inverse = scratch, *offsets = scratch + npad;
    for (long j = 0; j < npad; j += 16) {
        __mmask16 in = COLUMNS_IN(j);
        /* Padding columns have scale 0: their lanes are masked off below. */
        _mm512_storeu_ps(inverse + j, _mm512_mask_div_ps(one, in, one, _mm512_loadu_ps(colscale + j)));
        _mm512_storeu_ps(offsets + j, _mm512_cvtepi32_ps(_mm512_sub_epi32(bias, _mm512_loadu_si512((const void *)(colzero + j)))));
    }
    for (long g = 0; g < groups; g++) {
        for (long j = 0; j < npad; j += 16) {
            __mmask16 in = COLUMNS_IN(j);
            __m512 inv = _mm512_loadu_ps(inverse + j), offset = _mm512_loadu_ps(offsets + j);
            __m512i sum = _mm512_loadu_si512((const void *)(colsum + j));
            __m512i word = _mm512_setzero_si512();
            for (int t = 0; t < 4; t++) {
                long r = 4 * g + t;
                if (r >= k) break;
                __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(in, b + r * ldb + j), inv), offset);
                /* max(NaN, 0) is 0 (the second operand), as fmaxf's. */
                y = _mm512_min_ps(_mm512_max_ps(y, zero), top);
                __m512i q = _mm512_maskz_sub_epi32(in, _mm512_cvtps_epi32(y), bias);   /* nearest, ties to even */
                sum = _mm512_add_epi32(sum, q);
                word = _mm512_or_si512(word, _mm512_slli_epi32(_mm512_and_si512(q, low), 8 * t));
            }
            _mm512_storeu_si512((void *)(packed + (g * npad + j) * 4), word);
            _mm512_storeu_si512((void *)(colsum + j), sum);
        }
    }
#undef COLUMNS_IN
}

/* One tile of MR rows by NV·16 columns over all k; MR and NV are constants at every call, so the
   accumulators stay in registers. `mask` limits the stores of the last vector. */
static inline __attribute__((always_inline)) VNNI void
tile(const int MR, const int NV, long groups, const uint8_t *a, long lda, const uint8_t *b, long bstride,
     const int32_t *colsum, const int32_t *colzero, const float *colscale, const int32_t *a_zero,
     const float *row_scale, const int32_t *row_offset, float *c, long ldc, __mmask16 mask, int accumulate,
     const semfuse_epilogue *e, long row0, long col0) {
    __m512i acc[8][2];
    for (int r = 0; r < MR; r++) for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_si512();
    for (long g = 0; g < groups; g++) {
        const uint8_t *brow = b + g * bstride;
        __m512i bv[2];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_si512((const void *)(brow + 64 * v));
        for (int r = 0; r < MR; r++) {
            int32_t w;
            memcpy(&w, a + r * lda + 4 * g, 4);
            __m512i av = _mm512_set1_epi32(w);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
        }
    }
    __m512i sums[2], zeros[2];
    __m512 scales[2];
    for (int v = 0; v < NV; v++) {
        sums[v] = _mm512_loadu_si512((const void *)(colsum + 16 * v));
        zeros[v] = _mm512_loadu_si512((const void *)(colzero + 16 * v));
        scales[v] = _mm512_loadu_ps(colscale + 16 * v);
    }
    for (int r = 0; r < MR; r++) {
        __m512 s = _mm512_set1_ps(row_scale[r]);
        __m512i z = _mm512_set1_epi32(a_zero[r]), o = _mm512_set1_epi32(row_offset[r]);
        for (int v = 0; v < NV; v++) {
            __m512i t = _mm512_add_epi32(_mm512_sub_epi32(acc[r][v], _mm512_mullo_epi32(z, sums[v])), _mm512_mullo_epi32(o, zeros[v]));
            __m512 f = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(t), scales[v]), s);
            float *out = c + r * ldc + 16 * v;
            const __mmask16 lanes = v == NV - 1 ? mask : (__mmask16)0xFFFF;
            if (accumulate) f = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, out), f);
            if (e) {
                f = _mm512_add_ps(f, _mm512_set1_ps(e->bias ? e->bias[row0 + r] : 0.0f));
                if (e->residual) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(lanes, e->residual + (row0 + r) * e->ldr + col0 + 16 * v));
                f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(e->lo)), _mm512_set1_ps(e->hi));
            }
            if (v == NV - 1) _mm512_mask_storeu_ps(out, mask, f); else _mm512_storeu_ps(out, f);
        }
    }
}

/* Rows MR at a time over the columns [j0, j1), 32 at a time (16 at the end). */
static inline __attribute__((always_inline)) VNNI void
row_strip(const int MR, long i, long j0, long j1, long n, long groups, const uint8_t *a, long lda, const uint8_t *packed,
          long bstride, const int32_t *colsum, const int32_t *colzero, const float *colscale, const int32_t *a_zero,
          const float *row_scale, const int32_t *row_offset, float *c, long ldc, int accumulate, const semfuse_epilogue *e) {
    for (long j = j0; j < j1; j += 32) {
        const long left = n - j;
        const long last = left > 16 ? left - 16 : left;
        const __mmask16 mask = last >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << last) - 1);
#define ARGS groups, a + i * lda, lda, packed + j * 4, bstride, colsum + j, colzero + j, colscale + j, \
             a_zero + i, row_scale + i, row_offset + i, c + i * ldc + j, ldc, mask, accumulate, e, i, j
        if (left > 16) tile(MR, 2, ARGS); else tile(MR, 1, ARGS);
#undef ARGS
    }
}

/* Columns in chunks whose packed values fit in L1 (~24 KB); within a chunk, eight rows at a time
   across all its columns. Each row tile then stores into eight rows of C in sequence rather than
   hopping over every row of the layer for each 32 columns, which cost more than the arithmetic
   where K is small and C large (an expansion layer writing 25 MB). */
static VNNI void gemm_vnni(long m, long n, long k, const uint8_t *a, long lda, const int32_t *a_zero,
                           const float *row_scale, const int32_t *row_offset, const uint8_t *packed,
                           float *c, long ldc, int accumulate, const semfuse_epilogue *e) {
    const long groups = (k + 3) / 4, npad = pad16(n), bstride = npad * 4;
    const int32_t *colsum = colsum_of((uint8_t *)packed, k, npad), *colzero = colzero_of((uint8_t *)packed, k, npad);
    const float *colscale = colscale_of((uint8_t *)packed, k, npad);
    long chunk = (24 * 1024 / (groups * 4)) & ~31L;
    if (chunk < 32) chunk = 32;
    for (long j0 = 0; j0 < n; j0 += chunk) {
        const long j1 = n - j0 < chunk ? n : j0 + chunk;
        long i = 0;
#define STRIP(MR) row_strip(MR, i, j0, j1, n, groups, a, lda, packed, bstride, colsum, colzero, colscale, \
                            a_zero, row_scale, row_offset, c, ldc, accumulate, e)
        for (; i + 8 <= m; i += 8) STRIP(8);
        if (i + 4 <= m) { STRIP(4); i += 4; }
        if (i + 2 <= m) { STRIP(2); i += 2; }
        if (i < m) { STRIP(1); i += 1; }
#undef STRIP
    }
}
#endif

/* ---- dispatch ---- */

void semfuse_s8_pack(const float *b, long k, long n, long ldb, uint8_t *packed, int force_portable) {
#if defined(__x86_64__)
    if (vnni_here() && !force_portable) { pack_vnni(b, k, n, ldb, packed, (float *)(void *)(packed + semfuse_s8_packed_bytes(k, n))); return; }
#endif
    pack_portable(b, k, n, ldb, packed);
}

void semfuse_u8s8_gemm(long m, long n, long k, const uint8_t *a, long lda, const int32_t *a_zero,
                       const float *row_scale, const int32_t *row_offset, const uint8_t *packed,
                       float *c, long ldc, int accumulate, const semfuse_epilogue *epilogue, int force_portable) {
    const semfuse_epilogue *e = epilogue && (epilogue->bias || epilogue->residual || epilogue->lo != -INFINITY
                                             || epilogue->hi != INFINITY) ? epilogue : 0;
#if defined(__x86_64__)
    if (vnni_here() && !force_portable) { gemm_vnni(m, n, k, a, lda, a_zero, row_scale, row_offset, packed, c, ldc, accumulate, e); return; }
#endif
    gemm_portable(m, n, k, a, lda, a_zero, row_scale, row_offset, packed, c, ldc, accumulate, e);
}
