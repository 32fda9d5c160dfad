#version 450
// Token shift + lerps, one invocation per (row, channel). A row's predecessor is the previous row of
// its sequence, or the state's x_prev for a sequence's first row; a sequence's last row becomes the
// new x_prev (written to a separate buffer, so no invocation reads what another writes).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer Xb { float xln[]; };
layout(set = 0, binding = 1) readonly buffer Ib { float prevIn[]; };   // this layer's window: [B][C]
layout(set = 0, binding = 2) writeonly buffer Ob { float prevOut[]; }; // this layer's window: [B][C]
layout(set = 0, binding = 3) readonly buffer Rb { uint rowInfo[]; };   // seq | first << 30 | last << 31
layout(set = 0, binding = 4) readonly buffer Pb { float prm[]; };
layout(set = 0, binding = 5) writeonly buffer O0 { float o0[]; };
layout(set = 0, binding = 6) writeonly buffer O1 { float o1[]; };
layout(set = 0, binding = 7) writeonly buffer O2 { float o2[]; };
layout(set = 0, binding = 8) writeonly buffer O3 { float o3[]; };
layout(set = 0, binding = 9) writeonly buffer O4 { float o4[]; };
layout(set = 0, binding = 10) writeonly buffer O5 { float o5[]; };
layout(push_constant) uniform P { uint T; uint C; uint nMix; uint m0; uint m1; uint m2; uint m3; uint m4; uint m5; } p;

void main() {
    uint gid = gl_GlobalInvocationID.x;
    if (gid >= p.T * p.C) return;
    uint t = gid / p.C, j = gid % p.C;
    uint info = rowInfo[t];
    uint seq = info & 0x3fffffffu;
    float a = xln[gid];
    float prev = (info & 0x40000000u) != 0 ? prevIn[seq * p.C + j] : xln[gid - p.C];
    if ((info & 0x80000000u) != 0) prevOut[seq * p.C + j] = a;
    float d = prev - a;
    o0[gid] = a + d * prm[p.m0 + j];
    if (p.nMix > 1) {
        o1[gid] = a + d * prm[p.m1 + j];
        o2[gid] = a + d * prm[p.m2 + j];
        o3[gid] = a + d * prm[p.m3 + j];
        o4[gid] = a + d * prm[p.m4 + j];
        o5[gid] = a + d * prm[p.m5 + j];
    }
}
