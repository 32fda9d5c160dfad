#version 450
// The WKV-7 recurrence: one workgroup per (sequence, head), one invocation per value row i holding
// S[i][*] (value-major, as the CPU State). Per token: sa = -S·kk; S = S*diag(w) + sa*(kk*a)^T + v k^T;
// y = S·r. Rows are independent, so no barriers.
layout(constant_id = 0) const uint N = 64;
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) buffer Sb { float S[]; };            // this layer's window: [B][H][N][N]
layout(set = 0, binding = 1) readonly buffer Rb { float r[]; };
layout(set = 0, binding = 2) readonly buffer Wb { float w[]; };
layout(set = 0, binding = 3) readonly buffer Kb { float k[]; };
layout(set = 0, binding = 4) readonly buffer Vb { float v[]; };
layout(set = 0, binding = 5) readonly buffer KKb { float kk[]; };
layout(set = 0, binding = 6) readonly buffer Ab { float a[]; };
layout(set = 0, binding = 7) writeonly buffer Yb { float y[]; };
layout(set = 0, binding = 8) readonly buffer Qb { uint seqInfo[]; }; // [B][2]: first row, row count
layout(push_constant) uniform P { uint C; uint H; } p;

void main() {
    uint b = gl_WorkGroupID.x, h = gl_WorkGroupID.y, i = gl_LocalInvocationID.x;
    uint base = ((b * p.H + h) * N + i) * N;
    float s[N];
    for (uint j = 0; j < N; j++) s[j] = S[base + j];
    uint start = seqInfo[2 * b], len = seqInfo[2 * b + 1];
    for (uint t = start; t < start + len; t++) {
        uint o = t * p.C + h * N;
        float sa = 0.0;
        for (uint j = 0; j < N; j++) sa -= s[j] * kk[o + j];
        float vi = v[o + i], yi = 0.0;
        for (uint j = 0; j < N; j++) {
            float x = s[j] * w[o + j] + sa * kk[o + j] * a[o + j] + vi * k[o + j];
            s[j] = x;
            yi += x * r[o + j];
        }
        y[o + i] = yi;
    }
    for (uint j = 0; j < N; j++) S[base + j] = s[j];
}
