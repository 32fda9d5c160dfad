// Internal: what quant.c's int8-activation (AVX512-VNNI) kernels share with the int8 prompt GEMM in
// gemm.c. Call only where rk_simd_level() >= 3.
#ifndef RK_QUANT_VNNI_H
#define RK_QUANT_VNNI_H
#include <stdint.h>

/// x[0, n) quantised to int8 in blocks of blk (32 or 256): q, d[b] = max|x| / 127 per block; for blk 32
/// (xc non-NULL) xc[i] = −128 · Σ q[4i .. 4i+4); with s16 non-NULL, Σ q per 16 as float (s16) and int16
/// (s16i). The quantiser of the decode kernels (act_quant_vnni), and the same values as the reference's.
void rk_act_quant_vnni(const float *x, int64_t n, int blk, int8_t *q, float *d, int32_t *xc, float *s16,
                       int16_t *s16i);

/// One Q4_K, Q5_K or Q6_K super-block to its 256 unsigned weight values in order, q[256], and per
/// sub-block the fp32 scale sc (Q4_K/Q5_K: 8, d · s_i; Q6_K: 16, d · sc_j) and for Q4_K/Q5_K the
/// minimum mn (8, dmin · m_i): w = sc · q − mn, or sc · (q − 32) for Q6_K.
void rk_kquant_unpack_vnni(int dtype, const uint8_t *p, uint8_t *q, float *sc, float *mn);
#endif
