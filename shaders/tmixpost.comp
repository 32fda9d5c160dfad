#version 450
// One invocation per (row, head): decay w, in-context rate a, removal key kk = normalize(k*k_k),
// k *= 1 + (a-1)*k_a, a replaced by kk*a (all the recurrence needs), and the value residual (layer 0
// stores v_first; later layers mix towards it).
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint N = 64;
layout(set = 0, binding = 0) readonly buffer Pb { float prm[]; };
layout(set = 0, binding = 1) buffer Kb { float k[]; };
layout(set = 0, binding = 2) writeonly buffer KKb { float kk[]; };
layout(set = 0, binding = 3) buffer Wb { float w[]; };
layout(set = 0, binding = 4) buffer Ab { float a[]; };
layout(set = 0, binding = 5) buffer Vb { float v[]; };
layout(set = 0, binding = 6) buffer VFb { float vfirst[]; };
layout(set = 0, binding = 7) readonly buffer VLb { float vlora[]; };
layout(push_constant) uniform P { uint T; uint C; uint H; uint firstLayer; uint w0; uint a0; uint kK; uint kA; uint v0; } p;

float sigm(float x) { return 1.0 / (1.0 + exp(-x)); }

void main() {
    uint gid = gl_GlobalInvocationID.x;
    if (gid >= p.T * p.H) return;
    uint t = gid / p.H, h = gid % p.H;
    uint o = t * p.C + h * N;
    for (uint j = 0; j < N; j++) {
        uint ch = h * N + j, i = o + j;
        w[i] = exp(-0.606531 * sigm(prm[p.w0 + ch] + w[i]));
        a[i] = sigm(prm[p.a0 + ch] + a[i]);
    }
    float ss = 0.0;
    for (uint j = 0; j < N; j++) { float x = k[o + j] * prm[p.kK + h * N + j]; ss += x * x; }
    float inv = 1.0 / max(sqrt(ss), 1e-12);
    for (uint j = 0; j < N; j++) {
        uint ch = h * N + j, i = o + j;
        float kki = k[i] * prm[p.kK + ch] * inv, ai = a[i];
        kk[i] = kki;
        k[i] *= 1.0 + (ai - 1.0) * prm[p.kA + ch];
        a[i] = kki * ai; // wkv7.comp uses only the product
        if (p.firstLayer != 0) vfirst[i] = v[i];
        else v[i] += (vfirst[i] - v[i]) * sigm(prm[p.v0 + ch] + vlora[i]);
    }
}
