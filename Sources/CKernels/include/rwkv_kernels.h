#ifndef RWKV_KERNELS_H
#define RWKV_KERNELS_H
#include <stdint.h>
#include <stddef.h>
#include "rwkv_pool.h"

/// Element types of weight matrices as stored in memory: plain floats, or ggml's block-quantised
/// formats (quant.c describes each block). A quantised matrix's rows hold whole blocks: every kernel
/// below needs its `cols` (and any element count) to be a multiple of rk_block_elems.
enum rk_dtype {
    RK_F32 = 0, RK_F16 = 1, RK_BF16 = 2,
    RK_Q8_0 = 3, RK_Q4_0 = 4, RK_Q4_1 = 5, RK_Q5_0 = 6, RK_Q5_1 = 7, RK_Q4_K = 8, RK_Q5_K = 9, RK_Q6_K = 10
};

/// Weights per block (1 for the float types) and bytes per block (the element size for them); 0 for
/// an unknown type.
int rk_block_elems(int dtype);
int rk_block_bytes(int dtype);

/// Dequantise nblocks consecutive blocks of a quantised type to fp32 (rk_block_elems each), exactly
/// as the `gguf` package's numpy dequantiser does.
void rk_dequant_blocks(int dtype, const void *src, float *dst, int64_t nblocks);

/// rk_dequant_blocks compiled for SIMD level `level` (capped at rk_simd_level()), so that tests can
/// check every path's output in one process.
void rk_dequant_blocks_at(int level, int dtype, const void *src, float *dst, int64_t nblocks);

/// rk_matvec_multi for the quantised types (rk_matvec and rk_matvec_multi route to it).
void rk_qmatvec(int dtype, const void *W, const float *x, float *y, int nvec, int64_t cols,
                int64_t rows_total, int64_t row_begin, int64_t row_end);

/// rk_qmatvec dispatched as at SIMD level `level` (capped at rk_simd_level()), so that tests can
/// compare the paths in one process.
void rk_qmatvec_at(int level, int dtype, const void *W, const float *x, float *y, int nvec, int64_t cols,
                   int64_t rows_total, int64_t row_begin, int64_t row_end);

/// The int8-activation product of the VNNI (level 3) and AVX2 (level 1) paths for one vector, written
/// as plain scalar C: x quantised the same way, the same integer dot products per block, the scales
/// applied in a plain loop. The reference the tests check those kernels against (equal up to the fp32
/// summation order). Returns 0 (and writes nothing) for a type the int8 paths do not cover.
int rk_qmatvec_int8_ref(int dtype, const void *W, const float *x, float *y, int64_t cols,
                        int64_t row_begin, int64_t row_end);

/// Highest SIMD level the kernels dispatch to on this CPU: 0 portable (scalar C), 1 AVX2+FMA+F16C (with
/// the int8-activation matrix–vector products of the quantised types), 2 AVX-512F/BW/VL (used by rk_gemm, the quantised kernels, the f32/f16/bf16 matrix–vector
/// products, the WKV step for heads of 64 and the activations; the other kernels run their AVX2 code
/// at levels 1 and above), 3 AVX-512 with VNNI (level 2 plus the int8-activation matrix–vector products of the
/// quantised types, quant.c, and the int8 rk_gemm for Q4_K, Q5_K, Q6_K).
/// Chosen once per process. The environment variable RWKV_EDIT_KERNELS caps it: "portable" makes
/// every kernel (matvec, gemm, wkv, to_f32, sum) take the scalar path; "avx2" caps the level at 1,
/// "avx512" at 2 (the quantised products multiply in fp32).
int rk_simd_level(void);

/// y[r] = sum_c W[r][c] * x[c] for rows [row_begin, row_end) of a row-major [rows][cols] matrix.
/// Accumulates in fp32 whatever the weight type. Unaligned weight pointers are fine.
void rk_matvec(int dtype, const void *W, const float *x, float *y,
               int64_t cols, int64_t row_begin, int64_t row_end);

/// Same as rk_matvec for nvec input vectors at once (x is [nvec][cols], y is [nvec][rows_total]).
void rk_matvec_multi(int dtype, const void *W, const float *x, float *y, int nvec,
                     int64_t cols, int64_t rows_total, int64_t row_begin, int64_t row_end);

/// y[t][r] = sum_c W[r][c] * x[t][c] for t < T and rows [row_begin, row_end) of a row-major
/// [rows_total][cols] matrix W of any rk_dtype (quantised tiles are dequantised while packed); x is [T][cols] f32,
/// y is [T][rows_total] f32. fp32 accumulation of the exactly widened weights, except at SIMD level 3
/// for Q4_K, Q5_K and Q6_K: there x is quantised to int8 per 256 columns and the products are the
/// int8 ones of rk_qmatvec_int8_ref (per token, up to the fp32 summation order). Single-threaded
/// (the caller splits rows over threads); any T >= 1, cols and row range, unaligned pointers.
/// Each calling thread keeps its packing buffer (about 400 KiB with AVX-512, 135 KiB with AVX2; the
/// int8 path's holds x's int8 copy, about 1.3 · T · cols bytes, plus 24 KiB) for its lifetime.
void rk_gemm(int dtype, const void *W, const float *x, float *y, int T,
             int64_t cols, int64_t rows_total, int64_t row_begin, int64_t row_end);

/// Widen (or dequantise) n elements of a weight array to fp32; for a quantised type src starts at a
/// block and n is a multiple of its block.
void rk_to_f32(int dtype, const void *src, float *dst, int64_t n);

/// The time mix's elementwise activations over n values, in place allowed; bias may be NULL:
/// rk_sigmoid: out = 1 / (1 + e^-(x + bias)); rk_decay: out = e^(-e^-1/2 · sigmoid(x + bias)).
/// At SIMD level 1 and above the exponential is the kernels' own (rk_exp), below it libm's expf.
void rk_sigmoid(const float *x, const float *bias, float *out, int64_t n);
void rk_decay(const float *x, const float *bias, float *out, int64_t n);
/// out = tanh(x) over n values, in place allowed: libm's tanhf below SIMD level 1; at level 1 and above
/// from rk_exp's exponential, within 3e-7 of tanh absolutely (the LoRA product after it reads it so).
void rk_tanh(const float *x, float *out, int64_t n);

/// out = e^x over n values with the exponential rk_sigmoid and rk_decay use at this SIMD level
/// (tests measure its error against libm).
void rk_exp(const float *x, float *out, int64_t n);

/// The time mix's and channel mix's per-token arithmetic, 16 lanes at a time at SIMD level 2 and above,
/// 8 at level 1 (sums in lane order, then across lanes), serially below it. In place allowed.
/// rk_lerp: out = a + (b - a) * m over n values (the token shift's mixes, the value residual).
/// rk_layer_norm: out = (x - mean) / sqrt(var + eps) * w + bias over n values, biased variance.
/// rk_wkv_output: one head's WKV output y of n values becomes (layer_norm(y) + (sum r*k*rk) * v) * g.
/// rk_key_prep: for H heads of N, kk = normalize(k * kK) per head (norm floored at 1e-12), then
/// k = k * (1 + (a - 1) * kA).
void rk_lerp(const float *a, const float *b, const float *m, float *out, int64_t n);
void rk_layer_norm(const float *x, const float *w, const float *bias, float eps, float *out, int64_t n);
void rk_wkv_output(float *y, const float *r, const float *k, const float *v, const float *g, const float *rk,
                   const float *w, const float *bias, float eps, int64_t n);
void rk_key_prep(float *k, const float *a, const float *kK, const float *kA, float *kk, int H, int N);

/// Round fp32 to f16 / bf16 (round to nearest even).
void rk_f32_to_f16(const float *src, uint16_t *dst, int64_t n);
void rk_f32_to_bf16(const float *src, uint16_t *dst, int64_t n);

/// One RWKV-7 WKV step for H heads of size N (state S is [H][N][N], value-major: S[h][i][j],
/// i = value index, j = key index). S <- S*diag(w) + (S*(-kk)) (kk*a)^T + v k^T ; y = S r.
void rk_wkv7_step(float *S, int H, int N, const float *r, const float *w, const float *k,
                  const float *v, const float *kk, const float *a, float *y);

/// Sum of the squares of n floats, accumulated in double precision (several partial sums at SIMD
/// level 2 and above, one below).
double rk_sum_squares(const float *x, int64_t n);

/// Sum of n floats, streamed with wide loads: the memory-bandwidth probe of the benchmarks.
float rk_sum_f32(const float *x, int64_t n);

#endif
