#version 450
#extension GL_EXT_control_flow_attributes : enable
#ifdef STORE64
#extension GL_ARB_gpu_shader_int64 : enable
#endif
// variants: rows=LANES=8 rows64=LANES=8,STORE64=1 gpu=LANES=64
// The WKV-7 recurrence for head size 64: one workgroup per (sequence, head); invocation l holds the
// state rows i = l·RPL … l·RPL+RPL-1 (value-major S[i][j], as the CPU State). Per token:
// sa_i = -S_i·kk; S_i = S_i*w + sa_i*(kk*a) + v_i k; y_i = S_i·r. Rows are independent, so no
// barriers. The token vectors and the state are read through texel buffers (one vector gather each
// on llvmpipe); `rows` gives each of 8 lanes 8 rows so each gather serves 8 rows, `gpu` one row per
// invocation. tmixpost.comp has already replaced a by kk*a.
#define N 64
#ifndef LANES
#define LANES 8
#endif
#define RPL (N / LANES)
layout(local_size_x = LANES) in;
// Written as vec4, or with STORE64 (needs shaderInt64) as pairs of 64-bit words: llvmpipe stores lane
// by lane, one loop per store instruction.
layout(set = 0, binding = 0) writeonly buffer Sb { vec4 S[]; };     // this layer's window: [B][H][N][N]
#ifdef STORE64
layout(set = 0, binding = 0) writeonly buffer S8b { u64vec4 S8[]; };
uint64_t pack(float a, float b) { return packUint2x32(uvec2(floatBitsToUint(a), floatBitsToUint(b))); }
#endif
layout(set = 0, binding = 7) writeonly buffer Yb { float y[]; };
layout(set = 0, binding = 7) writeonly buffer Y4b { vec4 y4[]; };
layout(set = 0, binding = 8) readonly buffer Qb { uint seqInfo[]; }; // [B][2]: first row, row count
layout(set = 0, binding = 11) uniform usamplerBuffer St;             // the same window, read
layout(set = 0, binding = 12) uniform usamplerBuffer Rt;
layout(set = 0, binding = 13) uniform usamplerBuffer Wt;
layout(set = 0, binding = 14) uniform usamplerBuffer Kt;
layout(set = 0, binding = 15) uniform usamplerBuffer Vt;
layout(set = 0, binding = 16) uniform usamplerBuffer KKt;
layout(set = 0, binding = 17) uniform usamplerBuffer KAt;            // kk*a
layout(push_constant) uniform P { uint C; uint H; } p;

vec4 fetch(usamplerBuffer b, int i) { return uintBitsToFloat(texelFetch(b, i)); }

void main() {
    uint b = gl_WorkGroupID.x, h = gl_WorkGroupID.y;
    int i0 = int(gl_LocalInvocationID.x) * RPL;
    int sBase = int((b * p.H + h) * N * N) + i0 * N; // float index of S[i0][0]
    float s[RPL][N];
    [[unroll]] for (int m = 0; m < RPL; m++)
        [[unroll]] for (int q = 0; q < N / 4; q++) {
            vec4 v4 = fetch(St, (sBase + m * N) / 4 + q);
            s[m][4 * q] = v4.x; s[m][4 * q + 1] = v4.y; s[m][4 * q + 2] = v4.z; s[m][4 * q + 3] = v4.w;
        }
    uint start = seqInfo[2 * b], len = seqInfo[2 * b + 1];
    for (uint t = start; t < start + len; t++) {
        int o = int(t * p.C + h * N), o4 = o / 4;
        float sa[RPL], vi[RPL], yi[RPL];
        [[unroll]] for (int m = 0; m < RPL; m++) { sa[m] = 0.0; yi[m] = 0.0; }
        if (RPL % 4 == 0) {
            [[unroll]] for (int q = 0; q < RPL / 4; q++) {
                vec4 v4 = fetch(Vt, (o + i0) / 4 + q);
                vi[4 * q] = v4.x; vi[4 * q + 1] = v4.y; vi[4 * q + 2] = v4.z; vi[4 * q + 3] = v4.w;
            }
        } else {
            [[unroll]] for (int m = 0; m < RPL; m++) vi[m] = fetch(Vt, (o + i0 + m) / 4)[(i0 + m) % 4];
        }
        [[unroll]] for (int q = 0; q < N / 4; q++) {
            vec4 kk = fetch(KKt, o4 + q);
            [[unroll]] for (int m = 0; m < RPL; m++)
                sa[m] -= s[m][4 * q] * kk.x + s[m][4 * q + 1] * kk.y + s[m][4 * q + 2] * kk.z + s[m][4 * q + 3] * kk.w;
        }
        [[unroll]] for (int q = 0; q < N / 4; q++) {
            vec4 w = fetch(Wt, o4 + q), k = fetch(Kt, o4 + q), ka = fetch(KAt, o4 + q), r = fetch(Rt, o4 + q);
            [[unroll]] for (int m = 0; m < RPL; m++)
                [[unroll]] for (int c = 0; c < 4; c++) {
                    float x = s[m][4 * q + c] * w[c] + sa[m] * ka[c] + vi[m] * k[c];
                    s[m][4 * q + c] = x;
                    yi[m] += x * r[c];
                }
        }
        if (RPL % 4 == 0) {
            [[unroll]] for (int q = 0; q < RPL / 4; q++) y4[(o + i0) / 4 + q] = vec4(yi[4 * q], yi[4 * q + 1], yi[4 * q + 2], yi[4 * q + 3]);
        } else {
            [[unroll]] for (int m = 0; m < RPL; m++) y[o + i0 + m] = yi[m];
        }
    }
#ifdef STORE64
    [[unroll]] for (int m = 0; m < RPL; m++)
        [[unroll]] for (int q = 0; q < N / 8; q++)
            S8[(sBase + m * N) / 8 + q] = u64vec4(pack(s[m][8 * q], s[m][8 * q + 1]), pack(s[m][8 * q + 2], s[m][8 * q + 3]),
                                                  pack(s[m][8 * q + 4], s[m][8 * q + 5]), pack(s[m][8 * q + 6], s[m][8 * q + 7]));
#else
    [[unroll]] for (int m = 0; m < RPL; m++)
        [[unroll]] for (int q = 0; q < N / 4; q++)
            S[(sBase + m * N) / 4 + q] = vec4(s[m][4 * q], s[m][4 * q + 1], s[m][4 * q + 2], s[m][4 * q + 3]);
#endif
}
