#version 450
// One invocation per (row, head): group norm of y (eps 64e-5), plus the r·k bonus times v, times gate g.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint N = 64;
layout(set = 0, binding = 0) readonly buffer Pb { float prm[]; };
layout(set = 0, binding = 1) buffer Yb { float y[]; };
layout(set = 0, binding = 2) readonly buffer Rb { float r[]; };
layout(set = 0, binding = 3) readonly buffer Kb { float k[]; };
layout(set = 0, binding = 4) readonly buffer Vb { float v[]; };
layout(set = 0, binding = 5) readonly buffer Gb { float g[]; };
layout(push_constant) uniform P { uint T; uint C; uint H; uint lw; uint lb; uint rK; } p;

void main() {
    uint gid = gl_GlobalInvocationID.x;
    if (gid >= p.T * p.H) return;
    uint t = gid / p.H, h = gid % p.H;
    uint o = t * p.C + h * N;
    float mean = 0.0;
    for (uint j = 0; j < N; j++) mean += y[o + j];
    mean /= float(N);
    float vs = 0.0;
    for (uint j = 0; j < N; j++) { float d = y[o + j] - mean; vs += d * d; }
    float inv = 1.0 / sqrt(vs / float(N) + 64e-5);
    float bonus = 0.0;
    for (uint j = 0; j < N; j++) bonus += r[o + j] * k[o + j] * prm[p.rK + h * N + j];
    for (uint j = 0; j < N; j++) {
        uint ch = h * N + j;
        float yn = (y[o + j] - mean) * inv * prm[p.lw + ch] + prm[p.lb + ch];
        y[o + j] = (yn + bonus * v[o + j]) * g[o + j];
    }
}
