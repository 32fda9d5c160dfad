#ifndef RWKV_KERNELS_H
#define RWKV_KERNELS_H
#include <stdint.h>
#include <stddef.h>
#include "rwkv_pool.h"

/// Element types of weight matrices as stored in memory.
enum rk_dtype { RK_F32 = 0, RK_F16 = 1, RK_BF16 = 2 };

/// Highest SIMD level the kernels dispatch to on this CPU: 0 portable (scalar C), 1 AVX2+FMA+F16C,
/// 2 AVX-512F/BW/VL (used by rk_gemm; the other kernels run their AVX2 code at levels 1 and 2).
/// Chosen once per process. The environment variable RWKV_EDIT_KERNELS caps it: "portable" makes
/// every kernel (matvec, gemm, wkv, to_f32, sum) take the scalar path; "avx2" caps the level at 1.
int rk_simd_level(void);

/// y[r] = sum_c W[r][c] * x[c] for rows [row_begin, row_end) of a row-major [rows][cols] matrix.
/// Accumulates in fp32 whatever the weight type. Unaligned weight pointers are fine.
void rk_matvec(int dtype, const void *W, const float *x, float *y,
               int64_t cols, int64_t row_begin, int64_t row_end);

/// Same as rk_matvec for nvec input vectors at once (x is [nvec][cols], y is [nvec][rows_total]).
void rk_matvec_multi(int dtype, const void *W, const float *x, float *y, int nvec,
                     int64_t cols, int64_t rows_total, int64_t row_begin, int64_t row_end);

/// y[t][r] = sum_c W[r][c] * x[t][c] for t < T and rows [row_begin, row_end) of a row-major
/// [rows_total][cols] matrix W of type dtype (RK_F32, RK_F16, RK_BF16); x is [T][cols] f32,
/// y is [T][rows_total] f32. fp32 accumulation of the exactly widened weights. Single-threaded
/// (the caller splits rows over threads); any T >= 1, cols and row range, unaligned pointers.
/// Each calling thread keeps its packing buffer (about 400 KiB with AVX-512, 135 KiB with AVX2)
/// for its lifetime.
void rk_gemm(int dtype, const void *W, const float *x, float *y, int T,
             int64_t cols, int64_t rows_total, int64_t row_begin, int64_t row_end);

/// Widen n elements of a weight array to fp32.
void rk_to_f32(int dtype, const void *src, float *dst, int64_t n);

/// Round fp32 to f16 / bf16 (round to nearest even).
void rk_f32_to_f16(const float *src, uint16_t *dst, int64_t n);
void rk_f32_to_bf16(const float *src, uint16_t *dst, int64_t n);

/// One RWKV-7 WKV step for H heads of size N (state S is [H][N][N], value-major: S[h][i][j],
/// i = value index, j = key index). S <- S*diag(w) + (S*(-kk)) (kk*a)^T + v k^T ; y = S r.
void rk_wkv7_step(float *S, int H, int N, const float *r, const float *w, const float *k,
                  const float *v, const float *kk, const float *a, float *y);

/// Sum of n floats, streamed with wide loads: the memory-bandwidth probe of the benchmarks.
float rk_sum_f32(const float *x, int64_t n);

#endif
