// Matrix–matrix products for prompts: y[t][r] = sum_c W[r][c] * x[t][c] (y = x·Wᵀ), fp32 accumulation.
//
// Goto-style blocking, written with intrinsics and explicit register tiles so that it is fast at the
// compiler's default release optimisation (no -O3, no -march): per block of KC columns and NC rows, the
// weights are widened to fp32 once and packed transposed into panels [k][NR rows] (so the kernel loads
// a vector of NR rows at one k); a tile of up to MR tokens of x is copied to a small contiguous buffer,
// and the micro-kernel broadcasts x[t][k] against the row vectors into MR × NR accumulators.
// Each weight is read and converted exactly once per call, whatever T is. Quantised weights
// (quant.c) are dequantised a row chunk at a time into a small buffer and packed from there, with
// column blocks of Q_KC = 256 (a whole K-quant super-block, eight 32-blocks).
// At SIMD level 3 (AVX512-VNNI), Q4_K, Q5_K and Q6_K take an int8 path instead (gemm_vnni below).
#include "rwkv_kernels.h"
#include "scalar.h"
#include "quant_vnni.h"
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define RK_X86 1
#endif

#define RK_INLINE static inline __attribute__((always_inline))
// Register tiles must be fully unrolled (their accumulators live in registers); -O2's unroll
// threshold would leave the largest tiles as loops over stack arrays.
#if defined(__clang__)
#define RK_UNROLL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define RK_UNROLL _Pragma("GCC unroll 32")
#else
#define RK_UNROLL
#endif

static inline int64_t g_min(int64_t a, int64_t b) { return a < b ? a : b; }

#define Q_KC 256

/// Dequantise rows [r0, r0 + nrow) × columns [k0, k0 + kc) of a quantised matrix into tmp[nrow][Q_KC];
/// k0 and kc are multiples of the block (k0 of Q_KC, kc ≤ Q_KC), as the callers' blocking makes them.
static void g_dequant_tile(int dtype, const void *W, int64_t cols, int64_t r0, int nrow, int64_t k0, int kc, float *tmp) {
    const int64_t be = rk_block_elems(dtype), bb = rk_block_bytes(dtype), row_bytes = cols / be * bb;
    for (int i = 0; i < nrow; i++)
        rk_dequant_blocks(dtype, (const char *)W + (r0 + i) * row_bytes + k0 / be * bb, tmp + (int64_t)i * Q_KC, kc / be);
}

#ifdef RK_X86
// ---------------------------------------------------------------------------------------------
// Per-thread packing buffer, kept for the thread's life (freed by a key destructor at its exit):
// the SIMD paths need a few hundred KiB, too much for a worker's stack and too much to map per call.

static pthread_key_t g_buf_key;
static pthread_once_t g_buf_once = PTHREAD_ONCE_INIT;
typedef struct { size_t size; float *data; } g_buf;

static void g_buf_free(void *p) {
    g_buf *b = (g_buf *)p;
    if (b) { free(b->data); free(b); }
}
static void g_buf_init(void) { pthread_key_create(&g_buf_key, g_buf_free); }

/// A 64-byte aligned scratch of at least n floats for this thread, or NULL when memory is short.
static float *g_scratch(size_t n) {
    pthread_once(&g_buf_once, g_buf_init);
    g_buf *b = (g_buf *)pthread_getspecific(g_buf_key);
    if (!b) {
        b = (g_buf *)calloc(1, sizeof(g_buf));
        if (!b) return NULL;
        if (pthread_setspecific(g_buf_key, b) != 0) { free(b); return NULL; }
    }
    if (b->size < n) {
        void *p = NULL;
        if (posix_memalign(&p, 64, n * sizeof(float)) != 0) return NULL;
        free(b->data);
        b->data = (float *)p;
        b->size = n;
    }
    return b->data;
}
#endif

// ---------------------------------------------------------------------------------------------
// Portable path: the same blocking with a 4-token × 8-row scalar tile (the compiler may vectorise
// the 8-wide rows on targets whose baseline has SIMD). Needs only an 8 KiB stack buffer.

#define P_NR 8
#define P_MR 4
#define P_KC 256
_Static_assert(P_KC == Q_KC, "the portable path packs quantised tiles in Q_KC columns");

static void gemm_portable(int dtype, const void *W, const float *x, float *y, int T,
                          int64_t cols, int64_t ldy, int64_t rb, int64_t re) {
    float wp[P_KC * P_NR];
    float tmp[P_NR * Q_KC]; // dequantised rows of a quantised tile (P_KC == Q_KC)
    const int quant = dtype >= RK_Q8_0;
    for (int64_t k0 = 0; k0 < cols; k0 += P_KC) {
        const int kc = (int)g_min(P_KC, cols - k0);
        for (int64_t r0 = rb; r0 < re; r0 += P_NR) {
            const int nr = (int)g_min(P_NR, re - r0);
            if (quant) g_dequant_tile(dtype, W, cols, r0, nr, k0, kc, tmp);
            for (int j = 0; j < P_NR; j++)
                for (int k = 0; k < kc; k++)
                    wp[k * P_NR + j] = j >= nr ? 0.0f
                                     : quant ? tmp[j * Q_KC + k] : rk_load_weight(dtype, W, (r0 + j) * cols + k0 + k);
            for (int t0 = 0; t0 < T; t0 += P_MR) {
                const int mr = (int)g_min(P_MR, T - t0);
                const float *xr[P_MR];
                // Missing tokens of a short tile repeat the last one; their sums are discarded.
                for (int i = 0; i < P_MR; i++) xr[i] = x + (int64_t)(t0 + (i < mr ? i : mr - 1)) * cols + k0;
                float acc[P_MR][P_NR];
                for (int i = 0; i < P_MR; i++)
                    for (int j = 0; j < P_NR; j++) acc[i][j] = 0.0f;
                for (int k = 0; k < kc; k++) {
                    const float *w = wp + k * P_NR;
                    for (int i = 0; i < P_MR; i++) {
                        const float xv = xr[i][k];
                        for (int j = 0; j < P_NR; j++) acc[i][j] += xv * w[j];
                    }
                }
                for (int i = 0; i < mr; i++) {
                    float *yi = y + (int64_t)(t0 + i) * ldy + r0;
                    if (k0 == 0) { for (int j = 0; j < nr; j++) yi[j] = acc[i][j]; }
                    else { for (int j = 0; j < nr; j++) yi[j] += acc[i][j]; }
                }
            }
        }
    }
}

#ifdef RK_X86
// ---------------------------------------------------------------------------------------------
// AVX-512: 12 tokens × 32 rows (24 zmm accumulators), KC = 384 columns, NC = 256 rows per packed
// block (384 KiB of fp32 panels, L2-resident on AVX-512 parts; the 12-token x tile, 19 KiB, in L1).
// Measured on Zen 4 against 8×48, 6×64, 14×32 tiles and KC 256/512: all within a few percent.

#define A5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define Z_MR 12
#define Z_NV 2
#define Z_NR (16 * Z_NV)
#define Z_KC 384
#define Z_NC 256
#define Z_XS (Z_KC + 16) // floats between x-tile rows: off a 4 KiB multiple, so rows don't alias

A5 RK_INLINE __m512 z_load16(int dtype, const char *p, __mmask16 m) {
    switch (dtype) {
    case RK_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    case RK_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    default: return _mm512_maskz_loadu_ps(m, p);
    }
}

// In-place transpose of 16 rows of 16 floats.
A5 RK_INLINE void z_transpose16(__m512 r[16]) {
    __m512 t[16];
    RK_UNROLL
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    RK_UNROLL
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    RK_UNROLL
    for (int h = 0; h < 16; h += 8) {
        RK_UNROLL
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xDD);
        }
    }
    RK_UNROLL
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
}

// Widen and pack rows [r0, r0 + nc) × columns [k0, k0 + kc) into panels wp[p][k][Z_NR] (panel
// stride Z_KC * Z_NR); rows past nc are zeros.
A5 RK_INLINE void z_pack(const int dtype, const void *W, int64_t cols, int64_t r0, int nc, int64_t k0,
                         int kc, float *wp) {
    const int64_t es = dtype == RK_F32 ? 4 : 2;
    for (int p = 0; p * Z_NR < nc; p++) {
        float *dst = wp + (int64_t)p * Z_KC * Z_NR;
        for (int g = 0; g < Z_NV; g++) {
            const int rbase = p * Z_NR + g * 16;
            const int nrow = nc - rbase < 0 ? 0 : (nc - rbase > 16 ? 16 : nc - rbase);
            const char *src = (const char *)W + ((r0 + rbase) * cols + k0) * es;
            for (int kk = 0; kk < kc; kk += 16) {
                const int nk = kc - kk < 16 ? kc - kk : 16;
                const __mmask16 m = (__mmask16)((1u << nk) - 1);
                __m512 r[16];
                if (nrow == 16) {
                    RK_UNROLL
                    for (int i = 0; i < 16; i++) r[i] = z_load16(dtype, src + (i * cols + kk) * es, m);
                } else {
                    RK_UNROLL
                    for (int i = 0; i < 16; i++)
                        r[i] = i < nrow ? z_load16(dtype, src + (i * cols + kk) * es, m) : _mm512_setzero_ps();
                }
                z_transpose16(r);
                float *d = dst + kk * Z_NR + g * 16;
                if (nk == 16) {
                    RK_UNROLL
                    for (int j = 0; j < 16; j++) _mm512_store_ps(d + j * Z_NR, r[j]);
                } else {
                    for (int j = 0; j < nk; j++) _mm512_store_ps(d + j * Z_NR, r[j]);
                }
            }
        }
    }
}

// y[i][0..Z_NR) (+)= sum_k xt[i][k] * wp[k][.] for i < MR; mk masks the rows that exist.
A5 RK_INLINE void z_micro(const int MR, int kc, const float *xt, int64_t xs, const float *wp, float *y, int64_t ldy,
                          const __mmask16 *mk, int add) {
    __m512 acc[Z_MR][Z_NV];
    RK_UNROLL
    for (int i = 0; i < MR; i++)
        RK_UNROLL
        for (int j = 0; j < Z_NV; j++) acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 w[Z_NV];
        RK_UNROLL
        for (int j = 0; j < Z_NV; j++) w[j] = _mm512_load_ps(wp + k * Z_NR + 16 * j);
        RK_UNROLL
        for (int i = 0; i < MR; i++) {
            const __m512 b = _mm512_set1_ps(xt[i * xs + k]);
            RK_UNROLL
            for (int j = 0; j < Z_NV; j++) acc[i][j] = _mm512_fmadd_ps(b, w[j], acc[i][j]);
        }
    }
    RK_UNROLL
    for (int i = 0; i < MR; i++) {
        float *yi = y + i * ldy;
        RK_UNROLL
        for (int j = 0; j < Z_NV; j++) {
            __m512 v = acc[i][j];
            if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk[j], yi + 16 * j));
            _mm512_mask_storeu_ps(yi + 16 * j, mk[j], v);
        }
    }
}

A5 static void z_micro_any(int mr, int kc, const float *xt, int64_t xs, const float *wp, float *y, int64_t ldy,
                           const __mmask16 *mk, int add) {
    switch (mr) {
    case 1: z_micro(1, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 2: z_micro(2, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 3: z_micro(3, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 4: z_micro(4, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 5: z_micro(5, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 6: z_micro(6, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 7: z_micro(7, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 8: z_micro(8, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 9: z_micro(9, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 10: z_micro(10, kc, xt, xs, wp, y, ldy, mk, add); break;
    case 11: z_micro(11, kc, xt, xs, wp, y, ldy, mk, add); break;
    default: z_micro(Z_MR, kc, xt, xs, wp, y, ldy, mk, add); break;
    }
}

A5 static void z_pack_any(int dtype, const void *W, int64_t cols, int64_t r0, int nc, int64_t k0, int kc, float *wp,
                          float *tmp) {
    switch (dtype) {
    case RK_F32: z_pack(RK_F32, W, cols, r0, nc, k0, kc, wp); break;
    case RK_F16: z_pack(RK_F16, W, cols, r0, nc, k0, kc, wp); break;
    case RK_BF16: z_pack(RK_BF16, W, cols, r0, nc, k0, kc, wp); break;
    default:
        // Quantised: one panel of Z_NR rows at a time, dequantised into tmp, then packed as fp32.
        for (int p = 0; p * Z_NR < nc; p++) {
            const int nrow = (int)g_min(Z_NR, nc - p * Z_NR);
            g_dequant_tile(dtype, W, cols, r0 + p * Z_NR, nrow, k0, kc, tmp);
            z_pack(RK_F32, tmp, Q_KC, 0, nrow, 0, kc, wp + (int64_t)p * Z_KC * Z_NR);
        }
        break;
    }
}

#define Z_SCRATCH ((size_t)Z_NC * Z_KC + (size_t)Z_MR * Z_XS + (size_t)Z_NR * Q_KC)

A5 static void gemm_avx512(int dtype, const void *W, const float *x, float *y, int T, int64_t cols,
                           int64_t ldy, int64_t rb, int64_t re, float *buf) {
    float *wp = buf, *xt = buf + (size_t)Z_NC * Z_KC, *tmp = xt + (size_t)Z_MR * Z_XS;
    const int ntiles = (T + Z_MR - 1) / Z_MR;
    const int kstep = dtype >= RK_Q8_0 ? Q_KC : Z_KC;
    const int copy_x = (cols * 4) % 2048 == 0;
    for (int64_t k0 = 0; k0 < cols; k0 += kstep) {
        const int kc = (int)g_min(kstep, cols - k0);
        for (int64_t r0 = rb; r0 < re; r0 += Z_NC) {
            const int nc = (int)g_min(Z_NC, re - r0);
            z_pack_any(dtype, W, cols, r0, nc, k0, kc, wp, tmp);
            const int np = (nc + Z_NR - 1) / Z_NR;
            for (int tile = 0; tile < ntiles; tile++) {
                // Balanced tiles: T = 13 runs as 7 + 6 tokens, not 12 + 1.
                const int t0 = (int)((int64_t)tile * T / ntiles), t1 = (int)((int64_t)(tile + 1) * T / ntiles);
                const int mr = t1 - t0;
                // The tile is read in place unless its rows would share a few L1 sets (a row stride of a
                // multiple of 2 KiB puts twelve rows in one or two): then it is copied to rows Z_XS apart.
                const float *xtile = x + (int64_t)t0 * cols + k0;
                int64_t xstride = cols;
                if (copy_x) {
                    for (int i = 0; i < mr; i++) memcpy(xt + i * Z_XS, xtile + (int64_t)i * cols, (size_t)kc * 4);
                    xtile = xt; xstride = Z_XS;
                }
                for (int p = 0; p < np; p++) {
                    const int nv = nc - p * Z_NR;
                    __mmask16 mk[Z_NV];
                    for (int j = 0; j < Z_NV; j++) {
                        const int n = nv - 16 * j;
                        mk[j] = n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
                    }
                    z_micro_any(mr, kc, xtile, xstride, wp + (int64_t)p * Z_KC * Z_NR, y + (int64_t)t0 * ldy + r0 + p * Z_NR, ldy,
                                mk, k0 != 0);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX512-VNNI (level 3), Q4_K / Q5_K / Q6_K: int8 products, as the decode kernels (quant.c) compute
// them. Each token's activations are quantised once per call, per 256 columns (rk_act_quant_vnni, the
// decode kernels' quantiser). Per super-block column (256) and panel of 32 rows, the weights are
// unpacked ONCE to their unsigned 4/5/6-bit values (rk_kquant_unpack_vnni) and packed as 32-bit
// words [k/4][32 rows][4 bytes] (the fp32 packer's transpose, moving words), so one 512-bit load is
// 16 rows × 4 columns for dpbusd; the sub-block scales (and minimums) are packed [sub-block][32 rows].
// The micro-kernel keeps V_MR tokens × 32 rows: int32 sums per sub-block (dpbusd), then one convert
// and scale-FMA into fp32 accumulators per sub-block; the minimums' term, dmin · m_i · Σ q_x, is
// one more FMA per sub-block, and Q6_K's −32 starts each sub-block's int32 sums at −32 · Σ q_x.
// The token's scale d_x multiplies the block's sum once, before it is added to y.

#define VN __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define V_MR 6
#define V_NR 32
#define V_TB 120 // tokens per block (a multiple of V_MR)
#define V_KW (Q_KC / 4) // 32-bit words of a packed row in one super-block

// Per-thread scratch (floats): packed words, scales, minimums; unpacked rows and their scales; then
// the quantised activations of the call.
#define V_FIXED ((size_t)V_KW * V_NR + 2 * 16 * V_NR + V_NR * V_KW + 2 * V_NR * 16)

VN RK_INLINE void v_micro(const int MR, const int SUB, const int MIN, const int8_t *xq, int64_t xs, const void *xo,
                          int64_t os, const float *xd, int64_t ds, const int32_t *wp, const float *wsc,
                          const float *wmn, float *y, int64_t ldy, const __mmask16 *mk, int add) {
    __m512 acc[V_MR][2];
    RK_UNROLL
    for (int t = 0; t < MR; t++) { acc[t][0] = _mm512_setzero_ps(); acc[t][1] = _mm512_setzero_ps(); }
    const int nsub = V_KW / SUB;
    for (int i = 0; i < nsub; i++) {
        __m512i s[V_MR][2];
        RK_UNROLL
        for (int t = 0; t < MR; t++) {
            s[t][0] = s[t][1] = MIN ? _mm512_setzero_si512() : _mm512_set1_epi32(((const int32_t *)xo)[t * os + i]);
        }
        RK_UNROLL
        for (int k = 0; k < SUB; k++) {
            const int kk = i * SUB + k;
            const __m512i w0 = _mm512_load_si512(wp + kk * V_NR), w1 = _mm512_load_si512(wp + kk * V_NR + 16);
            RK_UNROLL
            for (int t = 0; t < MR; t++) {
                int32_t xv;
                memcpy(&xv, xq + t * xs + 4 * kk, 4);
                const __m512i b = _mm512_set1_epi32(xv);
                s[t][0] = _mm512_dpbusd_epi32(s[t][0], w0, b);
                s[t][1] = _mm512_dpbusd_epi32(s[t][1], w1, b);
            }
        }
        const __m512 c0 = _mm512_load_ps(wsc + i * V_NR), c1 = _mm512_load_ps(wsc + i * V_NR + 16);
        RK_UNROLL
        for (int t = 0; t < MR; t++) {
            acc[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t][0]), c0, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t][1]), c1, acc[t][1]);
        }
        if (MIN) {
            const __m512 m0 = _mm512_load_ps(wmn + i * V_NR), m1 = _mm512_load_ps(wmn + i * V_NR + 16);
            RK_UNROLL
            for (int t = 0; t < MR; t++) {
                const __m512 sx = _mm512_set1_ps(((const float *)xo)[t * os + i]);
                acc[t][0] = _mm512_fnmadd_ps(m0, sx, acc[t][0]);
                acc[t][1] = _mm512_fnmadd_ps(m1, sx, acc[t][1]);
            }
        }
    }
    RK_UNROLL
    for (int t = 0; t < MR; t++) {
        float *yt = y + t * ldy;
        const __m512 dx = _mm512_set1_ps(xd[t * ds]);
        RK_UNROLL
        for (int j = 0; j < 2; j++) {
            __m512 v = _mm512_mul_ps(acc[t][j], dx);
            if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk[j], yt + 16 * j));
            _mm512_mask_storeu_ps(yt + 16 * j, mk[j], v);
        }
    }
}

#define V_CASES(SUB, MIN)                                                                                  \
    switch (mr) {                                                                                          \
    case 1: v_micro(1, SUB, MIN, xq, xs, xo, os, xd, ds, wp, wsc, wmn, y, ldy, mk, add); break;           \
    case 2: v_micro(2, SUB, MIN, xq, xs, xo, os, xd, ds, wp, wsc, wmn, y, ldy, mk, add); break;           \
    case 3: v_micro(3, SUB, MIN, xq, xs, xo, os, xd, ds, wp, wsc, wmn, y, ldy, mk, add); break;           \
    case 4: v_micro(4, SUB, MIN, xq, xs, xo, os, xd, ds, wp, wsc, wmn, y, ldy, mk, add); break;           \
    case 5: v_micro(5, SUB, MIN, xq, xs, xo, os, xd, ds, wp, wsc, wmn, y, ldy, mk, add); break;           \
    default: v_micro(V_MR, SUB, MIN, xq, xs, xo, os, xd, ds, wp, wsc, wmn, y, ldy, mk, add); break;       \
    }

VN static void v_micro_any(int q6, int mr, const int8_t *xq, int64_t xs, const void *xo, int64_t os, const float *xd,
                           int64_t ds, const int32_t *wp, const float *wsc, const float *wmn, float *y, int64_t ldy,
                           const __mmask16 *mk, int add) {
    if (q6) { V_CASES(4, 0) } // sub-blocks of 16 columns, no minimums
    else { V_CASES(8, 1) }    // sub-blocks of 32, with minimums
}

/// Floats of scratch gemm_vnni needs for T tokens of cols columns.
static size_t v_scratch(int T, int64_t cols) {
    const size_t xq = (size_t)T * (size_t)cols / 4, xd = (size_t)T * (size_t)(cols / Q_KC),
                 xo = (size_t)T * (size_t)(cols / 16), s16 = (size_t)(cols / 16) * 2;
    return V_FIXED + xq + xd + xo + s16 + 64;
}

VN static void gemm_vnni(int dtype, const void *W, const float *x, float *y, int T, int64_t cols, int64_t ldy,
                         int64_t rb, int64_t re, float *buf) {
    const int q6 = dtype == RK_Q6_K, nsub = q6 ? 16 : 8;
    const int64_t nb = cols / Q_KC, bb = rk_block_bytes(dtype), row_bytes = nb * bb;
    int32_t *wp = (int32_t *)buf;
    float *wsc = buf + V_KW * V_NR, *wmn = wsc + 16 * V_NR;
    uint8_t *rows = (uint8_t *)(wmn + 16 * V_NR);             // [V_NR][256] unpacked values
    float *rsc = (float *)(rows + V_NR * Q_KC), *rmn = rsc + V_NR * 16; // [V_NR][16] per-row scales
    int8_t *xq = (int8_t *)(buf + V_FIXED);                   // [T][cols]
    float *xd = (float *)(xq + (int64_t)T * cols);           // [T][nb]
    float *xo = xd + (int64_t)T * nb;                         // [T][os]: Σ q_x per sub-block, or −32 · it (int32)
    float *s16 = xo + (int64_t)T * (cols / 16);
    int16_t *s16i = (int16_t *)(s16 + cols / 16);
    const int64_t os = cols / (q6 ? 16 : 32);
    for (int t = 0; t < T; t++) {
        rk_act_quant_vnni(x + (int64_t)t * cols, cols, Q_KC, xq + (int64_t)t * cols, xd + (int64_t)t * nb, NULL, s16, s16i);
        if (q6) {
            int32_t *o = (int32_t *)xo + (int64_t)t * os;
            for (int64_t j = 0; j < os; j++) o[j] = -32 * (int32_t)s16i[j];
        } else {
            float *o = xo + (int64_t)t * os;
            for (int64_t j = 0; j < os; j++) o[j] = s16[2 * j] + s16[2 * j + 1];
        }
    }
    // Blocks of about V_TB tokens, so that a block's activations and outputs stay in L2 while its
    // weights are unpacked once per block (2048 tokens in one block: 191 -> 118 G weights/s).
    const int nblk = (T + V_TB / 2) / V_TB > 1 ? (T + V_TB / 2) / V_TB : 1;
    for (int blk = 0; blk < nblk; blk++) {
        const int b0 = (int)((int64_t)blk * T / nblk), bT = (int)((int64_t)(blk + 1) * T / nblk) - b0;
        const int ntiles = (bT + V_MR - 1) / V_MR;
        for (int64_t b = 0; b < nb; b++) {
            for (int64_t r0 = rb; r0 < re; r0 += V_NR) {
                const int nr = (int)g_min(V_NR, re - r0);
                for (int i = 0; i < nr; i++)
                    rk_kquant_unpack_vnni(dtype, (const uint8_t *)W + (r0 + i) * row_bytes + b * bb, rows + i * Q_KC,
                                          rsc + i * 16, rmn + i * 16);
                // Transposes of 32-bit words: values to [k/4][row][4], scales to [sub-block][row].
                z_pack(RK_F32, rows, V_KW, 0, nr, 0, V_KW, (float *)wp);
                z_pack(RK_F32, rsc, 16, 0, nr, 0, nsub, wsc);
                if (!q6) z_pack(RK_F32, rmn, 16, 0, nr, 0, nsub, wmn);
                __mmask16 mk[2];
                for (int j = 0; j < 2; j++) {
                    const int n = nr - 16 * j;
                    mk[j] = n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
                }
                for (int tile = 0; tile < ntiles; tile++) {
                    const int t0 = b0 + (int)((int64_t)tile * bT / ntiles), t1 = b0 + (int)((int64_t)(tile + 1) * bT / ntiles);
                    v_micro_any(q6, t1 - t0, xq + (int64_t)t0 * cols + b * Q_KC, cols, xo + (int64_t)t0 * os + b * nsub, os,
                                xd + (int64_t)t0 * nb + b, nb, wp, wsc, wmn, y + (int64_t)t0 * ldy + r0, ldy, mk, b != 0);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA + F16C: 6 tokens × 16 rows (12 ymm accumulators of the 16 registers), same blocking;
// 128 KiB of packed panels so that they stay in the 256 KiB L2 of older AVX2-only cores.

#define AVX2G __attribute__((target("avx2,fma,f16c")))
#define Y_MR 6
#define Y_NR 16
#define Y_KC 256
#define Y_NC 128
#define Y_XS (Y_KC + 8)
#define Y_MC 256
_Static_assert(Y_KC == Q_KC, "the AVX2 path packs quantised tiles in Q_KC columns");

AVX2G RK_INLINE __m256 y_load8(int dtype, const char *p) {
    switch (dtype) {
    case RK_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case RK_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    default: return _mm256_loadu_ps((const float *)p);
    }
}

AVX2G RK_INLINE void y_transpose8(__m256 r[8]) {
    __m256 t[8];
    RK_UNROLL
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    RK_UNROLL
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    RK_UNROLL
    for (int i = 0; i < 4; i++) {
        t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
        t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
    }
    RK_UNROLL
    for (int i = 0; i < 8; i++) r[i] = t[i];
}

// Panels wp[p][k][Y_NR] (stride Y_KC * Y_NR); full 8×8 blocks by vector transposes, edges scalar.
AVX2G RK_INLINE void y_pack(const int dtype, const void *W, int64_t cols, int64_t r0, int nc, int64_t k0,
                            int kc, float *wp) {
    const int64_t es = dtype == RK_F32 ? 4 : 2;
    const int kc8 = kc & ~7;
    for (int p = 0; p * Y_NR < nc; p++) {
        float *dst = wp + (int64_t)p * Y_KC * Y_NR;
        for (int g = 0; g < Y_NR / 8; g++) {
            const int rbase = p * Y_NR + g * 8;
            const int nrow = nc - rbase < 0 ? 0 : (nc - rbase > 8 ? 8 : nc - rbase);
            const char *src = (const char *)W + ((r0 + rbase) * cols + k0) * es;
            // The next panel's rows at this group's columns, two lines per step: the rows of a panel are
            // separate short streams that the hardware prefetcher does not follow in time.
            const char *next = src + (int64_t)Y_NR * cols * es;
            const int lines = (int)((kc * es + 63) / 64);
            if (nrow == 8) {
                for (int kk = 0; kk < kc8; kk += 8) {
                    if ((p + 1) * Y_NR < nc) {
                        const int l0 = 2 * (kk / 8);
                        for (int l = l0; l < l0 + 2 && l < 8 * lines; l++) _mm_prefetch(next + (int64_t)(l / lines) * cols * es + (l % lines) * 64, _MM_HINT_T0);
                    }
                    __m256 r[8];
                    RK_UNROLL
                    for (int i = 0; i < 8; i++) r[i] = y_load8(dtype, src + (i * cols + kk) * es);
                    y_transpose8(r);
                    RK_UNROLL
                    for (int j = 0; j < 8; j++) _mm256_store_ps(dst + (kk + j) * Y_NR + g * 8, r[j]);
                }
                for (int kk = kc8; kk < kc; kk++)
                    RK_UNROLL
                    for (int i = 0; i < 8; i++)
                        dst[kk * Y_NR + g * 8 + i] = rk_load_weight(dtype, W, (r0 + rbase + i) * cols + k0 + kk);
            } else {
                for (int kk = 0; kk < kc; kk++)
                    RK_UNROLL
                    for (int i = 0; i < 8; i++)
                        dst[kk * Y_NR + g * 8 + i] =
                            i < nrow ? rk_load_weight(dtype, W, (r0 + rbase + i) * cols + k0 + kk) : 0.0f;
            }
        }
    }
}

AVX2G RK_INLINE void y_micro(const int MR, int kc, const float *xt, const float *wp, float *y, int64_t ldy,
                             int nv, int add) {
    __m256 acc[Y_MR][2];
    RK_UNROLL
    for (int i = 0; i < MR; i++) { acc[i][0] = _mm256_setzero_ps(); acc[i][1] = _mm256_setzero_ps(); }
    for (int k = 0; k < kc; k++) {
        const __m256 w0 = _mm256_load_ps(wp + k * Y_NR), w1 = _mm256_load_ps(wp + k * Y_NR + 8);
        RK_UNROLL
        for (int i = 0; i < MR; i++) {
            const __m256 b = _mm256_broadcast_ss(xt + i * Y_XS + k);
            acc[i][0] = _mm256_fmadd_ps(b, w0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(b, w1, acc[i][1]);
        }
    }
    if (nv >= Y_NR) {
        RK_UNROLL
        for (int i = 0; i < MR; i++) {
            float *yi = y + i * ldy;
            if (add) {
                acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(yi));
                acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(yi + 8));
            }
            _mm256_storeu_ps(yi, acc[i][0]);
            _mm256_storeu_ps(yi + 8, acc[i][1]);
        }
    } else {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), lane);
        const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv - 8), lane);
        RK_UNROLL
        for (int i = 0; i < MR; i++) {
            float *yi = y + i * ldy;
            if (add) {
                acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_maskload_ps(yi, m0));
                acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_maskload_ps(yi + 8, m1));
            }
            _mm256_maskstore_ps(yi, m0, acc[i][0]);
            _mm256_maskstore_ps(yi + 8, m1, acc[i][1]);
        }
    }
}

AVX2G static void y_micro_any(int mr, int kc, const float *xt, const float *wp, float *y, int64_t ldy, int nv,
                              int add) {
    switch (mr) {
    case 1: y_micro(1, kc, xt, wp, y, ldy, nv, add); break;
    case 2: y_micro(2, kc, xt, wp, y, ldy, nv, add); break;
    case 3: y_micro(3, kc, xt, wp, y, ldy, nv, add); break;
    case 4: y_micro(4, kc, xt, wp, y, ldy, nv, add); break;
    case 5: y_micro(5, kc, xt, wp, y, ldy, nv, add); break;
    default: y_micro(6, kc, xt, wp, y, ldy, nv, add); break;
    }
}

AVX2G static void y_pack_any(int dtype, const void *W, int64_t cols, int64_t r0, int nc, int64_t k0, int kc, float *wp,
                              float *tmp) {
    switch (dtype) {
    case RK_F32: y_pack(RK_F32, W, cols, r0, nc, k0, kc, wp); break;
    case RK_F16: y_pack(RK_F16, W, cols, r0, nc, k0, kc, wp); break;
    case RK_BF16: y_pack(RK_BF16, W, cols, r0, nc, k0, kc, wp); break;
    default:
        // Quantised: as in z_pack_any, one panel at a time through tmp (Y_KC == Q_KC).
        for (int p = 0; p * Y_NR < nc; p++) {
            const int nrow = (int)g_min(Y_NR, nc - p * Y_NR);
            g_dequant_tile(dtype, W, cols, r0 + p * Y_NR, nrow, k0, kc, tmp);
            y_pack(RK_F32, tmp, Q_KC, 0, nrow, 0, kc, wp + (int64_t)p * Y_KC * Y_NR);
        }
        break;
    }
}

#define Y_SCRATCH ((size_t)Y_NC * Y_KC + (size_t)Y_MR * Y_XS + (size_t)Y_NR * Q_KC)

AVX2G static void gemm_avx2(int dtype, const void *W, const float *x, float *y, int T, int64_t cols,
                            int64_t ldy, int64_t rb, int64_t re, float *buf) {
    float *wp = buf, *xt = buf + (size_t)Y_NC * Y_KC, *tmp = xt + (size_t)Y_MR * Y_XS;
    // Tokens in blocks of at most Y_MC, so that the x rows the tiles copy stay in L2 for every row block
    // (a longer prompt's rows came from L3 or memory each time); each block packs the weights again.
    const int nblocks = (T + Y_MC - 1) / Y_MC;
    for (int64_t k0 = 0; k0 < cols; k0 += Y_KC) {
        const int kc = (int)g_min(Y_KC, cols - k0);
        for (int b = 0; b < nblocks; b++) {
            const int b0 = (int)((int64_t)b * T / nblocks), bt = (int)((int64_t)(b + 1) * T / nblocks) - b0;
            const int ntiles = (bt + Y_MR - 1) / Y_MR;
            for (int64_t r0 = rb; r0 < re; r0 += Y_NC) {
                const int nc = (int)g_min(Y_NC, re - r0);
                y_pack_any(dtype, W, cols, r0, nc, k0, kc, wp, tmp);
                const int np = (nc + Y_NR - 1) / Y_NR;
                for (int tile = 0; tile < ntiles; tile++) {
                    const int t0 = b0 + (int)((int64_t)tile * bt / ntiles), t1 = b0 + (int)((int64_t)(tile + 1) * bt / ntiles);
                    const int mr = t1 - t0;
                    for (int i = 0; i < mr; i++) memcpy(xt + i * Y_XS, x + (int64_t)(t0 + i) * cols + k0, (size_t)kc * 4);
                    for (int p = 0; p < np; p++)
                        y_micro_any(mr, kc, xt, wp + (int64_t)p * Y_KC * Y_NR, y + (int64_t)t0 * ldy + r0 + p * Y_NR, ldy,
                                    nc - p * Y_NR, k0 != 0);
                }
            }
        }
    }
}
#endif

void rk_gemm(int dtype, const void *W, const float *x, float *y, int T,
             int64_t cols, int64_t rows_total, int64_t row_begin, int64_t row_end) {
    if (T <= 0 || row_end <= row_begin) return;
    if (cols <= 0) {
        for (int t = 0; t < T; t++)
            for (int64_t r = row_begin; r < row_end; r++) y[(int64_t)t * rows_total + r] = 0.0f;
        return;
    }
#ifdef RK_X86
    const int level = rk_simd_level();
    if (level >= 3 && (dtype == RK_Q4_K || dtype == RK_Q5_K || dtype == RK_Q6_K) && cols % Q_KC == 0) {
        float *buf = g_scratch(v_scratch(T, cols));
        if (buf) { gemm_vnni(dtype, W, x, y, T, cols, rows_total, row_begin, row_end, buf); return; }
    }
    if (level >= 2) {
        float *buf = g_scratch(Z_SCRATCH);
        if (buf) { gemm_avx512(dtype, W, x, y, T, cols, rows_total, row_begin, row_end, buf); return; }
    } else if (level >= 1) {
        float *buf = g_scratch(Y_SCRATCH);
        if (buf) { gemm_avx2(dtype, W, x, y, T, cols, rows_total, row_begin, row_end, buf); return; }
    }
#endif
    gemm_portable(dtype, W, x, y, T, cols, rows_total, row_begin, row_end);
}
