#version 450
// Y[t][yCol0 + r] (op)= sum_k W[r][k] * X[t][k] for a block of TB token rows per workgroup column.
// W is one row-chunk of a weight matrix: f32 (4 per uvec4), f16 or bf16 (8 per uvec4, pairs packed
// in uints). fp32 accumulation. op: 0 store, 1 add, 2 tanh, 3 sigmoid, 4 relu².
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint DTYPE = 0; // 0 f32, 1 f16, 2 bf16
layout(constant_id = 1) const uint TB = 8;
layout(set = 0, binding = 0) readonly buffer Wb { uvec4 W[]; };
layout(set = 0, binding = 1) readonly buffer Xb { vec4 X[]; };
layout(set = 0, binding = 2) buffer Yb { float Y[]; };
layout(push_constant) uniform P {
    uint rows; uint cols; uint T; uint xStride; uint yStride; uint yCol0; uint mode;
} p;

void main() {
    uint r = gl_GlobalInvocationID.x;
    if (r >= p.rows) return;
    uint t0 = gl_WorkGroupID.y * TB;
    float acc[TB];
    for (uint t = 0; t < TB; t++) acc[t] = 0.0;
    uint n8 = p.cols / 8;
    uint wbase = r * (DTYPE == 0 ? 2 * n8 : n8);
    uint xs = p.xStride / 4;
    uint xbase = t0 * xs;
    for (uint q = 0; q < n8; q++) {
        vec4 lo, hi;
        if (DTYPE == 0) {
            lo = uintBitsToFloat(W[wbase + 2 * q]);
            hi = uintBitsToFloat(W[wbase + 2 * q + 1]);
        } else if (DTYPE == 1) {
            uvec4 u = W[wbase + q];
            lo = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
            hi = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
        } else {
            uvec4 u = W[wbase + q];
            lo = vec4(uintBitsToFloat(u.x << 16), uintBitsToFloat(u.x & 0xffff0000u),
                      uintBitsToFloat(u.y << 16), uintBitsToFloat(u.y & 0xffff0000u));
            hi = vec4(uintBitsToFloat(u.z << 16), uintBitsToFloat(u.z & 0xffff0000u),
                      uintBitsToFloat(u.w << 16), uintBitsToFloat(u.w & 0xffff0000u));
        }
        for (uint t = 0; t < TB; t++) {
            uint xi = xbase + t * xs + 2 * q;
            acc[t] += dot(lo, X[xi]) + dot(hi, X[xi + 1]);
        }
    }
    for (uint t = 0; t < TB; t++) {
        if (t0 + t >= p.T) break;
        uint i = (t0 + t) * p.yStride + p.yCol0 + r;
        float v = acc[t];
        if (p.mode == 1) v += Y[i];
        else if (p.mode == 2) v = tanh(clamp(v, -15.0, 15.0));
        else if (p.mode == 3) v = 1.0 / (1.0 + exp(-v));
        else if (p.mode == 4) { v = max(v, 0.0); v = v * v; }
        Y[i] = v;
    }
}
