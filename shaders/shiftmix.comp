#version 450
// Token shift + lerps, one invocation per (row, 4 channels). A row's predecessor is the previous row of
// its sequence, or the state's x_prev for a sequence's first row; a sequence's last row becomes the
// new x_prev (written to a separate buffer, so no invocation reads what another writes). Inputs come
// through texel buffers and outputs go out as vec4s: llvmpipe runs storage-buffer accesses lane by lane.
layout(local_size_x = 64) in;
layout(set = 0, binding = 2) writeonly buffer Ob { vec4 prevOut[]; }; // this layer's window: [B][C]
layout(set = 0, binding = 3) readonly buffer Rb { uint rowInfo[]; };   // seq | first << 30 | last << 31
layout(set = 0, binding = 5) writeonly buffer O0 { vec4 o0[]; };
layout(set = 0, binding = 6) writeonly buffer O1 { vec4 o1[]; };
layout(set = 0, binding = 7) writeonly buffer O2 { vec4 o2[]; };
layout(set = 0, binding = 8) writeonly buffer O3 { vec4 o3[]; };
layout(set = 0, binding = 9) writeonly buffer O4 { vec4 o4[]; };
layout(set = 0, binding = 10) writeonly buffer O5 { vec4 o5[]; };
layout(set = 0, binding = 11) uniform usamplerBuffer X;      // layer-normed rows [T][C]
layout(set = 0, binding = 12) uniform usamplerBuffer PrevIn; // this layer's window: [B][C]
layout(set = 0, binding = 13) uniform usamplerBuffer Prm;
// m0…m5: offsets of the mix vectors in Prm, in floats (multiples of 4).
layout(push_constant) uniform P { uint T; uint C; uint nMix; uint m0; uint m1; uint m2; uint m3; uint m4; uint m5; } p;

vec4 fetch(usamplerBuffer b, uint i) { return uintBitsToFloat(texelFetch(b, int(i))); }

void main() {
    uint C4 = p.C / 4, gid = gl_GlobalInvocationID.x;
    if (gid >= p.T * C4) return;
    uint t = gid / C4, j = gid % C4;
    uint info = rowInfo[t];
    uint seq = info & 0x3fffffffu;
    vec4 a = fetch(X, gid);
    vec4 prev = (info & 0x40000000u) != 0 ? fetch(PrevIn, seq * C4 + j) : fetch(X, gid - C4);
    if ((info & 0x80000000u) != 0) prevOut[seq * C4 + j] = a;
    vec4 d = prev - a;
    o0[gid] = a + d * fetch(Prm, p.m0 / 4 + j);
    if (p.nMix > 1) {
        o1[gid] = a + d * fetch(Prm, p.m1 / 4 + j);
        o2[gid] = a + d * fetch(Prm, p.m2 / 4 + j);
        o3[gid] = a + d * fetch(Prm, p.m3 / 4 + j);
        o4[gid] = a + d * fetch(Prm, p.m4 / 4 + j);
        o5[gid] = a + d * fetch(Prm, p.m5 / 4 + j);
    }
}
