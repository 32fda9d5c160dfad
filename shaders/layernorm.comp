#version 450
// One invocation per output row: Y[o] = LN(X[map ? rowMap[o] : o]) * w + b (eps 1e-5, biased variance).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer Xb { float X[]; };
layout(set = 0, binding = 1) writeonly buffer Yb { float Y[]; };
layout(set = 0, binding = 2) readonly buffer Pb { float prm[]; };
layout(set = 0, binding = 3) readonly buffer Mb { uint rowMap[]; };
layout(push_constant) uniform P { uint rows; uint C; uint useMap; uint wOff; uint bOff; } p;

void main() {
    uint o = gl_GlobalInvocationID.x;
    if (o >= p.rows) return;
    uint src = (p.useMap != 0 ? rowMap[o] : o) * p.C;
    float mean = 0.0;
    for (uint i = 0; i < p.C; i++) mean += X[src + i];
    mean /= float(p.C);
    float vs = 0.0;
    for (uint i = 0; i < p.C; i++) { float d = X[src + i] - mean; vs += d * d; }
    float inv = 1.0 / sqrt(vs / float(p.C) + 1e-5);
    for (uint i = 0; i < p.C; i++) Y[o * p.C + i] = (X[src + i] - mean) * inv * prm[p.wOff + i] + prm[p.bOff + i];
}
