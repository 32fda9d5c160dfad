// ggml's block-quantised weight formats, kept quantised in memory: dequantisation and the matrix–vector
// products over them. The GEMM (gemm.c) dequantises a tile while packing it, through rk_dequant_blocks.
//
// Block layouts (little-endian; "f16" is an IEEE half; a block covers `elems` consecutive weights of
// one row, so a row of n weights is n / elems blocks):
//   Q8_0  34 B / 32:  f16 d, int8 q[32];                      w = q · d
//   Q4_0  18 B / 32:  f16 d, u8 qs[16];                       w = d · (q − 8)
//   Q4_1  20 B / 32:  f16 d, f16 m, u8 qs[16];                w = d · q + m
//   Q5_0  22 B / 32:  f16 d, u32 qh, u8 qs[16];               w = d · (q − 16)
//   Q5_1  24 B / 32:  f16 d, f16 m, u32 qh, u8 qs[16];        w = d · q + m
//     4-bit q of weight j: j < 16 the low nibble of qs[j], else the high nibble of qs[j − 16];
//     the fifth bit (Q5_x) is bit j of qh.
//   Q4_K 144 B / 256: f16 d, f16 dmin, u8 scales[12], u8 qs[128];
//   Q5_K 176 B / 256: f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128];
//     eight sub-blocks of 32 with 6-bit scale s and min m each, packed in `scales` (below);
//     w = (d · s) · q − (dmin · m). Sub-blocks 2g and 2g+1 take the low and high nibbles of
//     qs[32g .. 32g+32); Q5_K's fifth bit of weight l of sub-block i is bit i of qh[l].
//   Q6_K 210 B / 256: u8 ql[128], u8 qh[64], int8 scales[16], f16 d;
//     weight e = 128h + 32t + l (h < 2, t < 4, l < 32): low 4 bits are ql[64h + 32(t mod 2) + l]
//     shifted right by 4 when t ≥ 2, high 2 bits are qh[32h + l] >> 2t; q is that minus 32;
//     w = (d · scales[e / 16]) · q.
// Each formula is evaluated as written in fp32 (the scale products rounded first, no fused
// multiply–add), which is what the `gguf` Python package's numpy dequantiser computes, so the
// results match it bit for bit (checked by the tests against fixtures made with that package).
#include "rwkv_kernels.h"
#include "scalar.h"
#include "quant_vnni.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define RK_X86 1
#endif

#pragma STDC FP_CONTRACT OFF

#define Q_INLINE static inline __attribute__((always_inline))

int rk_block_elems(int dtype) {
    switch (dtype) {
    case RK_F32: case RK_F16: case RK_BF16: return 1;
    case RK_Q8_0: case RK_Q4_0: case RK_Q4_1: case RK_Q5_0: case RK_Q5_1: return 32;
    case RK_Q4_K: case RK_Q5_K: case RK_Q6_K: return 256;
    default: return 0;
    }
}

int rk_block_bytes(int dtype) {
    switch (dtype) {
    case RK_F32: return 4;
    case RK_F16: case RK_BF16: return 2;
    case RK_Q8_0: return 34;
    case RK_Q4_0: return 18;
    case RK_Q4_1: return 20;
    case RK_Q5_0: return 22;
    case RK_Q5_1: return 24;
    case RK_Q4_K: return 144;
    case RK_Q5_K: return 176;
    case RK_Q6_K: return 210;
    default: return 0;
    }
}

Q_INLINE float q_half(const uint8_t *p) { return rk_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

Q_INLINE void dq_q8_0(const uint8_t *b, float *y) {
    const float d = q_half(b);
    const int8_t *q = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)q[j] * d;
}

// Q4_0 / Q4_1 / Q5_0 / Q5_1 share the nibble layout: after d (and m for the _1 types, then qh for
// Q5_x) come 16 bytes of nibbles, so a block is q4q5_nibbles_at + 16 bytes; the _0 types subtract
// q4q5_offset from q (Q4_0 8, Q5_0 16), the _1 types add m instead.
Q_INLINE int q4q5_nibbles_at(const int has_min, const int bits5) { return (has_min ? 4 : 2) + (bits5 ? 4 : 0); }
Q_INLINE int q4q5_offset(const int has_min, const int bits5) { return has_min ? 0 : (bits5 ? 16 : 8); }

Q_INLINE void dq_q4q5(const uint8_t *b, float *y, const int has_min, const int bits5) {
    const float d = q_half(b);
    const float m = has_min ? q_half(b + 2) : 0.0f;
    const uint8_t *p = b + (has_min ? 4 : 2);
    uint32_t qh = 0;
    if (bits5) { qh = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); p += 4; }
    const int offset = q4q5_offset(has_min, bits5);
    for (int j = 0; j < 16; j++) {
        int lo = p[j] & 15, hi = p[j] >> 4;
        if (bits5) { lo |= (int)((qh >> j) & 1) << 4; hi |= (int)((qh >> (j + 16)) & 1) << 4; }
        if (has_min) {
            y[j] = d * (float)lo + m;
            y[j + 16] = d * (float)hi + m;
        } else {
            y[j] = d * (float)(lo - offset);
            y[j + 16] = d * (float)(hi - offset);
        }
    }
}

// The eight 6-bit (scale, min) pairs of a Q4_K / Q5_K super-block: pairs 0–3 are the low six bits of
// bytes 0–3 and 4–7; pairs 4–7 take their low four bits from bytes 8–11 (scale low nibble, min high
// nibble) and their top two from the spare high bits of bytes 0–3 (scales) and 4–7 (mins).
Q_INLINE void k_scale_min(const uint8_t *s, int i, int *sc, int *mn) {
    if (i < 4) { *sc = s[i] & 63; *mn = s[i + 4] & 63; }
    else {
        *sc = (s[i + 4] & 15) | ((s[i - 4] >> 6) << 4);
        *mn = (s[i + 4] >> 4) | ((s[i] >> 6) << 4);
    }
}

Q_INLINE void dq_q4k_q5k(const uint8_t *b, float *y, const int bits5) {
    const float d = q_half(b), dmin = q_half(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + (bits5 ? 48 : 16);
    for (int g = 0; g < 4; g++) {
        int s0, m0, s1, m1;
        k_scale_min(scales, 2 * g, &s0, &m0);
        k_scale_min(scales, 2 * g + 1, &s1, &m1);
        const float d0 = d * (float)s0, dm0 = dmin * (float)m0;
        const float d1 = d * (float)s1, dm1 = dmin * (float)m1;
        const uint8_t *q = qs + 32 * g;
        float *y0 = y + 64 * g, *y1 = y0 + 32;
        for (int l = 0; l < 32; l++) {
            int lo = q[l] & 15, hi = q[l] >> 4;
            if (bits5) { lo |= ((qh[l] >> (2 * g)) & 1) << 4; hi |= ((qh[l] >> (2 * g + 1)) & 1) << 4; }
            y0[l] = d0 * (float)lo - dm0;
            y1[l] = d1 * (float)hi - dm1;
        }
    }
}

Q_INLINE void dq_q6k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = q_half(b + 208);
    for (int h = 0; h < 2; h++) {
        for (int t = 0; t < 4; t++) {
            const uint8_t *lo = ql + 64 * h + 32 * (t & 1), *hi = qh + 32 * h;
            const int shift = t >= 2 ? 4 : 0;
            const int e0 = 128 * h + 32 * t;
            const float dA = d * (float)sc[e0 / 16], dB = d * (float)sc[e0 / 16 + 1];
            for (int l = 0; l < 32; l++) {
                const int q = (((lo[l] >> shift) & 15) | (((hi[l] >> (2 * t)) & 3) << 4)) - 32;
                y[e0 + l] = (l < 16 ? dA : dB) * (float)q;
            }
        }
    }
}

// nb consecutive blocks of a quantised type to fp32. Written once as plain C and compiled for each
// instruction set below, so the compiler vectorises it with that set's registers.
Q_INLINE void dq_impl(const int dtype, const uint8_t *src, float *dst, int64_t nb) {
    switch (dtype) {
    case RK_Q8_0: for (int64_t i = 0; i < nb; i++) dq_q8_0(src + 34 * i, dst + 32 * i); break;
    case RK_Q4_0: for (int64_t i = 0; i < nb; i++) dq_q4q5(src + 18 * i, dst + 32 * i, 0, 0); break;
    case RK_Q4_1: for (int64_t i = 0; i < nb; i++) dq_q4q5(src + 20 * i, dst + 32 * i, 1, 0); break;
    case RK_Q5_0: for (int64_t i = 0; i < nb; i++) dq_q4q5(src + 22 * i, dst + 32 * i, 0, 1); break;
    case RK_Q5_1: for (int64_t i = 0; i < nb; i++) dq_q4q5(src + 24 * i, dst + 32 * i, 1, 1); break;
    case RK_Q4_K: for (int64_t i = 0; i < nb; i++) dq_q4k_q5k(src + 144 * i, dst + 256 * i, 0); break;
    case RK_Q5_K: for (int64_t i = 0; i < nb; i++) dq_q4k_q5k(src + 176 * i, dst + 256 * i, 1); break;
    case RK_Q6_K: for (int64_t i = 0; i < nb; i++) dq_q6k(src + 210 * i, dst + 256 * i); break;
    default: break;
    }
}

// Weights dequantised per chunk of one row into an L1-resident buffer, then multiplied with each
// input vector: a chunk is one K-quant super-block or eight 32-blocks.
#define Q_CHUNK 256

static void dq_portable(int dtype, const uint8_t *src, float *dst, int64_t nb) { dq_impl(dtype, src, dst, nb); }

// Summation over each chunk, then across chunks.
static void qmatvec_portable(int dtype, const void *W, const float *x, float *y, int nvec, int64_t cols,
                             int64_t rows_total, int64_t rb, int64_t re) {
    const int64_t be = rk_block_elems(dtype), bb = rk_block_bytes(dtype), row_bytes = cols / be * bb;
    float buf[Q_CHUNK];
    for (int64_t r = rb; r < re; r++) {
        const uint8_t *row = (const uint8_t *)W + r * row_bytes;
        for (int v = 0; v < nvec; v++) y[(int64_t)v * rows_total + r] = 0.0f;
        for (int64_t k0 = 0; k0 < cols; k0 += Q_CHUNK) {
            const int64_t n = cols - k0 < Q_CHUNK ? cols - k0 : Q_CHUNK;
            dq_portable(dtype, row + k0 / be * bb, buf, n / be);
            for (int v = 0; v < nvec; v++) {
                const float *xv = x + (int64_t)v * cols + k0;
                float s = 0.0f;
                for (int64_t j = 0; j < n; j++) s += buf[j] * xv[j];
                y[(int64_t)v * rows_total + r] += s;
            }
        }
    }
}


// The int8-activation products (SIMD levels 3, AVX512-VNNI, and 1, AVX2), for one input vector:
// x is quantised to int8 once per call, symmetric per block of 32 (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1
// weights) or of 256 (the K-quants): d = max|x| / 127, q = round-to-nearest-even(x · 127 / max|x|),
// so x ≈ d · q. Each weight block is an integer q_w times a float scale (plus a float min for the _1
// types and Q4_K / Q5_K, an integer offset for Q4_0, Q5_0 and Q6_K), so w·x over a block or sub-block is (weight scale · d) · Σ q_w · q_x (exact in
// int32) plus the min or offset times Σ q_x: the only rounding beyond the fp32 path's is x's own
// quantisation (relative error about 1/254 of each block's largest |x|), the same trade llama.cpp
// makes. The scalar reference below computes exactly that; the VNNI kernels compute it with
// _mm512_dpbusd_epi32 (unsigned × signed bytes, four products summed per int32 lane), the AVX2 ones
// with _mm256_maddubs_epi16 and _mm256_madd_epi16.

// x[0, n) in blocks of `blk`: q the int8 values, d one scale per block.
static void act_quant_portable(const float *x, int64_t n, int blk, int8_t *q, float *d) {
    for (int64_t b = 0; b < n / blk; b++) {
        const float *xb = x + b * blk;
        float amax = 0.0f;
        for (int j = 0; j < blk; j++) { const float a = fabsf(xb[j]); amax = a > amax ? a : amax; }
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        d[b] = amax / 127.0f;
        for (int j = 0; j < blk; j++) q[b * blk + j] = (int8_t)nearbyintf(xb[j] * id);
    }
}

int rk_qmatvec_int8_ref(int dtype, const void *W, const float *x, float *y, int64_t cols, int64_t rb, int64_t re) {
    if (dtype < RK_Q8_0 || dtype > RK_Q6_K) return 0;
    const int64_t be = rk_block_elems(dtype), bb = rk_block_bytes(dtype), nb = cols / be;
    int8_t *xq = malloc((size_t)cols);
    float *xd = malloc(sizeof(float) * (size_t)nb);
    act_quant_portable(x, cols, (int)be, xq, xd);
    for (int64_t r = rb; r < re; r++) {
        const uint8_t *p = (const uint8_t *)W + r * nb * bb;
        float acc = 0.0f;
        for (int64_t b = 0; b < nb; b++, p += bb) {
            const int8_t *qx = xq + b * be;
            if (dtype == RK_Q8_0) {
                int32_t s = 0;
                for (int j = 0; j < 32; j++) s += (int32_t)(int8_t)p[2 + j] * qx[j];
                acc += q_half(p) * xd[b] * (float)s;
            } else if (dtype == RK_Q4_0 || dtype == RK_Q4_1 || dtype == RK_Q5_0 || dtype == RK_Q5_1) {
                // w = d · q − d · offset (Q4_0 8, Q5_0 16) or d · q + m; q the nibble (j < 16 the low
                // one of qs[j], else the high one of qs[j − 16]) plus, for Q5_x, bit j of qh times 16.
                const int has_min = dtype == RK_Q4_1 || dtype == RK_Q5_1, bits5 = dtype == RK_Q5_0 || dtype == RK_Q5_1;
                const uint8_t *qs = p + q4q5_nibbles_at(has_min, bits5);
                uint32_t qh = 0;
                if (bits5) memcpy(&qh, qs - 4, 4);
                int32_t s = 0, sx = 0;
                for (int j = 0; j < 32; j++) {
                    const int q = ((j < 16 ? qs[j] : qs[j - 16] >> 4) & 15) | (bits5 ? (int)((qh >> j) & 1) << 4 : 0);
                    s += q * qx[j];
                    sx += qx[j];
                }
                const float d = q_half(p) * xd[b];
                if (has_min) acc += d * (float)s + q_half(p + 2) * xd[b] * (float)sx;
                else acc += d * (float)(s - q4q5_offset(has_min, bits5) * sx);
            } else if (dtype == RK_Q6_K) {
                // Per 16 weights: scale sc[e / 16], q = 6-bit value − 32.
                const int8_t *sc = (const int8_t *)(p + 192);
                const float d = q_half(p + 208) * xd[b];
                for (int j = 0; j < 16; j++) {
                    int32_t s = 0, sx = 0;
                    for (int e = 16 * j; e < 16 * j + 16; e++) {
                        const int h = e / 128, t = e % 128 / 32, l = e % 32;
                        const int q = ((p[64 * h + 32 * (t & 1) + l] >> (t >= 2 ? 4 : 0)) & 15) | (((p[128 + 32 * h + l] >> (2 * t)) & 3) << 4);
                        s += q * qx[e];
                        sx += qx[e];
                    }
                    acc += d * (float)sc[j] * (float)(s - 32 * sx);
                }
            } else {
                // Q4_K / Q5_K: per sub-block i of 32, w = (d · s_i) · q − dmin · m_i.
                const int bits5 = dtype == RK_Q5_K;
                const float d = q_half(p) * xd[b], dmin = q_half(p + 2) * xd[b];
                const uint8_t *qh = p + 16, *qs = p + (bits5 ? 48 : 16);
                for (int i = 0; i < 8; i++) {
                    int sc, mn;
                    k_scale_min(p + 4, i, &sc, &mn);
                    int32_t s = 0, sx = 0;
                    for (int l = 0; l < 32; l++) {
                        int q = (qs[32 * (i / 2) + l] >> (4 * (i & 1))) & 15;
                        if (bits5) q |= ((qh[l] >> i) & 1) << 4;
                        s += q * qx[32 * i + l];
                        sx += qx[32 * i + l];
                    }
                    acc += d * (float)sc * (float)s - dmin * (float)mn * (float)sx;
                }
            }
        }
        y[r] = acc;
    }
    free(xq);
    free(xd);
    return 1;
}

#ifdef RK_X86
#define Q_AVX2 __attribute__((target("avx2,fma,f16c")))
#define Q_A5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

Q_AVX2 static void dq_avx2(int dtype, const uint8_t *src, float *dst, int64_t nb) { dq_impl(dtype, src, dst, nb); }
Q_A5 static void dq_avx512(int dtype, const uint8_t *src, float *dst, int64_t nb) { dq_impl(dtype, src, dst, nb); }

Q_AVX2 static inline __attribute__((always_inline)) float q_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

// Up to four vectors per pass over the rows; chunk lengths are multiples of 32.
Q_AVX2 static void qmatvec_avx2(int dtype, const void *W, const float *x, float *y, int nvec, int64_t cols,
                                int64_t rows_total, int64_t rb, int64_t re) {
    const int64_t be = rk_block_elems(dtype), bb = rk_block_bytes(dtype), row_bytes = cols / be * bb;
    float buf[Q_CHUNK] __attribute__((aligned(32)));
    for (int v0 = 0; v0 < nvec; v0 += 4) {
        const int nv = nvec - v0 < 4 ? nvec - v0 : 4;
        for (int64_t r = rb; r < re; r++) {
            const uint8_t *row = (const uint8_t *)W + r * row_bytes;
            __m256 a[4][2];
            for (int q = 0; q < 4; q++) { a[q][0] = _mm256_setzero_ps(); a[q][1] = _mm256_setzero_ps(); }
            for (int64_t k0 = 0; k0 < cols; k0 += Q_CHUNK) {
                const int64_t n = cols - k0 < Q_CHUNK ? cols - k0 : Q_CHUNK;
                dq_impl(dtype, row + k0 / be * bb, buf, n / be);
                for (int q = 0; q < nv; q++) {
                    const float *xv = x + (int64_t)(v0 + q) * cols + k0;
                    for (int64_t j = 0; j < n; j += 16) {
                        a[q][0] = _mm256_fmadd_ps(_mm256_load_ps(buf + j), _mm256_loadu_ps(xv + j), a[q][0]);
                        a[q][1] = _mm256_fmadd_ps(_mm256_load_ps(buf + j + 8), _mm256_loadu_ps(xv + j + 8), a[q][1]);
                    }
                }
            }
            for (int q = 0; q < nv; q++) y[(int64_t)(v0 + q) * rows_total + r] = q_hsum8(_mm256_add_ps(a[q][0], a[q][1]));
        }
    }
}

// Fused AVX-512 kernels for one input vector (decoding):
// the weights are widened in registers and never stored, and each block's (or sub-block's) scale is
// applied once to its partial sums, w·x summed as d·Σq·x (− dmin·m·Σx for the K-quants' minimums).
// That regrouping changes only the fp32 rounding, not what is computed. Two accumulators per row
// halve the dependency chain through the adds.

Q_A5 static inline __attribute__((always_inline)) __m512 z_bytes_i8(const uint8_t *p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p))); }
Q_A5 static inline __attribute__((always_inline)) __m512i z_bytes_u8(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
Q_A5 static inline float z_half(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | (p[1] << 8))); }

Q_A5 static float q8_0_row_avx512(const uint8_t *p, const float *x, int64_t nb) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, p += 68, x += 64) {
        __m512 s0 = _mm512_mul_ps(z_bytes_i8(p + 2), _mm512_loadu_ps(x));
        s0 = _mm512_fmadd_ps(z_bytes_i8(p + 18), _mm512_loadu_ps(x + 16), s0);
        __m512 s1 = _mm512_mul_ps(z_bytes_i8(p + 36), _mm512_loadu_ps(x + 32));
        s1 = _mm512_fmadd_ps(z_bytes_i8(p + 52), _mm512_loadu_ps(x + 48), s1);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(z_half(p)), s0, a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(z_half(p + 34)), s1, a1);
    }
    if (b < nb) {
        __m512 s0 = _mm512_mul_ps(z_bytes_i8(p + 2), _mm512_loadu_ps(x));
        s0 = _mm512_fmadd_ps(z_bytes_i8(p + 18), _mm512_loadu_ps(x + 16), s0);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(z_half(p)), s0, a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// xs[i] is the sum of x over sub-block i (computed once per call): the minimums' term is then one
// scalar multiply–add per 32 weights.
Q_A5 static float q4k_q5k_row_avx512(const uint8_t *p, const float *x, const float *xs, int64_t nb, const int bits5) {
    const __m512i low4 = _mm512_set1_epi32(15), five = _mm512_set1_epi32(16);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    float mins = 0.0f;
    for (int64_t b = 0; b < nb; b++, p += bits5 ? 176 : 144, x += 256, xs += 8) {
        const float d = z_half(p), dmin = z_half(p + 2);
        const uint8_t *scales = p + 4, *qh = p + 16, *qs = p + (bits5 ? 48 : 16);
        for (int g = 0; g < 4; g++) {
            int s0, m0, s1, m1;
            k_scale_min(scales, 2 * g, &s0, &m0);
            k_scale_min(scales, 2 * g + 1, &s1, &m1);
            const float *x0 = x + 64 * g, *x1 = x0 + 32;
            __m512 dot0, dot1;
            for (int h = 0; h < 32; h += 16) {
                const __m512i q = z_bytes_u8(qs + 32 * g + h);
                __m512i lo = _mm512_and_si512(q, low4), hi = _mm512_srli_epi32(q, 4);
                if (bits5) {
                    const __m512i hb = z_bytes_u8(qh + h);
                    lo = _mm512_mask_or_epi32(lo, _mm512_test_epi32_mask(hb, _mm512_set1_epi32(1 << (2 * g))), lo, five);
                    hi = _mm512_mask_or_epi32(hi, _mm512_test_epi32_mask(hb, _mm512_set1_epi32(2 << (2 * g))), hi, five);
                }
                if (h == 0) {
                    dot0 = _mm512_mul_ps(_mm512_cvtepi32_ps(lo), _mm512_loadu_ps(x0));
                    dot1 = _mm512_mul_ps(_mm512_cvtepi32_ps(hi), _mm512_loadu_ps(x1));
                } else {
                    dot0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), _mm512_loadu_ps(x0 + h), dot0);
                    dot1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_loadu_ps(x1 + h), dot1);
                }
            }
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(d * (float)s0), dot0, a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(d * (float)s1), dot1, a1);
            mins += dmin * (float)m0 * xs[2 * g] + dmin * (float)m1 * xs[2 * g + 1];
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) - mins;
}

Q_A5 static float q6k_row_avx512(const uint8_t *p, const float *x, int64_t nb) {
    const __m512i low4 = _mm512_set1_epi32(15), two = _mm512_set1_epi32(3), off = _mm512_set1_epi32(32);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, p += 210, x += 256) {
        const int8_t *sc = (const int8_t *)(p + 192);
        const float d = z_half(p + 208);
        for (int h = 0; h < 2; h++) {
            for (int t = 0; t < 4; t++) {
                const uint8_t *lo = p + 64 * h + 32 * (t & 1), *hi = p + 128 + 32 * h;
                const int e0 = 128 * h + 32 * t;
                for (int l = 0; l < 32; l += 16) {
                    __m512i q = z_bytes_u8(lo + l);
                    if (t >= 2) q = _mm512_srli_epi32(q, 4);
                    q = _mm512_and_si512(q, low4);
                    const __m512i qhv = _mm512_and_si512(_mm512_srli_epi32(z_bytes_u8(hi + l), 2 * t), two);
                    q = _mm512_sub_epi32(_mm512_or_si512(q, _mm512_slli_epi32(qhv, 4)), off);
                    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(q), _mm512_loadu_ps(x + e0 + l));
                    if (l == 0) a0 = _mm512_fmadd_ps(_mm512_set1_ps(d * (float)sc[(e0 + l) / 16]), v, a0);
                    else a1 = _mm512_fmadd_ps(_mm512_set1_ps(d * (float)sc[(e0 + l) / 16]), v, a1);
                }
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// Q4_0, Q4_1, Q5_0, Q5_1: w = d·q − d·offset (the _0 types) or d·q + m (the _1 types), so
// Σw·x = d·Σq·x + (m or −d·offset)·Σx with xs[b] = Σx over block b. The fifth bits (Q5) are
// AVX-512 masks straight from qh.
Q_A5 static float q4q5_row_avx512(const uint8_t *p, const float *x, const float *xs, int64_t nb, const int has_min,
                                   const int bits5) {
    const __m512i low4 = _mm512_set1_epi32(15), five = _mm512_set1_epi32(16);
    const int64_t stride = q4q5_nibbles_at(has_min, bits5) + 16;
    const float offset = (float)q4q5_offset(has_min, bits5);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    float corr = 0.0f;
    for (int64_t b = 0; b < nb; b++, p += stride, x += 32) {
        const float d = z_half(p);
        const uint8_t *q = p + (has_min ? 4 : 2);
        uint32_t qh = 0;
        if (bits5) { memcpy(&qh, q, 4); q += 4; }
        const __m512i v = z_bytes_u8(q);
        __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_srli_epi32(v, 4);
        if (bits5) {
            lo = _mm512_mask_or_epi32(lo, (__mmask16)(qh & 0xFFFF), lo, five);
            hi = _mm512_mask_or_epi32(hi, (__mmask16)(qh >> 16), hi, five);
        }
        __m512 dot = _mm512_mul_ps(_mm512_cvtepi32_ps(lo), _mm512_loadu_ps(x));
        dot = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_loadu_ps(x + 16), dot);
        if (b & 1) a1 = _mm512_fmadd_ps(_mm512_set1_ps(d), dot, a1);
        else a0 = _mm512_fmadd_ps(_mm512_set1_ps(d), dot, a0);
        corr += (has_min ? z_half(p + 2) : -d * offset) * xs[b];
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + corr;
}

/// One input vector over rows [rb, re) with a fused kernel; 0 when the type has none (the caller then
/// takes the general path).
Q_A5 static int qmatvec1_fused_avx512(int dtype, const void *W, const float *x, float *y, int64_t cols, int64_t rb, int64_t re) {
    const int64_t be = rk_block_elems(dtype), bb = rk_block_bytes(dtype), nb = cols / be, row_bytes = nb * bb;
    const uint8_t *base = (const uint8_t *)W;
    switch (dtype) {
    case RK_Q8_0: for (int64_t r = rb; r < re; r++) y[r] = q8_0_row_avx512(base + r * row_bytes, x, nb); return 1;
    case RK_Q4_0: case RK_Q4_1: case RK_Q5_0: case RK_Q5_1: case RK_Q4_K: case RK_Q5_K: {
        // Sums of x per 32 weights, on the stack: rows of up to 64Ki weights (wider ones take the
        // general path).
        if (cols > 65536) return 0;
        float xs[2048];
        for (int64_t i = 0; i < cols / 32; i++) {
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(x + 32 * i), _mm512_loadu_ps(x + 32 * i + 16));
            xs[i] = _mm512_reduce_add_ps(v);
        }
        const int has_min = dtype == RK_Q4_1 || dtype == RK_Q5_1, bits5 = dtype == RK_Q5_0 || dtype == RK_Q5_1;
        for (int64_t r = rb; r < re; r++)
            y[r] = dtype == RK_Q4_K || dtype == RK_Q5_K
                 ? q4k_q5k_row_avx512(base + r * row_bytes, x, xs, nb, dtype == RK_Q5_K)
                 : q4q5_row_avx512(base + r * row_bytes, x, xs, nb, has_min, bits5);
        return 1;
    }
    case RK_Q6_K: for (int64_t r = rb; r < re; r++) y[r] = q6k_row_avx512(base + r * row_bytes, x, nb); return 1;
    default: return 0;
    }
}

// The int8-activation kernels (see rk_qmatvec_int8_ref for the arithmetic). dpbusd multiplies
// unsigned weight bytes by signed activation bytes: the 4-, 5- and 6-bit values are unsigned already
// (offsets such as Q6_K's −32 or Q4_0's −8 are applied through Σ q_x), and Q8_0's signed values are
// offset by 128 (a xor of the top bit), the accumulator starting from −128 · Σ q_x per group of four
// (xc, made with x).
#define Q_VN __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

// Quantises x[0, n) in blocks of 32 (blk 32) or 256: the same values as act_quant_portable. For
// blocks of 32 also xc[i] = −128 · Σ q[4i .. 4i+4); for 256, s16[j] = Σ q over the j-th 16 (as floats,
// and as int16 in s16i: |Σ| ≤ 16 · 127).
Q_VN static void act_quant_vnni(const float *x, int64_t n, const int blk, int8_t *q, float *d, int32_t *xc, float *s16,
                                int16_t *s16i) {
    for (int64_t b = 0; b < n / blk; b++) {
        const float *xb = x + b * blk;
        __m512 m = _mm512_setzero_ps();
        for (int j = 0; j < blk; j += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(xb + j)));
        const float amax = _mm512_reduce_max_ps(m);
        const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        d[b] = amax / 127.0f;
        for (int j = 0; j < blk; j += 16) {
            const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + j), id));
            _mm_storeu_si128((__m128i *)(q + b * blk + j), _mm512_cvtepi32_epi8(v));
            if (s16) {
                const int sum = _mm512_reduce_add_epi32(v);
                s16[(b * blk + j) / 16] = (float)sum;
                s16i[(b * blk + j) / 16] = (int16_t)sum;
            }
        }
        if (xc) {
            const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)0x80),
                                                  _mm256_loadu_si256((const __m256i *)(q + b * blk)));
            _mm256_storeu_si256((__m256i *)(xc + b * 8), _mm256_sub_epi32(_mm256_setzero_si256(), s));
        }
    }
}

// Q8_0, two blocks per 512-bit step: lanes 0–7 hold block b's eight partial sums, lanes 8–15 block
// b+1's. The scales of up to sixteen blocks come in one gather (a block's f16 d opens its 34 bytes),
// times x's, and each step picks its two by a permute.
Q_VN static float q8_0_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const int32_t *xc, int64_t nb) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32(34));
    const __m512i pair = _mm512_srli_epi32(lane, 3);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    float tail = 0.0f;
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int n = nb - b0 < 16 ? (int)(nb - b0) : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        const uint8_t *pb = p + 34 * b0;
        const __m512i dh = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, pb, 1);
        const __m512 sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(dh)), _mm512_maskz_loadu_ps(m, xd + b0));
        int k = 0;
        for (; k + 2 <= n; k += 2) {
            const uint8_t *q = pb + 34 * k;
            const int64_t b = b0 + k;
            const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q + 2))),
                                                 _mm256_loadu_si256((const __m256i *)(q + 36)), 1);
            const __m512i s = _mm512_dpbusd_epi32(_mm512_loadu_si512(xc + 8 * b), _mm512_xor_si512(w, flip), _mm512_loadu_si512(xq + 32 * b));
            const __m512 scale = _mm512_permutexvar_ps(_mm512_add_epi32(pair, _mm512_set1_epi32(k)), sc);
            if (k & 2) a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, a1);
            else a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, a0);
        }
        if (k < n) {
            const uint8_t *q = pb + 34 * k;
            const int64_t b = b0 + k;
            const __m256i w = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + 2)), _mm512_castsi512_si256(flip));
            const __m256i s = _mm256_dpbusd_epi32(_mm256_loadu_si256((const __m256i *)(xc + 8 * b)), w, _mm256_loadu_si256((const __m256i *)(xq + 32 * b)));
            tail += z_half(q) * xd[b] * (float)_mm512_reduce_add_epi32(_mm512_zextsi256_si512(s));
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + tail;
}

// K-quant scales and minimums (k_scale_min) for all eight sub-blocks at once, four bytes to a word:
// 0–3 are the low six bits of words 0 (scales) and 1 (minimums), 4–7 the nibbles of word 2 below the
// top two bits of words 0 and 1. Each result holds the eight 6-bit values as bytes.
Q_INLINE void k_scales_mins8(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    uint32_t u[3];
    memcpy(u, s, 12);
    *sc = (uint64_t)(u[0] & 0x3f3f3f3f) | (uint64_t)((u[2] & 0x0f0f0f0f) | ((u[0] >> 2) & 0x30303030)) << 32;
    *mn = (uint64_t)(u[1] & 0x3f3f3f3f) | (uint64_t)(((u[2] >> 4) & 0x0f0f0f0f) | ((u[1] >> 2) & 0x30303030)) << 32;
}

// Q4_K: 32 bytes of qs hold sub-blocks 2g (low nibbles) and 2g+1 (high nibbles), i.e. the 64 weights
// 64g .. 64g+64 in order once broadcast to both halves, the low nibbles kept in the lower half and the
// high ones left in place in the upper (16·q, the 1/16 folded into that sub-block's scale, exactly).
// Lanes 0–7 of the product are sub-block 2g's, lanes 8–15 sub-block 2g+1's, each scaled by its
// d · s_i · d_x (picked from the eight by a permute); the minimums' term, dmin · m_i · d_x · Σ q_x,
// gathers in its own vector. xs holds Σ q_x per 16 (two per sub-block).
Q_VN static float q4k_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const float *xs, int64_t nb) {
    const __m512i nibbles = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi8(15), _mm512_set1_epi8((char)0xF0));
    const __m512i half = _mm512_mask_blend_epi32(0xFF00, _mm512_setzero_si512(), _mm512_set1_epi32(1));
    const __m512i pairs = _mm512_srli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 1);
    const __m256 odd16 = _mm256_set_ps(0.0625f, 1, 0.0625f, 1, 0.0625f, 1, 0.0625f, 1);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), am = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, p += 144, xq += 256, xs += 16) {
        const float d = z_half(p) * xd[b], dmin = z_half(p + 2) * xd[b];
        uint64_t sc, mn;
        k_scales_mins8(p + 4, &sc, &mn);
        const __m512 sf = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc))), _mm256_set1_ps(d)), odd16));
        const __m512 mf = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn))), _mm256_set1_ps(dmin)));
        // Σ q_x per 16, each times its sub-block's minimum.
        am = _mm512_fmadd_ps(_mm512_permutexvar_ps(pairs, mf), _mm512_loadu_ps(xs), am);
        for (int g = 0; g < 4; g++) {
            const __m512i v = _mm512_and_si512(_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16 + 32 * g))), nibbles);
            const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, _mm512_loadu_si512(xq + 64 * g));
            const __m512 scale = _mm512_permutexvar_ps(_mm512_add_epi32(half, _mm512_set1_epi32(2 * g)), sf);
            if (g & 1) a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, a1);
            else a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, a0);
        }
    }
    return _mm512_reduce_add_ps(_mm512_sub_ps(_mm512_add_ps(a0, a1), am));
}

// Q5_K: as Q4_K, but the high nibbles are shifted down and the fifth bits added (bit i of qh[l] for
// weight l of sub-block i), and the scales are applied in integers, as Q6_K's below: a sub-block's
// partial sums fit int16 (4 · 31 · 127), so the products of groups g and g+1 are packed to int16 and
// multiplied by the scales in pairs (dpwssd); packs_epi32 puts, per 128-bit lane k, group g's lanes
// 4k..4k+4 (sub-block 2g + k/2) before group g+1's (sub-block 2g+2 + k/2).
static const int16_t q5k_scale_index[2][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3},
    {4, 4, 4, 4, 6, 6, 6, 6, 4, 4, 4, 4, 6, 6, 6, 6, 5, 5, 5, 5, 7, 7, 7, 7, 5, 5, 5, 5, 7, 7, 7, 7},
};

Q_VN static float q5k_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const float *xs, int64_t nb) {
    const __m512i low4 = _mm512_set1_epi8(15), sixteen = _mm512_set1_epi8(16);
    const __m512i index0 = _mm512_load_si512(q5k_scale_index[0]), index1 = _mm512_load_si512(q5k_scale_index[1]);
    const __m512i pairs = _mm512_srli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 1);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), am = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, p += 176, xq += 256, xs += 16) {
        const float d = z_half(p) * xd[b], dmin = z_half(p + 2) * xd[b];
        uint64_t sc, mn;
        k_scales_mins8(p + 4, &sc, &mn);
        const __m512i scz = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
        const __m512 mf = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn))), _mm256_set1_ps(dmin)));
        am = _mm512_fmadd_ps(_mm512_permutexvar_ps(pairs, mf), _mm512_loadu_ps(xs), am);
        const uint8_t *qs = p + 48;
        const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16)));
        __m512i acc = _mm512_setzero_si512(), prev = _mm512_setzero_si512();
        for (int g = 0; g < 4; g++) {
            __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * g)));
            v = _mm512_and_si512(_mm512_mask_blend_epi64(0xF0, v, _mm512_srli_epi16(v, 4)), low4);
            const __m512i bit = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi8((char)(1 << (2 * g))), _mm512_set1_epi8((char)(2 << (2 * g))));
            v = _mm512_mask_add_epi8(v, _mm512_test_epi8_mask(hb, bit), v, sixteen);
            const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, _mm512_loadu_si512(xq + 64 * g));
            if (g & 1) acc = _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(prev, s), _mm512_permutexvar_epi16(g == 1 ? index0 : index1, scz));
            else prev = s;
        }
        if (b & 1) a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(d), a1);
        else a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(d), a0);
    }
    return _mm512_reduce_add_ps(_mm512_sub_ps(_mm512_add_ps(a0, a1), am));
}

// Q6_K: 64 bytes of ql at 64h hold weights 128h .. 128h+64 in their low nibbles and 128h+64 ..
// 128h+128 in their high ones; the 32 bytes of qh at 32h give each its top two bits (shifted by 0, 2,
// 4, 6 for t = 0..3, moved to bits 4–5 here with byte masks). Lane i of a 64-weight product covers
// weights 4i .. 4i+4, so its scale is sc[4c + i/4]. Those sums fit int16 (4 · 63 · 127), so the
// scales are applied in integers: the two products of a half packed to int16 and multiplied by the
// int16 scales in pairs (dpwssd), with −32 · Σ sc_j · Σ q_x over the j-th 16 (xs16) added in, and one
// conversion to float per super-block.
static const int16_t q6k_scale_index[2][32] __attribute__((aligned(64))) = {
    // packs_epi32(p0, p1) holds, per 128-bit lane k, p0's lanes 4k..4k+4 then p1's: scales 8h+k, 8h+4+k.
    {0, 0, 0, 0, 4, 4, 4, 4, 1, 1, 1, 1, 5, 5, 5, 5, 2, 2, 2, 2, 6, 6, 6, 6, 3, 3, 3, 3, 7, 7, 7, 7},
    {8, 8, 8, 8, 12, 12, 12, 12, 9, 9, 9, 9, 13, 13, 13, 13, 10, 10, 10, 10, 14, 14, 14, 14, 11, 11, 11, 11, 15, 15, 15, 15},
};

Q_VN static float q6k_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const int16_t *xs16, int64_t nb) {
    const __m512i low4 = _mm512_set1_epi8(15), top2 = _mm512_set1_epi8(0x30);
    const __m512i index0 = _mm512_load_si512(q6k_scale_index[0]), index1 = _mm512_load_si512(q6k_scale_index[1]);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, p += 210, xq += 256, xs16 += 16) {
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 192)));
        const __m512i scz = _mm512_castsi256_si512(sc);
        const __m256i off = _mm256_madd_epi16(sc, _mm256_loadu_si256((const __m256i *)xs16));
        __m512i acc = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5)));
        for (int h = 0; h < 2; h++) {
            const __m512i l = _mm512_loadu_si512(p + 64 * h);
            const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h)));
            const __m512i hh = _mm512_mask_blend_epi64(0xF0, _mm512_slli_epi16(hb, 2), hb);    // [qh << 2 | qh]
            // (l & 15) | top bits, as one ternary operation: (a & c) | b is 0xEC.
            const __m512i q0 = _mm512_ternarylogic_epi32(l, _mm512_and_si512(_mm512_slli_epi16(hh, 2), top2), low4, 0xEC);
            const __m512i q1 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), _mm512_and_si512(_mm512_srli_epi16(hh, 2), top2), low4, 0xEC);
            const __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q0, _mm512_loadu_si512(xq + 128 * h));
            const __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q1, _mm512_loadu_si512(xq + 128 * h + 64));
            acc = _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(s0, s1), _mm512_permutexvar_epi16(h ? index1 : index0, scz));
        }
        const float d = z_half(p + 208) * xd[b];
        if (b & 1) a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(d), a1);
        else a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(d), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// Q4_0, Q4_1, Q5_0, Q5_1, two blocks per 512-bit step: a block's 16 bytes of nibbles, broadcast to
// two 128-bit lanes, give its low nibbles (weights 0–15) in the first and its high ones (16–31) in
// the second, so the step's 64 bytes follow x. Q4_x keeps the high nibbles in place (16·q, the 1/16
// folded into the scale), Q5_x shifts them down and adds the fifth bits (bit j of qh is weight j's: a
// 64-bit mask for two blocks). Int32 lanes 0–3 are block b's low half, 4–7 its high half, 8–15 block
// b+1's. The scales (d, and m for the _1 types) of sixteen blocks come in gathers; the offset (−8 or
// −16 times d) or the minimum m multiplies Σ q_x per block (xsb), one vector step per sixteen blocks.
Q_VN Q_INLINE float q4q5_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const float *xsb, int64_t nb,
                                  const int has_min, const int bits5) {
    const int64_t qs_at = q4q5_nibbles_at(has_min, bits5), stride = qs_at + 16;
    const float offset = (float)q4q5_offset(has_min, bits5);
    const __m512i low4 = _mm512_set1_epi8(15), sixteen = _mm512_set1_epi8(16);
    const __m512i nibbles = _mm512_mask_blend_epi64(0xCC, low4, _mm512_set1_epi8((char)0xF0));
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)stride));
    // Lanes 0–3 take scale 2k, 4–7 the high-half scale 2k (second table), 8–11 2k+1, 12–15 high 2k+1.
    const __m512i pick = _mm512_set_epi32(17, 17, 17, 17, 1, 1, 1, 1, 16, 16, 16, 16, 0, 0, 0, 0);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), corr = _mm512_setzero_ps();
    float tail = 0.0f;
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int n = nb - b0 < 16 ? (int)(nb - b0) : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        const uint8_t *pb = p + stride * b0;
        const __m512 dx = _mm512_maskz_loadu_ps(m, xd + b0), sums = _mm512_maskz_loadu_ps(m, xsb + b0);
        const __m512 sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, pb, 1))), dx);
        const __m512 sch = bits5 ? sc : _mm512_mul_ps(sc, _mm512_set1_ps(0.0625f));
        if (has_min) {
            const __m512 mins = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, pb + 2, 1)));
            corr = _mm512_fmadd_ps(_mm512_mul_ps(mins, dx), sums, corr);
        } else {
            corr = _mm512_fmadd_ps(sc, sums, corr);
        }
        int k = 0;
        for (; k + 2 <= n; k += 2) {
            const uint8_t *qa = pb + stride * k;
            __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(qa + qs_at)))),
                                           _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(qa + stride + qs_at))), 1);
            if (bits5) {
                uint32_t ha, hb;
                memcpy(&ha, qa + qs_at - 4, 4);
                memcpy(&hb, qa + stride + qs_at - 4, 4);
                w = _mm512_and_si512(_mm512_mask_blend_epi64(0xCC, w, _mm512_srli_epi16(w, 4)), low4);
                w = _mm512_mask_add_epi8(w, _cvtu64_mask64((uint64_t)ha | (uint64_t)hb << 32), w, sixteen);
            } else {
                w = _mm512_and_si512(w, nibbles);
            }
            const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(xq + 32 * (b0 + k)));
            const __m512 scale = _mm512_permutex2var_ps(sc, _mm512_add_epi32(pick, _mm512_set1_epi32(k)), sch);
            if (k & 2) a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, a1);
            else a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, a0);
        }
        if (k < n) {
            // An odd last block, in scalar code.
            const uint8_t *qa = pb + stride * k, *qs = qa + qs_at;
            uint32_t qh = 0;
            if (bits5) memcpy(&qh, qs - 4, 4);
            const int8_t *xb = xq + 32 * (b0 + k);
            int32_t s = 0;
            for (int j = 0; j < 16; j++) {
                s += (int32_t)((qs[j] & 15) | (bits5 ? ((qh >> j) & 1) << 4 : 0)) * xb[j];
                s += (int32_t)((qs[j] >> 4) | (bits5 ? ((qh >> (j + 16)) & 1) << 4 : 0)) * xb[j + 16];
            }
            tail += z_half(qa) * xd[b0 + k] * (float)s;
        }
    }
    return _mm512_reduce_add_ps(_mm512_fmadd_ps(corr, _mm512_set1_ps(has_min ? 1.0f : -offset), _mm512_add_ps(a0, a1))) + tail;
}

Q_VN static float q4_0_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const float *xsb, int64_t nb) { return q4q5_row_vnni(p, xq, xd, xsb, nb, 0, 0); }
Q_VN static float q4_1_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const float *xsb, int64_t nb) { return q4q5_row_vnni(p, xq, xd, xsb, nb, 1, 0); }
Q_VN static float q5_0_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const float *xsb, int64_t nb) { return q4q5_row_vnni(p, xq, xd, xsb, nb, 0, 1); }
Q_VN static float q5_1_row_vnni(const uint8_t *p, const int8_t *xq, const float *xd, const float *xsb, int64_t nb) { return q4q5_row_vnni(p, xq, xd, xsb, nb, 1, 1); }

// ---------------------------------------------------------------------------------------------
// The int8-activation kernels on AVX2 (SIMD level 1), the same arithmetic as the VNNI ones above (see
// rk_qmatvec_int8_ref) with AVX2's byte products: maddubs multiplies unsigned weight bytes by signed
// activation bytes and adds neighbouring pairs into int16 with saturation, which never happens here:
// a pair is at most 2 · 63 · 127 (6-bit weights) or 2 · 128 · 127 (Q8_0, below); madd then sums
// pairs of int16 into int32 (against ones, or against the sub-blocks' int16 scales). Q8_0's weights
// are signed: |w| times x with w's sign (sign_epi8), as x is never −128. Per super-block the K-quants'
// int32 sums stay below 2^31 (8 sub-blocks · 32 · 31 · 127 · 63 for Q5_K), so the sub-blocks' integer
// scales are applied exactly and one float scale per block or super-block follows.

// The activations as act_quant_portable quantises them (the same values), in blocks of 32 or 256, with
// s16[j] = Σ q over the j-th 16 when s16 is not NULL (|Σ| ≤ 16 · 127).
Q_AVX2 static void act_quant_avx2(const float *x, int64_t n, const int blk, int8_t *q, float *d, int16_t *s16) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / blk; b++) {
        const float *xb = x + b * blk;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < blk; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
        const float amax = _mm_cvtss_f32(h);
        const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        d[b] = amax / 127.0f;
        for (int j = 0; j < blk; j += 32) {
            __m256i v[4];
            for (int i = 0; i < 4; i++) v[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + j + 8 * i), id));
            if (s16) {
                for (int i = 0; i < 2; i++) {
                    const __m256i s = _mm256_add_epi32(v[2 * i], v[2 * i + 1]);
                    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
                    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
                    s16[(b * blk + j) / 16 + i] = (int16_t)_mm_cvtsi128_si32(t);
                }
            }
            // |q| ≤ 127, so the saturating packs are exact; they interleave the 128-bit lanes, which the
            // permute puts back in order.
            const __m256i w = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
            _mm256_storeu_si256((__m256i *)(q + b * blk + j), _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        }
    }
}

Q_AVX2 Q_INLINE __m256i y_dot_u8s8(__m256i u, __m256i s) { return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)); }

Q_AVX2 Q_INLINE float y_half(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | (p[1] << 8))); }

Q_AVX2 static float q8_0_row_avx2(const uint8_t *p, const int8_t *xq, const float *xd, int64_t nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, p += 34) {
        const __m256i w = _mm256_loadu_si256((const __m256i *)(p + 2)), x = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
        const __m256 s = _mm256_cvtepi32_ps(y_dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)));
        const __m256 scale = _mm256_set1_ps(y_half(p) * xd[b]);
        if (b & 1) a1 = _mm256_fmadd_ps(s, scale, a1);
        else a0 = _mm256_fmadd_ps(s, scale, a0);
    }
    return q_hsum8(_mm256_add_ps(a0, a1));
}

// Q4_0, Q4_1, Q5_0, Q5_1: a block's 16 bytes of nibbles give weights 0–15 (low nibbles) in the lower
// 128-bit lane and 16–31 (high nibbles) in the upper, in x's order; Q5_x's fifth bits (bit j of qh for
// weight j) spread to bytes by a shuffle and a compare. The offset (−8 or −16 times d) or the minimum
// multiplies Σ q_x of the block (xsb), one scalar multiply–add per block.
Q_AVX2 Q_INLINE float q4q5_row_avx2(const uint8_t *p, const int8_t *xq, const float *xd, const int32_t *xsb, int64_t nb,
                                    const int has_min, const int bits5) {
    const int64_t qs_at = q4q5_nibbles_at(has_min, bits5), stride = qs_at + 16;
    const float offset = (float)q4q5_offset(has_min, bits5);
    const __m256i low4 = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    float corr = 0.0f;
    for (int64_t b = 0; b < nb; b++, p += stride) {
        const __m128i qs = _mm_loadu_si128((const __m128i *)(p + qs_at));
        __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), low4);
        if (bits5) {
            uint32_t qh;
            memcpy(&qh, p + qs_at - 4, 4);
            const __m256i h = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread), bit);
            w = _mm256_or_si256(w, _mm256_and_si256(_mm256_cmpeq_epi8(h, bit), sixteen));
        }
        const __m256 s = _mm256_cvtepi32_ps(y_dot_u8s8(w, _mm256_loadu_si256((const __m256i *)(xq + 32 * b))));
        const float d = y_half(p) * xd[b];
        if (b & 1) a1 = _mm256_fmadd_ps(s, _mm256_set1_ps(d), a1);
        else a0 = _mm256_fmadd_ps(s, _mm256_set1_ps(d), a0);
        corr += (has_min ? y_half(p + 2) * xd[b] : -offset * d) * (float)xsb[b];
    }
    return q_hsum8(_mm256_add_ps(a0, a1)) + corr;
}

// Q4_K / Q5_K: 32 bytes of qs hold sub-blocks 2g (low nibbles) and 2g+1 (high nibbles); each
// sub-block's int16 pair sums are multiplied by its 6-bit scale (madd), all eight summed in int32;
// the minimums' term dmin · Σ m_i · Σ q_x over sub-block i is one int16 dot product of eight (xs32).
Q_AVX2 Q_INLINE float q4k_q5k_row_avx2(const uint8_t *p, const int8_t *xq, const float *xd, const int16_t *xs32, int64_t nb,
                                       const int bits5) {
    const __m256i low4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    const int64_t stride = bits5 ? 176 : 144;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t b = 0; b < nb; b++, p += stride, xq += 256, xs32 += 8) {
        uint64_t sc, mn;
        k_scales_mins8(p + 4, &sc, &mn);
        const __m128i mnsum = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn)), _mm_loadu_si128((const __m128i *)xs32));
        const uint8_t *qs = p + (bits5 ? 48 : 16);
        const __m256i hb = bits5 ? _mm256_loadu_si256((const __m256i *)(p + 16)) : _mm256_setzero_si256();
        __m256i acc = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            if (bits5) {
                // Bit 2g of qh[l] is the fifth bit of weight 64g + l, bit 2g+1 that of weight 64g + 32 + l.
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * g), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * g + 1), one), 4));
            }
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xq + 64 * g)));
            const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xq + 64 * g + 32)));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(plo, _mm256_set1_epi16((short)((sc >> (16 * g)) & 0xFF))));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(phi, _mm256_set1_epi16((short)((sc >> (16 * g + 8)) & 0xFF))));
        }
        const float d = y_half(p) * xd[b];
        if (b & 1) a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(d), a1);
        else a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(d), a0);
        __m128i t = _mm_add_epi32(mnsum, _mm_shuffle_epi32(mnsum, 0x4E));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
        mins += y_half(p + 2) * xd[b] * (float)_mm_cvtsi128_si32(t);
    }
    return q_hsum8(_mm256_add_ps(a0, a1)) - mins;
}

// Q6_K: weight e = 128h + 32t + l takes its low four bits from ql[64h + 32(t mod 2) + l] (the high
// nibble when t ≥ 2) and its top two from qh[32h + l] >> 2t; a 32-weight step spans two scales, one
// per 128-bit lane of the int16 pair sums. The −32 is −32 · Σ_j sc_j · Σ q_x over the j-th 16 (xs16),
// the accumulator's start.
Q_AVX2 static float q6k_row_avx2(const uint8_t *p, const int8_t *xq, const float *xd, const int16_t *xs16, int64_t nb) {
    const __m256i low4 = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, p += 210, xq += 256, xs16 += 16) {
        const int8_t *sc = (const int8_t *)(p + 192);
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc)), _mm256_loadu_si256((const __m256i *)xs16));
        __m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
        for (int h = 0; h < 2; h++) {
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
            for (int t = 0; t < 4; t++) {
                __m256i lo = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32 * (t & 1)));
                if (t >= 2) lo = _mm256_srli_epi16(lo, 4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * t), three);
                const __m256i q = _mm256_or_si256(_mm256_and_si256(lo, low4), _mm256_slli_epi16(hi, 4));
                const __m256i pr = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)(xq + 128 * h + 32 * t)));
                const int j = 8 * h + 2 * t;
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pr, _mm256_set_m128i(_mm_set1_epi16(sc[j + 1]), _mm_set1_epi16(sc[j]))));
            }
        }
        const float d = y_half(p + 208) * xd[b];
        if (b & 1) a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(d), a1);
        else a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(d), a0);
    }
    return q_hsum8(_mm256_add_ps(a0, a1));
}


// ---------------------------------------------------------------------------------------------
// Pieces the int8 prompt GEMM (gemm.c, quant_vnni.h) shares with the kernels above.

#if defined(__clang__)
#define RK_Q_UNROLL _Pragma("clang loop unroll(full)")
#else
#define RK_Q_UNROLL
#endif

Q_VN void rk_act_quant_vnni(const float *x, int64_t n, int blk, int8_t *q, float *d, int32_t *xc, float *s16,
                            int16_t *s16i) {
    act_quant_vnni(x, n, blk, q, d, xc, s16, s16i);
}

// One K-quant super-block to its 256 unsigned weight values in order (q[e] = the 4-, 5- or 6-bit value
// of weight e, as dq_q4k_q5k and dq_q6k read it), and per sub-block its fp32 scale sc (Q4_K/Q5_K:
// d · s_i per 32 weights, mn = dmin · m_i; Q6_K: d · sc_j per 16, mn untouched), so that
// w = sc · q − mn (Q4_K/Q5_K) or sc · (q − 32) (Q6_K).
Q_VN void rk_kquant_unpack_vnni(int dtype, const uint8_t *p, uint8_t *q, float *sc, float *mn) {
    const __m256i low4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1), three = _mm256_set1_epi8(3);
    if (dtype == RK_Q6_K) {
        const float d = z_half(p + 208);
        _mm512_storeu_ps(sc, _mm512_mul_ps(z_bytes_i8(p + 192), _mm512_set1_ps(d)));
        for (int h = 0; h < 2; h++) {
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
            RK_Q_UNROLL
            for (int t = 0; t < 4; t++) {
                __m256i lo = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32 * (t & 1)));
                if (t >= 2) lo = _mm256_srli_epi16(lo, 4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * t), three);
                _mm256_storeu_si256((__m256i *)(q + 128 * h + 32 * t), _mm256_or_si256(_mm256_and_si256(lo, low4), _mm256_slli_epi16(hi, 4)));
            }
        }
        return;
    }
    const int bits5 = dtype == RK_Q5_K;
    const float d = z_half(p), dmin = z_half(p + 2);
    uint64_t s, m;
    k_scales_mins8(p + 4, &s, &m);
    _mm256_storeu_ps(sc, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)s))), _mm256_set1_ps(d)));
    _mm256_storeu_ps(mn, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m))), _mm256_set1_ps(dmin)));
    const uint8_t *qs = p + (bits5 ? 48 : 16);
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(p + 16));
    RK_Q_UNROLL
    for (int g = 0; g < 4; g++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
        __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        if (bits5) {
            // Bit 2g of qh[l] is the fifth bit of weight 64g + l, bit 2g+1 that of weight 64g + 32 + l.
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * g), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * g + 1), one), 4));
        }
        _mm256_storeu_si256((__m256i *)(q + 64 * g), lo);
        _mm256_storeu_si256((__m256i *)(q + 64 * g + 32), hi);
    }
}

// The most weight bytes per call for which several vectors take the int8 kernels one by one.
#define Q_INT8_L2_BYTES (512 * 1024)

// The widest rows the int8 paths take (their quantised copy of x lives on the stack); wider ones take
// the fp32 kernels.
#define Q_INT8_MAX_COLS 16384

/// One input vector over rows [rb, re) through the int8 kernels; 0 for a type they do not cover.
// The rows are contiguous, so a product streams its weights linearly: before each row, ask for the
// lines Q_PREFETCH bytes past it, far enough for as many loads in flight as the float matrix–vector
// kernels keep (kernels.c).
#define Q_PREFETCH 8192
static inline void q_prefetch_past(const uint8_t *row, int64_t row_bytes) {
    for (int64_t o = 0; o < row_bytes; o += 64) _mm_prefetch((const char *)row + Q_PREFETCH + o, _MM_HINT_T0);
}

Q_VN static int qmatvec1_vnni(int dtype, const void *W, const float *x, float *y, int64_t cols, int64_t rb, int64_t re) {
    if (cols > Q_INT8_MAX_COLS) return 0;
    const int64_t be = rk_block_elems(dtype), nb = cols / be, row_bytes = nb * rk_block_bytes(dtype);
    const uint8_t *base = (const uint8_t *)W;
    int8_t xq[Q_INT8_MAX_COLS] __attribute__((aligned(64)));
    float xd[Q_INT8_MAX_COLS / 32];
    switch (dtype) {
    case RK_Q8_0: {
        int32_t xc[Q_INT8_MAX_COLS / 4];
        act_quant_vnni(x, cols, 32, xq, xd, xc, NULL, NULL);
        for (int64_t r = rb; r < re; r++) { q_prefetch_past(base + r * row_bytes, row_bytes); y[r] = q8_0_row_vnni(base + r * row_bytes, xq, xd, xc, nb); }
        return 1;
    }
    case RK_Q4_0: case RK_Q4_1: case RK_Q5_0: case RK_Q5_1: {
        float xs[Q_INT8_MAX_COLS / 16], xsb[Q_INT8_MAX_COLS / 32];
        int16_t xsi[Q_INT8_MAX_COLS / 16];
        act_quant_vnni(x, cols, 32, xq, xd, NULL, xs, xsi);
        for (int64_t b = 0; b < nb; b++) xsb[b] = xs[2 * b] + xs[2 * b + 1];
        float (*row)(const uint8_t *, const int8_t *, const float *, const float *, int64_t) =
            dtype == RK_Q4_0 ? q4_0_row_vnni : dtype == RK_Q4_1 ? q4_1_row_vnni : dtype == RK_Q5_0 ? q5_0_row_vnni : q5_1_row_vnni;
        for (int64_t r = rb; r < re; r++) { q_prefetch_past(base + r * row_bytes, row_bytes); y[r] = row(base + r * row_bytes, xq, xd, xsb, nb); }
        return 1;
    }
    case RK_Q4_K: case RK_Q5_K: case RK_Q6_K: {
        float xs[Q_INT8_MAX_COLS / 16];
        int16_t xsi[Q_INT8_MAX_COLS / 16];
        act_quant_vnni(x, cols, 256, xq, xd, NULL, xs, xsi);
        for (int64_t r = rb; r < re; r++) {
            q_prefetch_past(base + r * row_bytes, row_bytes);
            y[r] = dtype == RK_Q6_K ? q6k_row_vnni(base + r * row_bytes, xq, xd, xsi, nb)
                 : dtype == RK_Q5_K ? q5k_row_vnni(base + r * row_bytes, xq, xd, xs, nb)
                 : q4k_row_vnni(base + r * row_bytes, xq, xd, xs, nb);
        }
        return 1;
    }
    default: return 0;
    }
}

Q_AVX2 static int qmatvec1_avx2(int dtype, const void *W, const float *x, float *y, int64_t cols, int64_t rb, int64_t re) {
    if (cols > Q_INT8_MAX_COLS) return 0;
    const int64_t be = rk_block_elems(dtype), nb = cols / be, row_bytes = nb * rk_block_bytes(dtype);
    const uint8_t *base = (const uint8_t *)W;
    int8_t xq[Q_INT8_MAX_COLS] __attribute__((aligned(32)));
    float xd[Q_INT8_MAX_COLS / 32];
    int16_t xs[Q_INT8_MAX_COLS / 16];
    switch (dtype) {
    case RK_Q8_0:
        act_quant_avx2(x, cols, 32, xq, xd, NULL);
        for (int64_t r = rb; r < re; r++) { q_prefetch_past(base + r * row_bytes, row_bytes); y[r] = q8_0_row_avx2(base + r * row_bytes, xq, xd, nb); }
        return 1;
    case RK_Q4_0: case RK_Q4_1: case RK_Q5_0: case RK_Q5_1: {
        const int has_min = dtype == RK_Q4_1 || dtype == RK_Q5_1, bits5 = dtype == RK_Q5_0 || dtype == RK_Q5_1;
        int32_t xsb[Q_INT8_MAX_COLS / 32];
        act_quant_avx2(x, cols, 32, xq, xd, xs);
        for (int64_t b = 0; b < nb; b++) xsb[b] = xs[2 * b] + xs[2 * b + 1];
        for (int64_t r = rb; r < re; r++) {
            q_prefetch_past(base + r * row_bytes, row_bytes);
            y[r] = q4q5_row_avx2(base + r * row_bytes, xq, xd, xsb, nb, has_min, bits5);
        }
        return 1;
    }
    case RK_Q4_K: case RK_Q5_K: {
        int16_t xs32[Q_INT8_MAX_COLS / 32];
        act_quant_avx2(x, cols, 256, xq, xd, xs);
        for (int64_t i = 0; i < cols / 32; i++) xs32[i] = (int16_t)(xs[2 * i] + xs[2 * i + 1]);
        for (int64_t r = rb; r < re; r++) {
            q_prefetch_past(base + r * row_bytes, row_bytes);
            y[r] = q4k_q5k_row_avx2(base + r * row_bytes, xq, xd, xs32, nb, dtype == RK_Q5_K);
        }
        return 1;
    }
    case RK_Q6_K:
        act_quant_avx2(x, cols, 256, xq, xd, xs);
        for (int64_t r = rb; r < re; r++) { q_prefetch_past(base + r * row_bytes, row_bytes); y[r] = q6k_row_avx2(base + r * row_bytes, xq, xd, xs, nb); }
        return 1;
    default: return 0;
    }
}

Q_A5 static void qmatvec_avx512(int dtype, const void *W, const float *x, float *y, int nvec, int64_t cols,
                                int64_t rows_total, int64_t rb, int64_t re) {
    const int64_t be = rk_block_elems(dtype), bb = rk_block_bytes(dtype), row_bytes = cols / be * bb;
    float buf[Q_CHUNK] __attribute__((aligned(64)));
    for (int v0 = 0; v0 < nvec; v0 += 4) {
        const int nv = nvec - v0 < 4 ? nvec - v0 : 4;
        for (int64_t r = rb; r < re; r++) {
            const uint8_t *row = (const uint8_t *)W + r * row_bytes;
            __m512 a[4][2];
            for (int q = 0; q < 4; q++) { a[q][0] = _mm512_setzero_ps(); a[q][1] = _mm512_setzero_ps(); }
            for (int64_t k0 = 0; k0 < cols; k0 += Q_CHUNK) {
                const int64_t n = cols - k0 < Q_CHUNK ? cols - k0 : Q_CHUNK;
                dq_impl(dtype, row + k0 / be * bb, buf, n / be);
                for (int q = 0; q < nv; q++) {
                    const float *xv = x + (int64_t)(v0 + q) * cols + k0;
                    for (int64_t j = 0; j < n; j += 32) {
                        a[q][0] = _mm512_fmadd_ps(_mm512_load_ps(buf + j), _mm512_loadu_ps(xv + j), a[q][0]);
                        a[q][1] = _mm512_fmadd_ps(_mm512_load_ps(buf + j + 16), _mm512_loadu_ps(xv + j + 16), a[q][1]);
                    }
                }
            }
            for (int q = 0; q < nv; q++) y[(int64_t)(v0 + q) * rows_total + r] = _mm512_reduce_add_ps(_mm512_add_ps(a[q][0], a[q][1]));
        }
    }
}
#endif

void rk_dequant_blocks_at(int level, int dtype, const void *src, float *dst, int64_t nblocks) {
#ifdef RK_X86
    if (level >= 2 && rk_simd_level() >= 2) { dq_avx512(dtype, (const uint8_t *)src, dst, nblocks); return; }
    if (level >= 1 && rk_simd_level() >= 1) { dq_avx2(dtype, (const uint8_t *)src, dst, nblocks); return; }
#endif
    dq_portable(dtype, (const uint8_t *)src, dst, nblocks);
}

void rk_dequant_blocks(int dtype, const void *src, float *dst, int64_t nblocks) {
    rk_dequant_blocks_at(rk_simd_level(), dtype, src, dst, nblocks);
}

void rk_qmatvec_at(int level, int dtype, const void *W, const float *x, float *y, int nvec, int64_t cols,
                   int64_t rows_total, int64_t rb, int64_t re) {
#ifdef RK_X86
    if (level > rk_simd_level()) level = rk_simd_level();
    // The int8 kernels: VNNI (level 3) or AVX2 (level 1; level 2 keeps its fused fp32 kernels). Several
    // vectors go through them one at a time while the row range's weights fit in L2 (the engine's row
    // blocks of about 64 KiB), so that they are read from memory once.
    int (*const int8)(int, const void *, const float *, float *, int64_t, int64_t, int64_t) =
        level >= 3 ? qmatvec1_vnni : level == 1 ? qmatvec1_avx2 : NULL;
    if (int8 && (nvec == 1 || (re - rb) * (cols / rk_block_elems(dtype)) * rk_block_bytes(dtype) <= Q_INT8_L2_BYTES)) {
        int done = 1;
        for (int v = 0; v < nvec && done; v++) done = int8(dtype, W, x + (int64_t)v * cols, y + (int64_t)v * rows_total, cols, rb, re);
        if (done) return;
    }
    if (level >= 2) {
        if (nvec == 1 && qmatvec1_fused_avx512(dtype, W, x, y, cols, rb, re)) return;
        qmatvec_avx512(dtype, W, x, y, nvec, cols, rows_total, rb, re);
        return;
    }
    if (level >= 1) { qmatvec_avx2(dtype, W, x, y, nvec, cols, rows_total, rb, re); return; }
#else
    (void)level;
#endif
    qmatvec_portable(dtype, W, x, y, nvec, cols, rows_total, rb, re);
}

void rk_qmatvec(int dtype, const void *W, const float *x, float *y, int nvec, int64_t cols,
                int64_t rows_total, int64_t rb, int64_t re) {
    rk_qmatvec_at(rk_simd_level(), dtype, W, x, y, nvec, cols, rows_total, rb, re);
}
