#include "rwkv_kernels.h"
#include "scalar.h"
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define RK_X86 1
#endif

static void matvec_scalar(int dtype, const void *W, const float *x, float *y, int nvec,
                          int64_t cols, int64_t rows_total, int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; r++) {
        for (int v = 0; v < nvec; v++) {
            const float *xv = x + (int64_t)v * cols;
            float acc = 0;
            for (int64_t c = 0; c < cols; c++) acc += rk_load_weight(dtype, W, r * cols + c) * xv[c];
            y[(int64_t)v * rows_total + r] = acc;
        }
    }
}

#ifdef RK_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline __attribute__((always_inline)) __m256 load8(int dtype, const char *p) {
    switch (dtype) {
    case RK_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case RK_BF16: {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
    default: return _mm256_loadu_ps((const float *)p);
    }
}

AVX2 static inline __attribute__((always_inline)) float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

// Decoding streams each weight once from memory. With the FMAs' work between the loads the hardware
// prefetcher alone keeps too few lines in flight to reach the memory's rate, so the kernels also ask for
// lines ahead of the read (README "Performance", Decode: the rates either way).
//
// At 16 lanes (every type) and for 32-bit weights at 8: four rows at a time (contiguous: one block of
// 4·cols·es bytes), each x load feeding four FMAs, and the line MATVEC_PREFETCH bytes past where a linear
// read of the block would be.
#define MATVEC_PREFETCH 8192

/// The address to ask for while a block of four rows is read at column c.
static inline const char *prefetch_target(const char *block, int64_t es, int64_t c) {
    return block + MATVEC_PREFETCH + 4 * c * es;
}

// 16-bit weights (f16, bf16): one row at a time, so the read is a single linear stream, with the line
// MATVEC_AHEAD bytes ahead of it asked for. On the AVX2 machine (Zen 2) with the weights in huge pages
// this decodes a 0.4B f16/bf16 file ~11% faster than four rows with the far prefetch (29 → 32.5 GB/s of
// 35); 32-bit rows stream faster the four-row way.
#define MATVEC_AHEAD 768

// 32 columns per step into four accumulators: with one, each row's chain of FMAs (5 cycles apiece)
// limited a core to well under its share of the memory's rate. The type is a constant of each
// instance, so the loop carries no dispatch.
AVX2 static inline __attribute__((always_inline)) void matvec_avx2_stream(const int dtype, const void *W, const float *x,
                                                                        float *y, int64_t cols, int64_t rb, int64_t re) {
    const int64_t es = 2;
    const int64_t c8 = cols & ~(int64_t)7, c32 = cols & ~(int64_t)31;
    for (int64_t r = rb; r < re; r++) {
        const char *w = (const char *)W + r * cols * es;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t c = 0;
        for (; c < c32; c += 32) {
            // 32 columns are one 64-byte line of the stream.
            _mm_prefetch(w + c * es + MATVEC_AHEAD, _MM_HINT_T0);
            a0 = _mm256_fmadd_ps(load8(dtype, w + c * es), _mm256_loadu_ps(x + c), a0);
            a1 = _mm256_fmadd_ps(load8(dtype, w + (c + 8) * es), _mm256_loadu_ps(x + c + 8), a1);
            a2 = _mm256_fmadd_ps(load8(dtype, w + (c + 16) * es), _mm256_loadu_ps(x + c + 16), a2);
            a3 = _mm256_fmadd_ps(load8(dtype, w + (c + 24) * es), _mm256_loadu_ps(x + c + 24), a3);
        }
        for (; c < c8; c += 8) a0 = _mm256_fmadd_ps(load8(dtype, w + c * es), _mm256_loadu_ps(x + c), a0);
        float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (c = c8; c < cols; c++) s += rk_load_weight(dtype, W, r * cols + c) * x[c];
        y[r] = s;
    }
}

// 32-bit rows four at a time; sixteen columns per step into two accumulators per row.
AVX2 static void matvec_avx2_f32(const float *W, const float *x, float *y, int64_t cols, int64_t rb, int64_t re) {
    const int64_t c8 = cols & ~(int64_t)7, c16 = cols & ~(int64_t)15;
    int64_t r = rb;
    for (; r + 4 <= re; r += 4) {
        const float *w = W + r * cols; // row q at w + q * cols
        __m256 a[4][2];
        for (int q = 0; q < 4; q++) a[q][0] = a[q][1] = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c < c16; c += 16) {
            // 16 columns of 4 rows: 256 bytes of the block, four lines.
            const char *p = prefetch_target((const char *)w, 4, c);
            for (int o = 0; o < 256; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
            const __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
            for (int q = 0; q < 4; q++) {
                a[q][0] = _mm256_fmadd_ps(_mm256_loadu_ps(w + q * cols + c), x0, a[q][0]);
                a[q][1] = _mm256_fmadd_ps(_mm256_loadu_ps(w + q * cols + c + 8), x1, a[q][1]);
            }
        }
        if (c < c8) {
            const __m256 x0 = _mm256_loadu_ps(x + c);
            for (int q = 0; q < 4; q++) a[q][0] = _mm256_fmadd_ps(_mm256_loadu_ps(w + q * cols + c), x0, a[q][0]);
        }
        for (int q = 0; q < 4; q++) {
            float s = hsum8(_mm256_add_ps(a[q][0], a[q][1]));
            for (c = c8; c < cols; c++) s += w[q * cols + c] * x[c];
            y[r + q] = s;
        }
    }
    for (; r < re; r++) {
        const float *w0 = W + r * cols;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t c = 0; c < c8; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + c), _mm256_loadu_ps(x + c), a0);
        float s = hsum8(a0);
        for (int64_t c = c8; c < cols; c++) s += w0[c] * x[c];
        y[r] = s;
    }
}

AVX2 static void matvec_avx2_one(int dtype, const void *W, const float *x, float *y, int64_t cols, int64_t rb, int64_t re) {
    switch (dtype) {
    case RK_F16: matvec_avx2_stream(RK_F16, W, x, y, cols, rb, re); break;
    case RK_BF16: matvec_avx2_stream(RK_BF16, W, x, y, cols, rb, re); break;
    default: matvec_avx2_f32((const float *)W, x, y, cols, rb, re); break;
    }
}

#define A512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

A512 static inline __attribute__((always_inline)) __m512 load16(int dtype, const char *p) {
    switch (dtype) {
    case RK_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    case RK_BF16: return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    default: return _mm512_loadu_ps((const float *)p);
    }
}

// matvec_avx2_one at 16 lanes.
A512 static void matvec_avx512_one(int dtype, const void *W, const float *x, float *y,
                                   int64_t cols, int64_t rb, int64_t re) {
    const int64_t es = dtype == RK_F32 ? 4 : 2;
    const int64_t c16 = cols & ~(int64_t)15;
    int64_t r = rb;
    for (; r + 4 <= re; r += 4) {
        const char *w0 = (const char *)W + (r + 0) * cols * es, *w1 = w0 + cols * es;
        const char *w2 = w1 + cols * es, *w3 = w2 + cols * es;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        for (int64_t c = 0; c < c16; c += 16) {
            // 16 columns of 4 rows: 64·es bytes of the block, es lines.
            const char *p = prefetch_target(w0, es, c);
            for (int64_t o = 0; o < 64 * es; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
            __m512 xv = _mm512_loadu_ps(x + c);
            a0 = _mm512_fmadd_ps(load16(dtype, w0 + c * es), xv, a0);
            a1 = _mm512_fmadd_ps(load16(dtype, w1 + c * es), xv, a1);
            a2 = _mm512_fmadd_ps(load16(dtype, w2 + c * es), xv, a2);
            a3 = _mm512_fmadd_ps(load16(dtype, w3 + c * es), xv, a3);
        }
        float s[4] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2), _mm512_reduce_add_ps(a3)};
        for (int64_t c = c16; c < cols; c++)
            for (int q = 0; q < 4; q++) s[q] += rk_load_weight(dtype, W, (r + q) * cols + c) * x[c];
        for (int q = 0; q < 4; q++) y[r + q] = s[q];
    }
    for (; r < re; r++) {
        const char *w0 = (const char *)W + r * cols * es;
        __m512 a0 = _mm512_setzero_ps();
        for (int64_t c = 0; c < c16; c += 16) a0 = _mm512_fmadd_ps(load16(dtype, w0 + c * es), _mm512_loadu_ps(x + c), a0);
        float s = _mm512_reduce_add_ps(a0);
        for (int64_t c = c16; c < cols; c++) s += rk_load_weight(dtype, W, r * cols + c) * x[c];
        y[r] = s;
    }
}

// Several vectors at 16 lanes: blocks of four rows as in matvec_avx512_one (the same prefetch), each
// weight load feeding NV vectors; NV is a compile-time constant in each instance so the 4·NV sums stay
// in registers. Each vector's sums are those of matvec_avx512_one, in the same order.
A512 static inline __attribute__((always_inline)) void matvec_avx512_nv(
        int NV, int dtype, const void *W, const float *x, float *y, int64_t cols, int64_t rows_total,
        int64_t rb, int64_t re) {
    const int64_t es = dtype == RK_F32 ? 4 : 2;
    const int64_t c16 = cols & ~(int64_t)15;
    int64_t r = rb;
    for (; r + 4 <= re; r += 4) {
        const char *w0 = (const char *)W + r * cols * es;
        __m512 acc[4][5];
        for (int q = 0; q < 4; q++)
            for (int v = 0; v < NV; v++) acc[q][v] = _mm512_setzero_ps();
        for (int64_t c = 0; c < c16; c += 16) {
            const char *p = prefetch_target(w0, es, c);
            for (int64_t o = 0; o < 64 * es; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
            __m512 wv[4];
            for (int q = 0; q < 4; q++) wv[q] = load16(dtype, w0 + (q * cols + c) * es);
            for (int v = 0; v < NV; v++) {
                const __m512 xv = _mm512_loadu_ps(x + v * cols + c);
                for (int q = 0; q < 4; q++) acc[q][v] = _mm512_fmadd_ps(wv[q], xv, acc[q][v]);
            }
        }
        for (int v = 0; v < NV; v++)
            for (int q = 0; q < 4; q++) {
                float s = _mm512_reduce_add_ps(acc[q][v]);
                for (int64_t c = c16; c < cols; c++) s += rk_load_weight(dtype, W, (r + q) * cols + c) * x[v * cols + c];
                y[v * rows_total + r + q] = s;
            }
    }
    for (; r < re; r++) {
        const char *w0 = (const char *)W + r * cols * es;
        __m512 acc[5];
        for (int v = 0; v < NV; v++) acc[v] = _mm512_setzero_ps();
        for (int64_t c = 0; c < c16; c += 16) {
            const __m512 wv = load16(dtype, w0 + c * es);
            for (int v = 0; v < NV; v++) acc[v] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + v * cols + c), acc[v]);
        }
        for (int v = 0; v < NV; v++) {
            float s = _mm512_reduce_add_ps(acc[v]);
            for (int64_t c = c16; c < cols; c++) s += rk_load_weight(dtype, W, r * cols + c) * x[v * cols + c];
            y[v * rows_total + r] = s;
        }
    }
}

// Five vectors per pass over the weights (more in passes of five): 20 sums, four weight vectors and one
// of x fit the 32 registers.
A512 static void matvec_avx512_multi(int dtype, const void *W, const float *x, float *y, int nvec,
                                     int64_t cols, int64_t rows_total, int64_t rb, int64_t re) {
    for (int v0 = 0; v0 < nvec; v0 += 5) {
        const float *xs = x + (int64_t)v0 * cols;
        float *ys = y + (int64_t)v0 * rows_total;
        switch (nvec - v0 < 5 ? nvec - v0 : 5) {
        case 1: matvec_avx512_nv(1, dtype, W, xs, ys, cols, rows_total, rb, re); break;
        case 2: matvec_avx512_nv(2, dtype, W, xs, ys, cols, rows_total, rb, re); break;
        case 3: matvec_avx512_nv(3, dtype, W, xs, ys, cols, rows_total, rb, re); break;
        case 4: matvec_avx512_nv(4, dtype, W, xs, ys, cols, rows_total, rb, re); break;
        default: matvec_avx512_nv(5, dtype, W, xs, ys, cols, rows_total, rb, re); break;
        }
    }
}

// Several vectors: each weight row is loaded once and used for every vector of a pass (up to five,
// the most the engine sends here below the GEMM), two rows at a time so that each vector's sums are two
// chains of FMAs. The type and the pass's vector count are constants of each instance.
AVX2 static inline __attribute__((always_inline)) void matvec_avx2_pass(const int dtype, const int NV, const void *W, const float *x,
                                                                      float *y, int64_t cols, int64_t rows_total, int64_t rb, int64_t re) {
    const int64_t es = dtype == RK_F32 ? 4 : 2;
    const int64_t c8 = cols & ~(int64_t)7;
    for (int64_t r = rb; r < re; r += 2) {
        // An odd last row is computed twice and stored once.
        const int64_t r1 = r + 1 < re ? r + 1 : r;
        const char *w0 = (const char *)W + r * cols * es, *w1 = (const char *)W + r1 * cols * es;
        __m256 a0[NV], a1[NV];
        for (int q = 0; q < NV; q++) a0[q] = a1[q] = _mm256_setzero_ps();
        for (int64_t c = 0; c < c8; c += 8) {
            const __m256 v0 = load8(dtype, w0 + c * es), v1 = load8(dtype, w1 + c * es);
            for (int q = 0; q < NV; q++) {
                const __m256 xv = _mm256_loadu_ps(x + (int64_t)q * cols + c);
                a0[q] = _mm256_fmadd_ps(v0, xv, a0[q]);
                a1[q] = _mm256_fmadd_ps(v1, xv, a1[q]);
            }
        }
        for (int q = 0; q < NV; q++) {
            float s0 = hsum8(a0[q]), s1 = hsum8(a1[q]);
            for (int64_t c = c8; c < cols; c++) {
                s0 += rk_load_weight(dtype, W, r * cols + c) * x[(int64_t)q * cols + c];
                s1 += rk_load_weight(dtype, W, r1 * cols + c) * x[(int64_t)q * cols + c];
            }
            y[(int64_t)q * rows_total + r] = s0;
            y[(int64_t)q * rows_total + r1] = s1;
        }
    }
}

AVX2 static inline __attribute__((always_inline)) void matvec_avx2_passes(const int dtype, const void *W, const float *x, float *y, int nvec,
                                                                        int64_t cols, int64_t rows_total, int64_t rb, int64_t re) {
    for (int v0 = 0; v0 < nvec; v0 += 5) {
        const float *xv = x + (int64_t)v0 * cols;
        float *yv = y + (int64_t)v0 * rows_total;
        switch (nvec - v0 < 5 ? nvec - v0 : 5) {
        case 1: matvec_avx2_pass(dtype, 1, W, xv, yv, cols, rows_total, rb, re); break;
        case 2: matvec_avx2_pass(dtype, 2, W, xv, yv, cols, rows_total, rb, re); break;
        case 3: matvec_avx2_pass(dtype, 3, W, xv, yv, cols, rows_total, rb, re); break;
        case 4: matvec_avx2_pass(dtype, 4, W, xv, yv, cols, rows_total, rb, re); break;
        default: matvec_avx2_pass(dtype, 5, W, xv, yv, cols, rows_total, rb, re); break;
        }
    }
}

AVX2 static void matvec_avx2_multi(int dtype, const void *W, const float *x, float *y, int nvec,
                                   int64_t cols, int64_t rows_total, int64_t rb, int64_t re) {
    switch (dtype) {
    case RK_F16: matvec_avx2_passes(RK_F16, W, x, y, nvec, cols, rows_total, rb, re); break;
    case RK_BF16: matvec_avx2_passes(RK_BF16, W, x, y, nvec, cols, rows_total, rb, re); break;
    default: matvec_avx2_passes(RK_F32, W, x, y, nvec, cols, rows_total, rb, re); break;
    }
}

AVX2 static void to_f32_avx2(int dtype, const void *src, float *dst, int64_t n) {
    int64_t i = 0;
    const int64_t es = dtype == RK_F32 ? 4 : 2;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(dtype, (const char *)src + i * es));
    for (; i < n; i++) dst[i] = rk_load_weight(dtype, src, i);
}

// Lane q of the result: the sum of a[q]'s eight lanes.
AVX2 static inline __attribute__((always_inline)) __m256 hsum8x8(const __m256 a[8]) {
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Heads whose size is a multiple of 8, eight state rows at a time: their eight (S·kk)_i first, as
// eight independent chains summed across lanes together (hsum8x8), then each row's update and its
// contribution to y, whose eight sums are again taken together. One row at a time, each row's two
// sums across lanes and the dependency of its update on the first made the kernel latency-bound.
AVX2 static inline __attribute__((always_inline)) void wkv7_avx2_n(float *S, int H, const int N, const float *r, const float *w,
                                                                const float *k, const float *v, const float *kk, const float *a, float *y) {
    for (int h = 0; h < H; h++) {
        const int o = h * N;
        float *Sh = S + (int64_t)h * N * N;
        float kka[N];
        for (int j = 0; j < N; j++) kka[j] = kk[o + j] * a[o + j];
        for (int i0 = 0; i0 < N; i0 += 8) {
            float *rows = Sh + (int64_t)i0 * N;
            __m256 acc[8];
            for (int q = 0; q < 8; q++) acc[q] = _mm256_setzero_ps();
            for (int j = 0; j < N; j += 8) {
                const __m256 kv = _mm256_loadu_ps(kk + o + j);
                for (int q = 0; q < 8; q++) acc[q] = _mm256_fmadd_ps(_mm256_loadu_ps(rows + q * N + j), kv, acc[q]);
            }
            float sa[8];
            _mm256_storeu_ps(sa, _mm256_sub_ps(_mm256_setzero_ps(), hsum8x8(acc))); // (S · −kk)_i with the old state
            // Two rows at a time, so that their y sums are two chains of FMAs, not one.
            for (int q = 0; q < 8; q += 2) {
                float *row0 = rows + q * N, *row1 = row0 + N;
                const __m256 vsa0 = _mm256_set1_ps(sa[q]), vvi0 = _mm256_set1_ps(v[o + i0 + q]);
                const __m256 vsa1 = _mm256_set1_ps(sa[q + 1]), vvi1 = _mm256_set1_ps(v[o + i0 + q + 1]);
                __m256 y0 = _mm256_setzero_ps(), y1 = _mm256_setzero_ps();
                for (int j = 0; j < N; j += 8) {
                    const __m256 wj = _mm256_loadu_ps(w + o + j), kaj = _mm256_loadu_ps(kka + j), kj = _mm256_loadu_ps(k + o + j);
                    const __m256 rj = _mm256_loadu_ps(r + o + j);
                    __m256 t0 = _mm256_mul_ps(_mm256_loadu_ps(row0 + j), wj), t1 = _mm256_mul_ps(_mm256_loadu_ps(row1 + j), wj);
                    t0 = _mm256_fmadd_ps(vvi0, kj, _mm256_fmadd_ps(vsa0, kaj, t0));
                    t1 = _mm256_fmadd_ps(vvi1, kj, _mm256_fmadd_ps(vsa1, kaj, t1));
                    _mm256_storeu_ps(row0 + j, t0);
                    _mm256_storeu_ps(row1 + j, t1);
                    y0 = _mm256_fmadd_ps(t0, rj, y0);
                    y1 = _mm256_fmadd_ps(t1, rj, y1);
                }
                acc[q] = y0;
                acc[q + 1] = y1;
            }
            _mm256_storeu_ps(y + o + i0, hsum8x8(acc));
        }
    }
}

// Heads of 64 (every released RWKV-7) with the size known to the compiler, which then unrolls the rows.
AVX2 static void wkv7_avx2(float *S, int H, int N, const float *r, const float *w, const float *k,
                           const float *v, const float *kk, const float *a, float *y) {
    if (N == 64) wkv7_avx2_n(S, H, 64, r, w, k, v, kk, a, y);
    else wkv7_avx2_n(S, H, N, r, w, k, v, kk, a, y);
}
#endif

#ifdef RK_X86
// wkv7_avx2 for heads of 64 at 16 lanes: the head's vectors (w, kk·a, k, r, kk) stay in registers and
// each state row is loaded once. The update of S is the same arithmetic as the AVX2 kernel; the two dot
// products sum in another order.
A512 static void wkv7_avx512_64(float *S, int H, const float *r, const float *w, const float *k,
                                const float *v, const float *kk, const float *a, float *y) {
    for (int h = 0; h < H; h++) {
        const int o = h * 64;
        float *Sh = S + (int64_t)h * 64 * 64;
        __m512 W[4], KK[4], KKA[4], K[4], R[4];
        for (int q = 0; q < 4; q++) {
            W[q] = _mm512_loadu_ps(w + o + 16 * q);
            KK[q] = _mm512_loadu_ps(kk + o + 16 * q);
            KKA[q] = _mm512_mul_ps(KK[q], _mm512_loadu_ps(a + o + 16 * q));
            K[q] = _mm512_loadu_ps(k + o + 16 * q);
            R[q] = _mm512_loadu_ps(r + o + 16 * q);
        }
        for (int i = 0; i < 64; i++) {
            float *row = Sh + (int64_t)i * 64;
            __m512 s[4];
            for (int q = 0; q < 4; q++) s[q] = _mm512_loadu_ps(row + 16 * q);
            __m512 acc = _mm512_mul_ps(s[0], KK[0]);
            for (int q = 1; q < 4; q++) acc = _mm512_fmadd_ps(s[q], KK[q], acc);
            const __m512 vsa = _mm512_set1_ps(-_mm512_reduce_add_ps(acc)), vvi = _mm512_set1_ps(v[o + i]);
            __m512 yacc = _mm512_setzero_ps();
            for (int q = 0; q < 4; q++) {
                __m512 t = _mm512_mul_ps(s[q], W[q]);
                t = _mm512_fmadd_ps(vsa, KKA[q], t);
                t = _mm512_fmadd_ps(vvi, K[q], t);
                _mm512_storeu_ps(row + 16 * q, t);
                yacc = _mm512_fmadd_ps(t, R[q], yacc);
            }
            y[o + i] = _mm512_reduce_add_ps(yacc);
        }
    }
}
#endif

static void wkv7_scalar(float *S, int H, int N, const float *r, const float *w, const float *k,
                        const float *v, const float *kk, const float *a, float *y) {
    for (int h = 0; h < H; h++) {
        const int o = h * N;
        float *Sh = S + (int64_t)h * N * N;
        for (int i = 0; i < N; i++) {
            float *row = Sh + (int64_t)i * N;
            float sa = 0;
            for (int j = 0; j < N; j++) sa -= row[j] * kk[o + j];
            float yi = 0;
            for (int j = 0; j < N; j++) {
                float s = row[j] * w[o + j] + sa * kk[o + j] * a[o + j] + v[o + i] * k[o + j];
                row[j] = s;
                yi += s * r[o + j];
            }
            y[o + i] = yi;
        }
    }
}

static int simd_level = -1;

static int detect_simd_level(void) {
#ifdef RK_X86
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))) return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return __builtin_cpu_supports("avx512vnni") ? 3 : 2;
    return 1;
#else
    return 0;
#endif
}

int rk_simd_level(void) {
    if (simd_level < 0) {
        // Benign race: every thread computes the same value.
        int level = detect_simd_level();
        const char *env = getenv("RWKV_EDIT_KERNELS");
        if (env && strcmp(env, "portable") == 0) level = 0;
        else if (env && strcmp(env, "avx2") == 0 && level > 1) level = 1;
        else if (env && strcmp(env, "avx512") == 0 && level > 2) level = 2;
        simd_level = level;
    }
    return simd_level;
}

void rk_matvec(int dtype, const void *W, const float *x, float *y, int64_t cols, int64_t rb, int64_t re) {
    if (dtype >= RK_Q8_0) { rk_qmatvec(dtype, W, x, y, 1, cols, 0, rb, re); return; }
#ifdef RK_X86
    if (rk_simd_level() >= 2) { matvec_avx512_one(dtype, W, x, y, cols, rb, re); return; }
    if (rk_simd_level() >= 1) { matvec_avx2_one(dtype, W, x, y, cols, rb, re); return; }
#endif
    matvec_scalar(dtype, W, x, y, 1, cols, 0, rb, re);
}

void rk_matvec_multi(int dtype, const void *W, const float *x, float *y, int nvec,
                     int64_t cols, int64_t rows_total, int64_t rb, int64_t re) {
    if (dtype >= RK_Q8_0) { rk_qmatvec(dtype, W, x, y, nvec, cols, rows_total, rb, re); return; }
#ifdef RK_X86
    if (rk_simd_level() >= 2) { matvec_avx512_multi(dtype, W, x, y, nvec, cols, rows_total, rb, re); return; }
    if (rk_simd_level() >= 1) { matvec_avx2_multi(dtype, W, x, y, nvec, cols, rows_total, rb, re); return; }
#endif
    matvec_scalar(dtype, W, x, y, nvec, cols, rows_total, rb, re);
}

void rk_to_f32(int dtype, const void *src, float *dst, int64_t n) {
    if (dtype >= RK_Q8_0) {
        const int be = rk_block_elems(dtype);
        if (be > 0) rk_dequant_blocks(dtype, src, dst, n / be);
        return;
    }
#ifdef RK_X86
    if (rk_simd_level() >= 1) { to_f32_avx2(dtype, src, dst, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = rk_load_weight(dtype, src, i);
}

void rk_wkv7_step(float *S, int H, int N, const float *r, const float *w, const float *k,
                  const float *v, const float *kk, const float *a, float *y) {
#ifdef RK_X86
    if (N == 64 && rk_simd_level() >= 2) { wkv7_avx512_64(S, H, r, w, k, v, kk, a, y); return; }
    if (N % 8 == 0 && rk_simd_level() >= 1) { wkv7_avx2(S, H, N, r, w, k, v, kk, a, y); return; }
#endif
    wkv7_scalar(S, H, N, r, w, k, v, kk, a, y);
}

// Activations. libm's expf costs ~5 ns a call and the time mix takes four per channel and token,
// ~7% of a short batch's CPU time on the demo model; the exponential is computed 16 at a time with
// AVX-512, 8 with AVX2.
#define DECAY_SCALE 0.606531f /* e^-1/2 */

#ifdef RK_X86
// e^x = 2^n · e^r with n = round(x / ln 2) and |r| <= ln 2 / 2 (ln 2 split in two so r is exact to the
// float); e^r by its Taylor polynomial to r^7 (truncation error below 1e-8 relative on that interval);
// scalef applies 2^n, giving 0, subnormals and infinity past the float range. The clamp keeps r small
// for any input; NaN passes through (max and min return their second operand for NaN).
A512 static inline __attribute__((always_inline)) __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

enum activation { ACT_EXP, ACT_SIGMOID, ACT_DECAY, ACT_TANH };

A512 static inline __attribute__((always_inline)) __m512 activate512(int kind, __m512 v) {
    if (kind == ACT_EXP) return exp512(v);
    const __m512 one = _mm512_set1_ps(1.0f);
    if (kind == ACT_TANH) {
        // tanh|x| = (1 − e^(−2|x|)) / (1 + e^(−2|x|)), the sign put back: absolute error a few 1e-8.
        const __m512 e = exp512(_mm512_mul_ps(_mm512_set1_ps(-2.0f), _mm512_abs_ps(v)));
        const __m512 t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
        return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t),
                                                   _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u))));
    }
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    return kind == ACT_SIGMOID ? s : exp512(_mm512_mul_ps(_mm512_set1_ps(-DECAY_SCALE), s));
}

// Whole vectors, then the tail under a mask: every element takes the same arithmetic wherever it lies.
A512 static void activate_avx512(int kind, const float *x, const float *bias, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
        _mm512_mask_storeu_ps(out + i, m, activate512(kind, v));
    }
}

// exp512 at 8 lanes, the same arithmetic: AVX2 has no scalef, so 2^n is applied as two powers of two
// 2^(n/2) and 2^(n − n/2), each a normal float for every n the clamp allows (−150 … 128): the first
// product is exact and the second rounds only where the result is subnormal, as scalef does.
AVX2 static inline __attribute__((always_inline)) __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23)));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23)));
}

AVX2 static inline __attribute__((always_inline)) __m256 activate256(int kind, __m256 v) {
    if (kind == ACT_EXP) return exp256(v);
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    if (kind == ACT_TANH) {
        const __m256 e = exp256(_mm256_mul_ps(_mm256_set1_ps(-2.0f), _mm256_andnot_ps(sign, v)));
        const __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
        return _mm256_or_ps(t, _mm256_and_ps(v, sign));
    }
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    return kind == ACT_SIGMOID ? s : exp256(_mm256_mul_ps(_mm256_set1_ps(-DECAY_SCALE), s));
}

// The lanes [0, n − i) of an 8-lane step, for the tails of the AVX2 loops.
AVX2 static inline __attribute__((always_inline)) __m256i tail8(int64_t n, int64_t i) {
    const int64_t left = n - i < 8 ? n - i : 8;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Element i … i+8 of an n-element array, zeros past its end; and its store. Only a tail goes through
// the masked instructions: on AMD's cores a masked store costs tens of cycles.
AVX2 static inline __attribute__((always_inline)) __m256 ld8(const float *p, int64_t n, int64_t i) {
    return n - i >= 8 ? _mm256_loadu_ps(p + i) : _mm256_maskload_ps(p + i, tail8(n, i));
}

AVX2 static inline __attribute__((always_inline)) void st8(float *p, int64_t n, int64_t i, __m256 v) {
    if (n - i >= 8) _mm256_storeu_ps(p + i, v);
    else _mm256_maskstore_ps(p + i, tail8(n, i), v);
}

AVX2 static void activate_avx2(int kind, const float *x, const float *bias, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = ld8(x, n, i);
        if (bias) v = _mm256_add_ps(v, ld8(bias, n, i));
        st8(out, n, i, activate256(kind, v));
    }
}
#endif

static inline float sigmoid_scalar(float v) { return 1.0f / (1.0f + expf(-v)); }

void rk_sigmoid(const float *x, const float *bias, float *out, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) { activate_avx512(ACT_SIGMOID, x, bias, out, n); return; }
    if (rk_simd_level() >= 1) { activate_avx2(ACT_SIGMOID, x, bias, out, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) out[i] = sigmoid_scalar(x[i] + (bias ? bias[i] : 0.0f));
}

void rk_decay(const float *x, const float *bias, float *out, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) { activate_avx512(ACT_DECAY, x, bias, out, n); return; }
    if (rk_simd_level() >= 1) { activate_avx2(ACT_DECAY, x, bias, out, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) out[i] = expf(-DECAY_SCALE * sigmoid_scalar(x[i] + (bias ? bias[i] : 0.0f)));
}

void rk_tanh(const float *x, float *out, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) { activate_avx512(ACT_TANH, x, NULL, out, n); return; }
    if (rk_simd_level() >= 1) { activate_avx2(ACT_TANH, x, NULL, out, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) out[i] = tanhf(x[i]);
}

void rk_exp(const float *x, float *out, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) { activate_avx512(ACT_EXP, x, NULL, out, n); return; }
    if (rk_simd_level() >= 1) { activate_avx2(ACT_EXP, x, NULL, out, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) out[i] = expf(x[i]);
}

// Per-token arithmetic. Whole vectors, then the tail under a mask, as the activations.
#define RK_TAIL(n, i) ((n) - (i) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << ((n) - (i))) - 1))

#ifdef RK_X86
A512 static void lerp_avx512(const float *a, const float *b, const float *m, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 t = RK_TAIL(n, i);
        const __m512 va = _mm512_maskz_loadu_ps(t, a + i);
        const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(t, b + i), va);
        _mm512_mask_storeu_ps(out + i, t, _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(t, m + i), va));
    }
}

A512 static float sum512(const float *x, int64_t n) {
    __m512 s = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(RK_TAIL(n, i), x + i));
    return _mm512_reduce_add_ps(s);
}

// Mean and 1/sqrt(var + eps) of n values.
A512 static void moments512(const float *x, int64_t n, float eps, float *mean, float *inv) {
    const float mu = sum512(x, n) / (float)n;
    const __m512 vm = _mm512_set1_ps(mu);
    __m512 s = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 t = RK_TAIL(n, i);
        const __m512 d = _mm512_maskz_sub_ps(t, _mm512_maskz_loadu_ps(t, x + i), vm);
        s = _mm512_fmadd_ps(d, d, s);
    }
    *mean = mu;
    *inv = 1.0f / sqrtf(_mm512_reduce_add_ps(s) / (float)n + eps);
}

A512 static void layer_norm_avx512(const float *x, const float *w, const float *bias, float eps, float *out, int64_t n) {
    float mu, inv;
    moments512(x, n, eps, &mu, &inv);
    const __m512 vm = _mm512_set1_ps(mu), vi = _mm512_set1_ps(inv);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 t = RK_TAIL(n, i);
        const __m512 z = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + i), vm), vi);
        _mm512_mask_storeu_ps(out + i, t, _mm512_fmadd_ps(z, _mm512_maskz_loadu_ps(t, w + i), _mm512_maskz_loadu_ps(t, bias + i)));
    }
}

A512 static void wkv_output_avx512(float *y, const float *r, const float *k, const float *v, const float *g,
                                   const float *rk, const float *w, const float *bias, float eps, int64_t n) {
    __m512 b = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 t = RK_TAIL(n, i);
        b = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(t, r + i), _mm512_maskz_loadu_ps(t, k + i)),
                            _mm512_maskz_loadu_ps(t, rk + i), b);
    }
    const __m512 bonus = _mm512_set1_ps(_mm512_reduce_add_ps(b));
    layer_norm_avx512(y, w, bias, eps, y, n);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 t = RK_TAIL(n, i);
        const __m512 o = _mm512_fmadd_ps(bonus, _mm512_maskz_loadu_ps(t, v + i), _mm512_maskz_loadu_ps(t, y + i));
        _mm512_mask_storeu_ps(y + i, t, _mm512_mul_ps(o, _mm512_maskz_loadu_ps(t, g + i)));
    }
}

A512 static void key_prep_avx512(float *k, const float *a, const float *kK, const float *kA, float *kk, int H, int N) {
    for (int h = 0; h < H; h++) {
        const int64_t o = (int64_t)h * N;
        __m512 ss = _mm512_setzero_ps();
        for (int64_t i = 0; i < N; i += 16) {
            const __mmask16 t = RK_TAIL(N, i);
            const __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(t, k + o + i), _mm512_maskz_loadu_ps(t, kK + o + i));
            _mm512_mask_storeu_ps(kk + o + i, t, p);
            ss = _mm512_fmadd_ps(p, p, ss);
        }
        const float norm = sqrtf(_mm512_reduce_add_ps(ss));
        const __m512 inv = _mm512_set1_ps(1.0f / (norm > 1e-12f ? norm : 1e-12f));
        for (int64_t i = 0; i < N; i += 16) {
            const __mmask16 t = RK_TAIL(N, i);
            _mm512_mask_storeu_ps(kk + o + i, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, kk + o + i), inv));
        }
    }
    const int64_t C = (int64_t)H * N;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < C; i += 16) {
        const __mmask16 t = RK_TAIL(C, i);
        const __m512 f = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, a + i), one), _mm512_maskz_loadu_ps(t, kA + i), one);
        _mm512_mask_storeu_ps(k + i, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, k + i), f));
    }
}
#endif

#ifdef RK_X86
// The per-token arithmetic above at 8 lanes (AVX2), each tail through ld8/st8.
AVX2 static void lerp_avx2(const float *a, const float *b, const float *m, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 va = ld8(a, n, i);
        const __m256 d = _mm256_sub_ps(ld8(b, n, i), va);
        st8(out, n, i, _mm256_fmadd_ps(d, ld8(m, n, i), va));
    }
}

AVX2 static void moments256(const float *x, int64_t n, float eps, float *mean, float *inv) {
    __m256 s = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) s = _mm256_add_ps(s, ld8(x, n, i));
    const float mu = hsum8(s) / (float)n;
    const __m256 vm = _mm256_set1_ps(mu);
    __m256 q = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        __m256 d = _mm256_sub_ps(ld8(x, n, i), vm);
        if (n - i < 8) d = _mm256_and_ps(d, _mm256_castsi256_ps(tail8(n, i)));
        q = _mm256_fmadd_ps(d, d, q);
    }
    *mean = mu;
    *inv = 1.0f / sqrtf(hsum8(q) / (float)n + eps);
}

AVX2 static void layer_norm_avx2(const float *x, const float *w, const float *bias, float eps, float *out, int64_t n) {
    float mu, inv;
    moments256(x, n, eps, &mu, &inv);
    const __m256 vm = _mm256_set1_ps(mu), vi = _mm256_set1_ps(inv);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 z = _mm256_mul_ps(_mm256_sub_ps(ld8(x, n, i), vm), vi);
        st8(out, n, i, _mm256_fmadd_ps(z, ld8(w, n, i), ld8(bias, n, i)));
    }
}

AVX2 static void wkv_output_avx2(float *y, const float *r, const float *k, const float *v, const float *g,
                                 const float *rk, const float *w, const float *bias, float eps, int64_t n) {
    __m256 b = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        b = _mm256_fmadd_ps(_mm256_mul_ps(ld8(r, n, i), ld8(k, n, i)), ld8(rk, n, i), b);
    }
    const __m256 bonus = _mm256_set1_ps(hsum8(b));
    layer_norm_avx2(y, w, bias, eps, y, n);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 o = _mm256_fmadd_ps(bonus, ld8(v, n, i), ld8(y, n, i));
        st8(y, n, i, _mm256_mul_ps(o, ld8(g, n, i)));
    }
}

AVX2 static void key_prep_avx2(float *k, const float *a, const float *kK, const float *kA, float *kk, int H, int N) {
    for (int h = 0; h < H; h++) {
        const int64_t o = (int64_t)h * N;
        __m256 ss = _mm256_setzero_ps();
        for (int64_t i = 0; i < N; i += 8) {
            const __m256 p = _mm256_mul_ps(ld8(k + o, N, i), ld8(kK + o, N, i));
            st8(kk + o, N, i, p);
            ss = _mm256_fmadd_ps(p, p, ss);
        }
        const float norm = sqrtf(hsum8(ss));
        const __m256 inv = _mm256_set1_ps(1.0f / (norm > 1e-12f ? norm : 1e-12f));
        for (int64_t i = 0; i < N; i += 8) {
            st8(kk + o, N, i, _mm256_mul_ps(ld8(kk + o, N, i), inv));
        }
    }
    const int64_t C = (int64_t)H * N;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < C; i += 8) {
        const __m256 f = _mm256_fmadd_ps(_mm256_sub_ps(ld8(a, C, i), one), ld8(kA, C, i), one);
        st8(k, C, i, _mm256_mul_ps(ld8(k, C, i), f));
    }
}
#endif

void rk_lerp(const float *a, const float *b, const float *m, float *out, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) { lerp_avx512(a, b, m, out, n); return; }
    if (rk_simd_level() >= 1) { lerp_avx2(a, b, m, out, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + (b[i] - a[i]) * m[i];
}

static void layer_norm_scalar(const float *x, const float *w, const float *bias, float eps, float *out, int64_t n) {
    float mean = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
    float vs = 0;
    for (int64_t i = 0; i < n; i++) { const float d = x[i] - mean; vs += d * d; }
    const float inv = 1.0f / sqrtf(vs / (float)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] - mean) * inv * w[i] + bias[i];
}

void rk_layer_norm(const float *x, const float *w, const float *bias, float eps, float *out, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) { layer_norm_avx512(x, w, bias, eps, out, n); return; }
    if (rk_simd_level() >= 1) { layer_norm_avx2(x, w, bias, eps, out, n); return; }
#endif
    layer_norm_scalar(x, w, bias, eps, out, n);
}

void rk_wkv_output(float *y, const float *r, const float *k, const float *v, const float *g, const float *rk,
                   const float *w, const float *bias, float eps, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) { wkv_output_avx512(y, r, k, v, g, rk, w, bias, eps, n); return; }
    if (rk_simd_level() >= 1) { wkv_output_avx2(y, r, k, v, g, rk, w, bias, eps, n); return; }
#endif
    float bonus = 0;
    for (int64_t i = 0; i < n; i++) bonus += r[i] * k[i] * rk[i];
    layer_norm_scalar(y, w, bias, eps, y, n);
    for (int64_t i = 0; i < n; i++) y[i] = (y[i] + bonus * v[i]) * g[i];
}

void rk_key_prep(float *k, const float *a, const float *kK, const float *kA, float *kk, int H, int N) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) { key_prep_avx512(k, a, kK, kA, kk, H, N); return; }
    if (rk_simd_level() >= 1) { key_prep_avx2(k, a, kK, kA, kk, H, N); return; }
#endif
    for (int h = 0; h < H; h++) {
        const int64_t o = (int64_t)h * N;
        float ss = 0;
        for (int j = 0; j < N; j++) { const float p = k[o + j] * kK[o + j]; kk[o + j] = p; ss += p * p; }
        const float norm = sqrtf(ss), inv = 1.0f / (norm > 1e-12f ? norm : 1e-12f);
        for (int j = 0; j < N; j++) kk[o + j] *= inv;
    }
    for (int64_t i = 0; i < (int64_t)H * N; i++) k[i] *= 1.0f + (a[i] - 1.0f) * kA[i];
}

#ifdef RK_X86
A512 static double sum_squares_avx512(const float *x, int64_t n) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        s0 = _mm512_fmadd_pd(lo, lo, s0);
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}
#endif

double rk_sum_squares(const float *x, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 2) return sum_squares_avx512(x, n);
#endif
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

static uint16_t f32_to_f16_scalar(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)half;
}

void rk_f32_to_f16(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = f32_to_f16_scalar(src[i]);
}

void rk_f32_to_bf16(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t x; memcpy(&x, &src[i], 4);
        if ((x & 0x7fffffff) > 0x7f800000) { dst[i] = (uint16_t)((x >> 16) | 0x40); continue; }
        x += 0x7fff + ((x >> 16) & 1);
        dst[i] = (uint16_t)(x >> 16);
    }
}

#ifdef RK_X86
AVX2 static float sum_avx2(const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += x[i];
    return s;
}
#endif

float rk_sum_f32(const float *x, int64_t n) {
#ifdef RK_X86
    if (rk_simd_level() >= 1) return sum_avx2(x, n);
#endif
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}
