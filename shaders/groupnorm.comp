#version 450
// One invocation per (row, head of 64): group norm of y (eps 64e-5), plus the r·k bonus times v, times
// gate g. Inputs through texel buffers, y rewritten as vec4s (llvmpipe runs storage-buffer accesses
// lane by lane).
#define N 64
layout(local_size_x = 64) in;
layout(set = 0, binding = 1) writeonly buffer Yb { vec4 y[]; };
layout(set = 0, binding = 11) uniform usamplerBuffer Prm;
layout(set = 0, binding = 12) uniform usamplerBuffer Y;
layout(set = 0, binding = 13) uniform usamplerBuffer R;
layout(set = 0, binding = 14) uniform usamplerBuffer K;
layout(set = 0, binding = 15) uniform usamplerBuffer V;
layout(set = 0, binding = 16) uniform usamplerBuffer G;
// lw, lb, rK: offsets in Prm, in floats (multiples of 4).
layout(push_constant) uniform P { uint T; uint C; uint H; uint lw; uint lb; uint rK; } p;

vec4 fetch(usamplerBuffer b, uint i) { return uintBitsToFloat(texelFetch(b, int(i))); }

void main() {
    uint gid = gl_GlobalInvocationID.x;
    if (gid >= p.T * p.H) return;
    uint t = gid / p.H, h = gid % p.H;
    uint o = (t * p.C + h * N) / 4, ch = h * N / 4;
    vec4 s = vec4(0.0);
    for (uint q = 0; q < N / 4; q++) s += fetch(Y, o + q);
    float mean = (s.x + s.y + s.z + s.w) / float(N);
    vec4 vs = vec4(0.0), bonus = vec4(0.0);
    for (uint q = 0; q < N / 4; q++) {
        vec4 d = fetch(Y, o + q) - mean;
        vs += d * d;
        bonus += fetch(R, o + q) * fetch(K, o + q) * fetch(Prm, p.rK / 4 + ch + q);
    }
    float inv = 1.0 / sqrt((vs.x + vs.y + vs.z + vs.w) / float(N) + 64e-5);
    float b = bonus.x + bonus.y + bonus.z + bonus.w;
    for (uint q = 0; q < N / 4; q++) {
        vec4 yn = (fetch(Y, o + q) - mean) * inv * fetch(Prm, p.lw / 4 + ch + q) + fetch(Prm, p.lb / 4 + ch + q);
        y[o + q] = (yn + b * fetch(V, o + q)) * fetch(G, o + q);
    }
}
