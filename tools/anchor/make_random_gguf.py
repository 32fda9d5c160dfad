#!/usr/bin/env python3
"""Random-weight RWKV-7 GGUF files with the released shapes, for benchmarks (rwkv-edit and llama.cpp
read the same file).

    python3 tools/anchor/make_random_gguf.py --size 0.1b --type q8_0 --out /tmp/rwkv7-0.1b-q8_0.gguf

--type: f32, f16, bf16 (as stored), q8_0, q4_0, q4_1, q5_0, q5_1 (the `gguf` package's quantisers,
bit-exact with ggml's reference ones), q4_k, q5_k, q6_k, q4_k_m, q5_k_m (tools/quant/kquant.py's
simple K-quantiser; the _m mixes keep output.weight in Q6_K). Only the embedding, head, projections
and FFN matrices are quantised; LoRA factors and vectors stay F32, as llama-quantize leaves them for
rwkv7. Weights are uniform in ±1/sqrt(fan-in) like `rwkv-edit bench --synthetic` (the values differ).
--vocab adds a World tokenizer (rwkv_vocab_v20230424.txt) in llama.cpp's convention, which llama.cpp
needs to load the file; rwkv-edit reads it as the model's vocabulary.
"""
import argparse
import ast
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quant"))
from kquant import quantize_k  # noqa: E402

SHAPES = {  # layers, n_embd, lora w, a, v, g (as SyntheticModel.Shape.named)
    "0.1b": (12, 768, 64, 64, 32, 128),
    "0.4b": (24, 1024, 64, 64, 32, 160),
    "1.5b": (24, 2048, 96, 96, 64, 256),
}
VOCAB = 65536
FTYPE = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9,
         "q4_k": 14, "q5_k": 16, "q6_k": 18, "q4_k_m": 15, "q5_k_m": 17}


def world_vocab(path):
    """llama.cpp's rwkv World vocabulary: id 0 '<s>' CONTROL, then repr(bytes)[2:-1] per token,
    padded with UNUSED '[PAD<i>]' entries up to the embedding's rows."""
    tokens, types = [b"<s>"], [int(gguf.TokenType.CONTROL)]
    with open(path, "r", encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split(" ")
            tok = ast.literal_eval(" ".join(parts[1:-1]))
            tok = tok.encode("utf-8") if isinstance(tok, str) else tok
            tokens.append(repr(tok)[2:-1].encode("utf-8"))
            types.append(int(gguf.TokenType.NORMAL))
    while len(tokens) < VOCAB:
        tokens.append(f"[PAD{len(tokens)}]".encode())
        types.append(int(gguf.TokenType.UNUSED))
    return tokens, types


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="0.1b", choices=sorted(SHAPES))
    ap.add_argument("--type", default="f16", choices=sorted(FTYPE))
    ap.add_argument("--vocab", help="rwkv_vocab_v20230424.txt")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    L, C, DW, DA, DV, DG = SHAPES[a.size]
    F, N = 4 * C, 64
    rng = np.random.default_rng(a.seed)

    def uni(shape, lo, hi):
        return rng.uniform(lo, hi, size=shape).astype(np.float32)

    def mat(rows, cols):  # numpy [rows][cols] = ggml ne [cols, rows]
        s = 1 / np.sqrt(cols)
        return uni((rows, cols), -s, s)

    t = a.type
    w = gguf.GGUFWriter(a.out, "rwkv7")
    w.add_name(f"rwkv-edit-random-{a.size}-{t}")
    w.add_context_length(1048576)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_layer_norm_eps(1e-5)
    w.add_wkv_head_size(N)
    w.add_decay_lora_rank(DW)
    w.add_iclr_lora_rank(DA)
    w.add_value_residual_mix_lora_rank(DV)
    w.add_gate_lora_rank(DG)
    w.add_feed_forward_length(F)
    w.add_file_type(FTYPE[t])
    w.add_head_count(0)
    if a.vocab:
        toks, types = world_vocab(a.vocab)
        w.add_tokenizer_model("rwkv")
        w.add_token_list(toks)
        w.add_token_types(types)

    def big(name, x):
        qt = {"q4_k_m": "q6_k" if name == "output.weight" else "q4_k",
              "q5_k_m": "q6_k" if name == "output.weight" else "q5_k"}.get(t, t)
        if qt == "f32":
            w.add_tensor(name, x)
        elif qt == "f16":
            w.add_tensor(name, x.astype(np.float16))
        elif qt == "bf16":
            w.add_tensor(name, gguf.quants.quantize(x, Q.BF16), raw_dtype=Q.BF16)
        elif qt in ("q4_k", "q5_k", "q6_k"):
            w.add_tensor(name, quantize_k(x, qt.upper()), raw_dtype=Q[qt.upper()])
        else:
            kind = Q[qt.upper()]
            w.add_tensor(name, gguf.quants.quantize(x, kind), raw_dtype=kind)

    def vec(name, shape, lo, hi):
        w.add_tensor(name, uni(shape, lo, hi))

    big("token_embd.weight", mat(VOCAB, C))
    vec("token_embd_norm.weight", (C,), 0.9, 1.1); vec("token_embd_norm.bias", (C,), -0.1, 0.1)
    vec("output_norm.weight", (C,), 0.9, 1.1); vec("output_norm.bias", (C,), -0.1, 0.1)
    big("output.weight", mat(VOCAB, C))
    for i in range(L):
        g = f"blk.{i}."
        vec(g + "attn_norm.weight", (C,), 0.9, 1.1); vec(g + "attn_norm.bias", (C,), -0.1, 0.1)
        vec(g + "attn_norm_2.weight", (C,), 0.9, 1.1); vec(g + "attn_norm_2.bias", (C,), -0.1, 0.1)
        vec(g + "time_mix_lerp_fused.weight", (6, 1, 1, C), 0, 1)
        vec(g + "time_mix_w0.weight", (C,), -2, 1); vec(g + "time_mix_a0.weight", (C,), -1, 1)
        vec(g + "time_mix_v0.weight", (C,), -1, 1)
        # LoRA factors, stored [out][in] as llama.cpp's converter writes them (BlinkDL's transposed).
        # Layer 0 has no value-residual mix; llama.cpp's converter fills its v slots with the a
        # factors' shapes (rwkv-edit ignores them).
        for key, r in (("w", DW), ("a", DA), ("v", DA if i == 0 else DV), ("g", DG)):
            w.add_tensor(g + f"time_mix_{key}1.weight", mat(r, C))
            w.add_tensor(g + f"time_mix_{key}2.weight", mat(C, r))
        vec(g + "time_mix_k_k.weight", (C,), 0.5, 1.5); vec(g + "time_mix_k_a.weight", (C,), 0.5, 1.5)
        vec(g + "time_mix_r_k.weight", (C,), -0.5, 0.5)
        for n in ("receptance", "key", "value", "output"):
            big(g + f"time_mix_{n}.weight", mat(C, C))
        vec(g + "time_mix_ln.weight", (C,), 0.9, 1.1); vec(g + "time_mix_ln.bias", (C,), -0.1, 0.1)
        vec(g + "channel_mix_lerp_k.weight", (1, 1, C), 0, 1)
        big(g + "channel_mix_key.weight", mat(F, C))
        big(g + "channel_mix_value.weight", mat(C, F))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {a.out} ({os.path.getsize(a.out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
