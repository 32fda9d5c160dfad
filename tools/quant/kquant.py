"""A simple vectorised quantiser for ggml's K-quant blocks (Q4_K, Q5_K, Q6_K), which the `gguf`
package (0.19) cannot quantise: per-sub-block min/max scales, no search, so its error is somewhat
above llama-quantize's. Layouts as in Sources/CKernels/quant.c. Used for test fixtures and random
benchmark models; anything it writes is read back through gguf's dequantiser in the fixtures."""
import numpy as np

SIZES = {"Q4_K": 144, "Q5_K": 176, "Q6_K": 210}


def _f16(v):
    return np.asarray(v, dtype=np.float32).astype(np.float16)


def _div(a, b):
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape, np.float32), where=b != 0)


def quantize_k(x, qtype):
    """x: float array [rows, cols] with cols a multiple of 256 -> uint8 [rows, cols / 256 * size]."""
    rows, cols = x.shape
    b = x.astype(np.float32).reshape(-1, 256)
    nb = b.shape[0]
    if qtype == "Q6_K":
        g = b.reshape(nb, 16, 16)
        scale = np.abs(g).max(axis=2) / 31.0
        d = _f16(scale.max(axis=1) / 127.0)
        sc = np.clip(np.round(_div(scale, d.astype(np.float32)[:, None])), -128, 127).astype(np.int8)
        dl = d.astype(np.float32)[:, None] * sc.astype(np.float32)
        q = (np.clip(np.round(_div(g, dl[:, :, None])), -32, 31).astype(np.int32) + 32).reshape(nb, 2, 4, 32)
        ql = np.zeros((nb, 2, 2, 32), np.uint8)          # [half][t mod 2][l]
        qh = np.zeros((nb, 2, 32), np.uint8)
        for t in range(4):
            ql[:, :, t & 1, :] |= ((q[:, :, t, :] & 15) << (4 if t >= 2 else 0)).astype(np.uint8)
            qh |= ((q[:, :, t, :] >> 4) << (2 * t)).astype(np.uint8)
        out = np.concatenate([ql.reshape(nb, 128), qh.reshape(nb, 64), sc.view(np.uint8),
                              d.reshape(nb, 1).view(np.uint8)], axis=1)
        return out.reshape(rows, -1)
    levels = 15 if qtype == "Q4_K" else 31
    g = b.reshape(nb, 8, 32)
    mn = np.minimum(g.min(axis=2), 0.0)
    scale = (g.max(axis=2) - mn) / levels
    d = _f16(scale.max(axis=1) / 63.0)
    dmin = _f16((-mn).max(axis=1) / 63.0)
    sc = np.clip(np.round(_div(scale, d.astype(np.float32)[:, None])), 0, 63).astype(np.int32)
    m = np.clip(np.round(_div(-mn, dmin.astype(np.float32)[:, None])), 0, 63).astype(np.int32)
    dl = d.astype(np.float32)[:, None] * sc.astype(np.float32)
    ml = dmin.astype(np.float32)[:, None] * m.astype(np.float32)
    q = np.clip(np.round(_div(g + ml[:, :, None], dl[:, :, None])), 0, levels).astype(np.int32)
    s = np.zeros((nb, 12), np.int32)
    s[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    s[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    s[:, 8:12] = (sc[:, 4:8] & 15) | ((m[:, 4:8] & 15) << 4)
    lo, hi = q[:, 0::2, :], q[:, 1::2, :]                 # sub-blocks 2g and 2g+1: [nb][4][32]
    qs = ((lo & 15) | ((hi & 15) << 4)).astype(np.uint8).reshape(nb, 128)
    qh = np.zeros((nb, 32), np.int32)
    for gi in range(4):
        qh |= ((lo[:, gi, :] >> 4) & 1) << (2 * gi)
        qh |= ((hi[:, gi, :] >> 4) & 1) << (2 * gi + 1)
    parts = [d.reshape(nb, 1).view(np.uint8), dmin.reshape(nb, 1).view(np.uint8), s.astype(np.uint8)]
    if qtype == "Q5_K":
        parts.append(qh.astype(np.uint8))
    parts.append(qs)
    return np.concatenate(parts, axis=1).reshape(rows, -1)
