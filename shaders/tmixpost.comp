#version 450
// One invocation per (row, head of 64): decay w, in-context rate a, removal key kk = normalize(k*k_k),
// k *= 1 + (a-1)*k_a, a replaced by kk*a (all the recurrence needs), and the value residual (layer 0
// stores v_first; later layers mix towards it). Inputs through texel buffers, outputs as vec4s
// (llvmpipe runs storage-buffer accesses lane by lane); each invocation reads only what it writes.
#define N 64
layout(local_size_x = 64) in;
layout(set = 0, binding = 1) writeonly buffer Kb { vec4 k[]; };
layout(set = 0, binding = 2) writeonly buffer KKb { vec4 kk[]; };
layout(set = 0, binding = 3) writeonly buffer Wb { vec4 w[]; };
layout(set = 0, binding = 4) writeonly buffer Ab { vec4 a[]; };
layout(set = 0, binding = 5) writeonly buffer Vb { vec4 v[]; };
layout(set = 0, binding = 6) writeonly buffer VFb { vec4 vfirst[]; };
layout(set = 0, binding = 11) uniform usamplerBuffer Prm;
layout(set = 0, binding = 12) uniform usamplerBuffer K;
layout(set = 0, binding = 13) uniform usamplerBuffer W;
layout(set = 0, binding = 14) uniform usamplerBuffer A;
layout(set = 0, binding = 15) uniform usamplerBuffer V;
layout(set = 0, binding = 16) uniform usamplerBuffer VF;
layout(set = 0, binding = 17) uniform usamplerBuffer VL;
// w0, a0, kK, kA, v0: offsets in Prm, in floats (multiples of 4).
layout(push_constant) uniform P { uint T; uint C; uint H; uint firstLayer; uint w0; uint a0; uint kK; uint kA; uint v0; } p;

vec4 fetch(usamplerBuffer b, uint i) { return uintBitsToFloat(texelFetch(b, int(i))); }
vec4 sigm(vec4 x) { return 1.0 / (1.0 + exp(-x)); }

void main() {
    uint gid = gl_GlobalInvocationID.x;
    if (gid >= p.T * p.H) return;
    uint t = gid / p.H, h = gid % p.H;
    uint o = (t * p.C + h * N) / 4, ch = h * N / 4;
    vec4 ss = vec4(0.0);
    for (uint q = 0; q < N / 4; q++) { vec4 x = fetch(K, o + q) * fetch(Prm, p.kK / 4 + ch + q); ss += x * x; }
    float inv = 1.0 / max(sqrt(ss.x + ss.y + ss.z + ss.w), 1e-12);
    for (uint q = 0; q < N / 4; q++) {
        uint i = o + q, c = ch + q;
        w[i] = exp(-0.606531 * sigm(fetch(Prm, p.w0 / 4 + c) + fetch(W, i)));
        vec4 ai = sigm(fetch(Prm, p.a0 / 4 + c) + fetch(A, i));
        vec4 ki = fetch(K, i), kki = ki * fetch(Prm, p.kK / 4 + c) * inv;
        kk[i] = kki;
        k[i] = ki * (1.0 + (ai - 1.0) * fetch(Prm, p.kA / 4 + c));
        a[i] = kki * ai;
        vec4 vi = fetch(V, i);
        if (p.firstLayer != 0) vfirst[i] = vi;
        else v[i] = vi + (fetch(VF, i) - vi) * sigm(fetch(Prm, p.v0 / 4 + c) + fetch(VL, i));
    }
}
