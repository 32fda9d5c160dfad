#version 450
// One invocation per output row: Y[o] = LN(X[map ? rowMap[o] : o]) * w + b (eps 1e-5, biased variance),
// reading through texel buffers and writing vec4s (llvmpipe runs storage-buffer accesses lane by lane).
layout(local_size_x = 64) in;
layout(set = 0, binding = 1) writeonly buffer Yb { vec4 Y[]; };
layout(set = 0, binding = 3) readonly buffer Mb { uint rowMap[]; };
layout(set = 0, binding = 11) uniform usamplerBuffer X;
layout(set = 0, binding = 12) uniform usamplerBuffer Prm;
// wOff, bOff: offsets in Prm, in floats (multiples of 4).
layout(push_constant) uniform P { uint rows; uint C; uint useMap; uint wOff; uint bOff; } p;

vec4 fetch(usamplerBuffer b, uint i) { return uintBitsToFloat(texelFetch(b, int(i))); }

void main() {
    uint o = gl_GlobalInvocationID.x;
    if (o >= p.rows) return;
    uint C4 = p.C / 4;
    uint src = (p.useMap != 0 ? rowMap[o] : o) * C4;
    vec4 s = vec4(0.0);
    for (uint i = 0; i < C4; i++) s += fetch(X, src + i);
    float mean = (s.x + s.y + s.z + s.w) / float(p.C);
    vec4 vs = vec4(0.0);
    for (uint i = 0; i < C4; i++) { vec4 d = fetch(X, src + i) - mean; vs += d * d; }
    float inv = 1.0 / sqrt((vs.x + vs.y + vs.z + vs.w) / float(p.C) + 1e-5);
    for (uint i = 0; i < C4; i++)
        Y[o * C4 + i] = (fetch(X, src + i) - mean) * inv * fetch(Prm, p.wOff / 4 + i) + fetch(Prm, p.bOff / 4 + i);
}
