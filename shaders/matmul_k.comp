#version 450
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
// matmul.comp for GPUs: the lanes of a subgroup run along k (lane l reads 8-element blocks l, l+lanes,
// … of RPI rows: neighbouring lanes read neighbouring bytes, so loads coalesce) and subgroupAdd sums
// the partial products. A workgroup covers RG rows whatever the subgroup size (≤ 32): its subgroups
// take RPI-row blocks in turn. Needs subgroup arithmetic (Vulkan 1.1). lavapipe runs matmul.comp,
// which is faster there.
// Y[t][yCol0 + r] (op)= sum_k W[r][k] * X[t][k]: each invocation computes RPI rows for TB token rows,
// so every weight load serves TB tokens and every input load serves RPI rows. W is one row chunk of a
// weight matrix: f32 (4 per uvec4), f16 or bf16 (8 per uvec4: pairs packed in uints, bf16 decoded by
// shifts). fp32 accumulation. op: 0 store, 1 add, 2 tanh, 3 sigmoid, 4 relu².
layout(local_size_x = 32) in;
layout(constant_id = 0) const uint DTYPE = 0; // 0 f32, 1 f16, 2 bf16
layout(constant_id = 1) const uint TB = 8;
layout(constant_id = 2) const uint RPI = 4;
const uint RG = 16; // rows per workgroup
layout(set = 0, binding = 0) readonly buffer Wb { uvec4 W[]; };
layout(set = 0, binding = 1) readonly buffer Xb { vec4 X[]; };
layout(set = 0, binding = 2) buffer Yb { float Y[]; };
layout(push_constant) uniform P {
    uint rows; uint cols; uint T; uint xStride; uint yStride; uint yCol0; uint mode;
} p;

void main() {
    uint lanes = min(gl_SubgroupSize, gl_WorkGroupSize.x), lane = gl_SubgroupInvocationID;
    uint t0 = gl_WorkGroupID.y * TB;
    uint n8 = p.cols / 8;
    uint rowU4 = DTYPE == 0 ? 2 * n8 : n8;
    uint xs = p.xStride / 4;
    uint xbase = t0 * xs;
    for (uint rb = gl_SubgroupID * RPI; rb < RG; rb += gl_NumSubgroups * RPI) {
        uint r0 = gl_WorkGroupID.x * RG + rb;
        if (r0 >= p.rows) break;
        float acc[RPI * TB];
        for (uint i = 0; i < RPI * TB; i++) acc[i] = 0.0;
        uint wb[RPI];
        for (uint j = 0; j < RPI; j++) wb[j] = min(r0 + j, p.rows - 1) * rowU4;
        for (uint q = lane; q < n8; q += lanes) {
            vec4 lo[RPI], hi[RPI];
            for (uint j = 0; j < RPI; j++) {
                if (DTYPE == 0) {
                    lo[j] = uintBitsToFloat(W[wb[j] + 2 * q]);
                    hi[j] = uintBitsToFloat(W[wb[j] + 2 * q + 1]);
                } else if (DTYPE == 1) {
                    uvec4 u = W[wb[j] + q];
                    lo[j] = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
                    hi[j] = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
                } else {
                    uvec4 u = W[wb[j] + q];
                    lo[j] = vec4(uintBitsToFloat(u.x << 16), uintBitsToFloat(u.x & 0xffff0000u),
                                 uintBitsToFloat(u.y << 16), uintBitsToFloat(u.y & 0xffff0000u));
                    hi[j] = vec4(uintBitsToFloat(u.z << 16), uintBitsToFloat(u.z & 0xffff0000u),
                                 uintBitsToFloat(u.w << 16), uintBitsToFloat(u.w & 0xffff0000u));
                }
            }
            for (uint t = 0; t < TB; t++) {
                uint xi = xbase + t * xs + 2 * q;
                vec4 x0 = X[xi], x1 = X[xi + 1];
                for (uint j = 0; j < RPI; j++) acc[j * TB + t] += dot(lo[j], x0) + dot(hi[j], x1);
            }
        }
        for (uint i = 0; i < RPI * TB; i++) acc[i] = subgroupAdd(acc[i]);
        if (lane != 0) continue;
        for (uint j = 0; j < RPI; j++) {
            if (r0 + j >= p.rows) break;
            for (uint t = 0; t < TB; t++) {
                if (t0 + t >= p.T) break;
                uint i = (t0 + t) * p.yStride + p.yCol0 + r0 + j;
                float v = acc[j * TB + t];
                if (p.mode == 1) v += Y[i];
                else if (p.mode == 2) v = tanh(clamp(v, -15.0, 15.0));
                else if (p.mode == 3) v = 1.0 / (1.0 + exp(-v));
                else if (p.mode == 4) { v = max(v, 0.0); v = v * v; }
                Y[i] = v;
            }
        }
    }
}
