#!/usr/bin/env python3
"""How far quantised GGUF logits are from the same file dequantised to F32, in llama.cpp and in rwkv-edit:
the tolerance llama.cpp itself gets for a type, measured on the same file and prompts as our tests.

    python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install --find-links ~/.cache/rwkv-edit-interop/wheels \\
        llama-cpp-python==0.3.36 numpy gguf==0.19.0
    /tmp/llvenv/bin/python tools/quant/llama_logits_error.py FILE.gguf... [--prompts golden|random] [--work /tmp/dq]

For each FILE: writes FILE's dequantised copy (every quantised tensor through the `gguf` package's numpy
dequantiser, stored F32, metadata copied) under --work, then runs both files in llama.cpp (llama-cpp-python's
C API, last-token logits) and in `.build/release/rwkv-edit logits` under each RWKV_EDIT_KERNELS path, and
prints per prompt the test's measure, max |Δ| / max(1, |reference|) over the vocabulary (QuantTests'
relativeError), and RMS(Δ) / RMS(reference), each engine against its own run of the dequantised copy.
Prompts: `golden` = the first 1, 3 and 120 tokens of the golden reference's p120 (what QuantTests feeds);
`random` = 1, 3 and 64 random token ids below 60000 (seed 3).
"""
import argparse
import json
import os
import random
import struct
import subprocess
import sys

import gguf
import llama_cpp as L
import numpy as np
from gguf.quants import dequantize

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_quant_fixtures import copy_metadata  # noqa: E402

QUANTISED = {gguf.GGMLQuantizationType[n] for n in ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")}


def dequantised_copy(path, work):
    out = os.path.join(work, os.path.basename(path).replace(".gguf", ".dequantised.gguf"))
    if os.path.exists(out) and os.path.getmtime(out) > os.path.getmtime(path):
        return out
    r = gguf.GGUFReader(path)
    w = gguf.GGUFWriter(out, str(r.fields["general.architecture"].contents()))
    copy_metadata(r, w)
    for t in r.tensors:
        a = np.array(t.data)
        if t.tensor_type in QUANTISED:
            a = dequantize(a, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a, raw_dtype=None if t.tensor_type in QUANTISED else t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def golden_prompts():
    path = os.path.join(ROOT, "Tests", "Fixtures", "golden", "golden-ref.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        meta = header["p120.tokens"]
        b, e = meta["data_offsets"]
        f.seek(8 + n + b)
        p120 = list(np.frombuffer(f.read(e - b), dtype=np.int32).astype(int))
    return [p120[:1], p120[:3], p120]


def llama_logits(path, prompts):
    L.llama_backend_init()
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    assert model, "llama.cpp could not load " + path
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    out = []
    for tokens in prompts:
        p = L.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max = 512, 512, 512, 1
        p.n_threads = p.n_threads_batch = 2
        ctx = L.llama_init_from_model(model, p)
        arr = (L.llama_token * len(tokens))(*tokens)
        assert L.llama_decode(ctx, L.llama_batch_get_one(arr, len(tokens))) == 0
        out.append(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).astype(np.float64).copy())
        L.llama_free(ctx)
    L.llama_model_free(model)
    return out


def ours_logits(path, prompts, kernels):
    env = dict(os.environ, RWKV_EDIT_KERNELS=kernels)
    out = []
    for tokens in prompts:
        r = subprocess.run([os.path.join(ROOT, ".build", "release", "rwkv-edit"), "logits", "--model", path, "--tokens",
                            ",".join(map(str, tokens)), "--json", "--top", "0", "--backend", "cpu"],
                           check=True, capture_output=True, text=True, env=env)
        out.append(np.array(json.loads(r.stdout)["logits"], dtype=np.float64))
    return out


def measures(got, ref):
    d = got - ref
    rel = float(np.max(np.abs(d) / np.maximum(1.0, np.abs(ref))))
    return rel, float(np.sqrt(np.mean(d * d)) / np.sqrt(np.mean(ref * ref)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--prompts", choices=["golden", "random"], default="golden")
    ap.add_argument("--work", default="/tmp/rwkv-edit-dequantised")
    ap.add_argument("--kernels", default="avx512vnni,avx512", help="RWKV_EDIT_KERNELS values to run ours under")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    if a.prompts == "golden":
        prompts = golden_prompts()
    else:
        rnd = random.Random(3)
        prompts = [[rnd.randrange(1, 60000) for _ in range(n)] for n in (1, 3, 64)]
    for path in a.files:
        dq = dequantised_copy(path, a.work)
        rows = [("llama.cpp", llama_logits(path, prompts), llama_logits(dq, prompts))]
        for k in a.kernels.split(","):
            rows.append((f"rwkv-edit {k}", ours_logits(path, prompts, k), ours_logits(dq, prompts, k)))
        for name, got, ref in rows:
            cells = []
            for tokens, g, r in zip(prompts, got, ref):
                rel, rms = measures(g, r)
                cells.append(f"{len(tokens)} tok: max rel {rel:.2e}, rms {rms:.2e}")
            print(f"{os.path.basename(path)} {name}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
