#version 450
#extension GL_EXT_control_flow_attributes : enable
// variants: t1=TB=1,RPI=8,LX=16 t2=TB=2,RPI=8,LX=16 t4=TB=4,RPI=8,LX=16 t8=TB=8,RPI=16,LX=8 t16=TB=16,RPI=32,LX=8 t32=TB=32,RPI=24,LX=8
// Y[t][yCol0 + r] (op)= sum_k W[r][k] * X[t][k], the product kernel for software drivers (lavapipe):
// each invocation computes RPI rows of W for TB token rows, so a weight serves TB tokens and an input
// value RPI rows. Both operands are read through texel buffers: llvmpipe turns a texel fetch into one
// vector gather, where a storage-buffer load runs lane by lane with a branch per lane. TB, RPI and the
// workgroup width LX are compile-time constants (one SPIR-V per variant) so the loops unroll and the
// accumulators stay out of indexed memory. W is one row chunk of a weight matrix: f32 (4 per texel),
// f16 or bf16 (8 per texel: pairs in uints, bf16 decoded by shifts), in blocks of RB rows interleaved
// by 8 columns ([block][k / 8][row in block][8 values], GPUMatrix.Layout.rowBlocks), so a workgroup
// reads a few sequential streams, one per block, rather than one per row. fp32 accumulation.
// op: 0 store, 1 add, 2 tanh, 3 sigmoid, 4 relu².
#define RB 32 // GPUMatrix.rowBlock
#ifndef TB
#define TB 1
#define RPI 8
#define LX 16
#endif
layout(local_size_x = LX) in;
layout(constant_id = 0) const uint DTYPE = 0; // 0 f32, 1 f16, 2 bf16
layout(set = 0, binding = 2) buffer Yb { vec4 Y4[]; };
layout(set = 0, binding = 11) uniform usamplerBuffer W;
layout(set = 0, binding = 12) uniform usamplerBuffer X;
layout(push_constant) uniform P {
    uint rows; uint cols; uint T; uint xStride; uint yStride; uint yCol0; uint mode;
} p;

vec4 lo16(uvec4 u) { return DTYPE == 1 ? vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y))
                          : vec4(uintBitsToFloat(u.x << 16), uintBitsToFloat(u.x & 0xffff0000u),
                                 uintBitsToFloat(u.y << 16), uintBitsToFloat(u.y & 0xffff0000u)); }
vec4 hi16(uvec4 u) { return DTYPE == 1 ? vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w))
                          : vec4(uintBitsToFloat(u.z << 16), uintBitsToFloat(u.z & 0xffff0000u),
                                 uintBitsToFloat(u.w << 16), uintBitsToFloat(u.w & 0xffff0000u)); }

void main() {
    uint r0 = gl_GlobalInvocationID.x * RPI;
    uint t0 = gl_WorkGroupID.y * TB;
    int n8 = int(p.cols / 8);
    int tq = DTYPE == 0 ? 2 : 1; // texels per 8 values of a row
    int qStride = RB * tq, wb[RPI];
    [[unroll]] for (uint j = 0; j < RPI; j++) {
        int r = int(min(r0 + j, p.rows - 1));
        wb[j] = (r / RB) * RB * n8 * tq + (r % RB) * tq;
    }
    int xs = int(p.xStride / 4), xb = int(t0) * xs;
    float acc[RPI][TB];
    [[unroll]] for (uint j = 0; j < RPI; j++) [[unroll]] for (uint t = 0; t < TB; t++) acc[j][t] = 0.0;
    for (int q = 0; q < n8; q++) {
        vec4 lo[RPI], hi[RPI];
        [[unroll]] for (uint j = 0; j < RPI; j++) {
            if (DTYPE == 0) {
                lo[j] = uintBitsToFloat(texelFetch(W, wb[j] + qStride * q));
                hi[j] = uintBitsToFloat(texelFetch(W, wb[j] + qStride * q + 1));
            } else {
                uvec4 u = texelFetch(W, wb[j] + qStride * q);
                lo[j] = lo16(u);
                hi[j] = hi16(u);
            }
        }
        [[unroll]] for (uint t = 0; t < TB; t++) {
            // Rows past T read zeros or other rows' data; their sums are never stored.
            vec4 x0 = uintBitsToFloat(texelFetch(X, xb + int(t) * xs + 2 * q));
            vec4 x1 = uintBitsToFloat(texelFetch(X, xb + int(t) * xs + 2 * q + 1));
            [[unroll]] for (uint j = 0; j < RPI; j++) {
                float s = acc[j][t];
                s = fma(lo[j].x, x0.x, s); s = fma(lo[j].y, x0.y, s); s = fma(lo[j].z, x0.z, s); s = fma(lo[j].w, x0.w, s);
                s = fma(hi[j].x, x1.x, s); s = fma(hi[j].y, x1.y, s); s = fma(hi[j].z, x1.z, s); s = fma(hi[j].w, x1.w, s);
                acc[j][t] = s;
            }
        }
    }
    // Stores run lane by lane on llvmpipe, so each 4 rows of output go out as one vec4 (the engine
    // pads every matrix to a multiple of 4 rows).
    [[unroll]] for (uint t = 0; t < TB; t++) {
        if (t0 + t >= p.T) break;
        uint base = (t0 + t) * p.yStride + p.yCol0 + r0;
        [[unroll]] for (uint j = 0; j < RPI; j += 4) {
            if (r0 + j >= p.rows) break;
            vec4 v = vec4(acc[j][t], acc[j + 1][t], acc[j + 2][t], acc[j + 3][t]);
            uint i = (base + j) / 4;
            if (p.mode == 1) v += Y4[i];
            else if (p.mode == 2) v = tanh(clamp(v, -15.0, 15.0));
            else if (p.mode == 3) v = 1.0 / (1.0 + exp(-v));
            else if (p.mode == 4) { v = max(v, 0.0); v = v * v; }
            Y4[i] = v;
        }
    }
}
