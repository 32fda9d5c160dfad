// Scalar conversions the kernels share: IEEE half and bfloat16 to float, and one weight of an
// f32/f16/bf16 matrix. Exact (subnormals included), for portable paths and edge tiles.
#ifndef RK_SCALAR_H
#define RK_SCALAR_H
#include <stdint.h>
#include <string.h>
#include "rwkv_kernels.h"

static inline float rk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) { bits = sign; }
        else { // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) { mant <<= 1; exp--; }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f; memcpy(&f, &bits, 4); return f;
}

static inline float rk_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16; float f; memcpy(&f, &bits, 4); return f;
}

/// Weight i of a row-major f32, f16 or bf16 matrix.
static inline float rk_load_weight(int dtype, const void *W, int64_t i) {
    uint16_t h;
    switch (dtype) {
    case RK_F16: memcpy(&h, (const char *)W + 2 * i, 2); return rk_f16_to_f32(h);
    case RK_BF16: memcpy(&h, (const char *)W + 2 * i, 2); return rk_bf16_to_f32(h);
    default: { float f; memcpy(&f, (const char *)W + 4 * i, 4); return f; }
    }
}
#endif
