#!/usr/bin/env python3
"""Fixtures for the quantised GGUF types (Tests/Fixtures/quant), made with the `gguf` PyPI package.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf==0.19.0 numpy
    /tmp/venv/bin/python tools/quant/make_quant_fixtures.py

Writes, from Tests/Fixtures/golden/golden.f32.gguf (the golden 3-layer, 256-wide random model):

* dequant.gguf: for each of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K two quantised tensors,
  `<type>.real` (rows of the golden model's weights quantised) and `<type>.random` (random block bytes
  with finite random scales, including subnormal, zero and negative-zero f16 scales), each beside
  `<name>.expected`: gguf's numpy dequantisation of it, as F32. The engine's dequantisation must equal
  it bit for bit.
* golden.q8_0.gguf: the golden model with its big matrices in Q8_0 (gguf's quantiser, which is
  bit-exact with ggml's reference); the LoRA factors and vectors stay F32, as llama-quantize keeps them.
* golden.q4_k.gguf, golden.q5_k.gguf, golden.q6_k.gguf: the same big matrices all in one K-quant type.
* golden.mixed.gguf: the big matrices spread over all eight types (embedding Q4_K and head Q6_K as in a
  Q4_K_M file; each layer's six matrices rotate through the types) and one LoRA factor in Q8_0, so one
  small model runs every type through the matrix–vector and GEMM paths.

gguf 0.19 quantises only the 32-weight types; the K-quant blocks here come from the simple quantiser
in kquant.py (per-sub-block min/max scales, no search): the tests compare our dequantisation against
gguf's on those bytes, whatever their quality.
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize, dequantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kquant import quantize_k  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.path.join(ROOT, "Tests", "Fixtures", "golden", "golden.f32.gguf")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "quant")
TYPES = [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]


def f16_bytes(v):
    return np.asarray(v, dtype=np.float32).astype(np.float16).reshape(-1, 1).view(np.uint8)


def f16(v):
    return np.asarray(v, dtype=np.float32).astype(np.float16).astype(np.float32)


def quant(x, qtype):
    if qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
        return quantize_k(x, qtype.name)
    return quantize(x.astype(np.float32), qtype)


def random_blocks(qtype, n, rng):
    """n blocks of random bytes whose f16 scale fields hold finite values, some of them edge cases."""
    elems, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    scales = rng.uniform(-1.0, 1.0, size=(n, 2)) * 10.0 ** rng.uniform(-4, 0, size=(n, 2))
    scales[0, 0] = 0.0
    scales[1, 0] = -0.0
    scales[2, 0] = 3e-6      # f16 subnormal
    scales[3, 1] = -5e-7     # f16 subnormal
    scales[4, 0] = 65504.0   # f16 max
    h = scales.astype(np.float16).view(np.uint8).reshape(n, 4)
    if qtype == Q.Q6_K:
        raw[:, 208:210] = h[:, 0:2]
    elif qtype in (Q.Q4_1, Q.Q5_1, Q.Q4_K, Q.Q5_K):
        raw[:, 0:4] = h
    else:
        raw[:, 0:2] = h[:, 0:2]
    return raw


def reader_tensors(path):
    r = gguf.GGUFReader(path)
    return r, [(t.name, np.array(t.data), t.tensor_type) for t in r.tensors]


def copy_metadata(r, w):
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, field.contents(), vtype, sub_type=sub)


def write_model(path, r, tensors, type_for):
    w = gguf.GGUFWriter(path, "rwkv7")
    copy_metadata(r, w)
    for name, arr, ttype in tensors:
        assert ttype == Q.F32, name
        qt = type_for(name, arr)
        if qt is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, quant(arr.reshape(arr.shape[0], -1), qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


BIG = ["time_mix_receptance", "time_mix_key", "time_mix_value", "time_mix_output", "channel_mix_key", "channel_mix_value"]


def main():
    os.makedirs(OUT, exist_ok=True)
    r, tensors = reader_tensors(SRC)
    by_name = {n: a for n, a, _ in tensors}
    rng = np.random.default_rng(17)

    # Per-type dequantisation fixtures.
    w = gguf.GGUFWriter(os.path.join(OUT, "dequant.gguf"), "quant-fixture")
    real_src = by_name["blk.0.time_mix_key.weight"][:8, :]           # 8 rows of 256 real weights
    for qt in TYPES:
        name = qt.name
        real = quant(real_src, qt)
        rand = random_blocks(qt, 32, rng)
        elems, size = gguf.GGML_QUANT_SIZES[qt]
        rand = rand.reshape(8 if elems == 256 else 2, -1)                 # rows of 4 (K) or 16 blocks
        for suffix, q in (("real", real), ("random", rand)):
            expected = dequantize(q, qt).astype(np.float32)
            assert np.all(np.isfinite(expected)), (name, suffix)
            w.add_tensor(f"{name}.{suffix}", q, raw_dtype=qt)
            w.add_tensor(f"{name}.{suffix}.expected", expected)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {os.path.join(OUT, 'dequant.gguf')}")

    def is_big(name):
        return name in ("token_embd.weight", "output.weight") or any(f".{b}.weight" in name for b in BIG)

    write_model(os.path.join(OUT, "golden.q8_0.gguf"), r, tensors,
                lambda n, a: Q.Q8_0 if is_big(n) else None)

    rotation = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0]

    def mixed(n, a):
        if n == "token_embd.weight":
            return Q.Q4_K
        if n == "output.weight":
            return Q.Q6_K
        if n == "blk.0.time_mix_w1.weight":
            return Q.Q8_0
        if not is_big(n):
            return None
        layer = int(n.split(".")[1])
        slot = [b for b in BIG if f".{b}.weight" in n][0]
        return rotation[(layer * len(BIG) + BIG.index(slot)) % len(rotation)]

    write_model(os.path.join(OUT, "golden.mixed.gguf"), r, tensors, mixed)

    # One file per K-quant type (the types published K-quant files use), for per-type tolerances of
    # the int8-activation kernels.
    for qt in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
        write_model(os.path.join(OUT, f"golden.{qt.name.lower()}.gguf"), r, tensors,
                    lambda n, a, qt=qt: qt if is_big(n) else None)


if __name__ == "__main__":
    sys.exit(main())
