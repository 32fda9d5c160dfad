#!/usr/bin/env python3
"""Generate golden test fixtures for rwkv-edit (see tools/golden/README.md).

Deterministic (fixed seeds).  Run from the repository root:

    python3 tools/golden/make_golden.py [--out Tests/Fixtures/golden] [--vocab PATH]

Needs: torch (CPU), rwkv (official pip package, BlinkDL), safetensors, gguf, numpy.
Writes a random-weight RWKV-7 "x070" model in several file formats, reference outputs computed
by the official `rwkv` package (RWKV_x070, 'cpu fp32'), and tokenizer golden ids.
"""
import argparse
import collections
import hashlib
import json
import os
import sys
import tempfile

os.environ["RWKV_V7_ON"] = "1"      # must be set before `import rwkv.model`
os.environ.setdefault("RWKV_JIT_ON", "1")
os.environ["RWKV_CUDA_ON"] = "0"

import numpy as np
import torch

torch.set_num_threads(1)

import gguf
from safetensors.numpy import save_file as np_save_file, load_file as np_load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_OUT = os.path.join(ROOT, "Tests", "Fixtures", "golden")
DEFAULT_VOCAB = os.path.abspath(os.path.join(ROOT, "..", "shared", "fixtures", "world-vocab",
                                             "rwkv_vocab_v20230424.txt"))
TINY_F16_GGUF = os.path.abspath(os.path.join(ROOT, "..", "shared", "fixtures", "tiny-rwkv-7v0",
                                             "tiny-rwkv7-834K-f16.gguf"))

# ---------------------------------------------------------------- model hyper-parameters
N_LAYER = 3
N_EMBD = 256
HEAD_SIZE = 64
N_HEAD = N_EMBD // HEAD_SIZE     # 4
VOCAB = 1536
FFN = 1024
D_W, D_A, D_V, D_G = 32, 32, 16, 32
SEED = 20240707
TOKEN_SEED = 7


def bf16_round(t: torch.Tensor) -> torch.Tensor:
    """Round to the nearest bf16-representable value, keep float32 storage."""
    return t.to(torch.bfloat16).to(torch.float32).contiguous()


def make_weights() -> "collections.OrderedDict[str, torch.Tensor]":
    """Random x070 weights, BlinkDL state-dict key names and shapes, float32 (bf16-exact)."""
    g = torch.Generator().manual_seed(SEED)
    C, H, N = N_EMBD, N_HEAD, HEAD_SIZE

    def randn(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    def uniform(*shape, lo=0.0, hi=1.0):
        return torch.rand(*shape, generator=g) * (hi - lo) + lo

    def mat(fan_out, fan_in, scale=1.0):    # Linear weight [out, in]
        return randn(fan_out, fan_in, std=scale / fan_in ** 0.5)

    sd = collections.OrderedDict()
    sd["emb.weight"] = randn(VOCAB, C)
    for i in range(N_LAYER):
        b = f"blocks.{i}."
        sd[b + "ln1.weight"] = randn(C, std=0.1, mean=1.0)
        sd[b + "ln1.bias"] = randn(C, std=0.05)
        sd[b + "ln2.weight"] = randn(C, std=0.1, mean=1.0)
        sd[b + "ln2.bias"] = randn(C, std=0.05)
        if i == 0:
            sd[b + "ln0.weight"] = randn(C, std=0.1, mean=1.0)
            sd[b + "ln0.bias"] = randn(C, std=0.05)
        a = b + "att."
        for n in "rwkvag":
            sd[a + "x_" + n] = uniform(1, 1, C)
        # LoRA-style matrices: BlinkDL stores w1 [C, D] (x @ w1) and w2 [D, C]
        sd[a + "w0"] = uniform(1, 1, C, lo=-1.5, hi=1.0)
        sd[a + "w1"] = randn(C, D_W, std=1 / C ** 0.5)
        sd[a + "w2"] = randn(D_W, C, std=1 / D_W ** 0.5)
        sd[a + "a0"] = randn(1, 1, C, std=0.5)
        sd[a + "a1"] = randn(C, D_A, std=1 / C ** 0.5)
        sd[a + "a2"] = randn(D_A, C, std=1 / D_A ** 0.5)
        if i > 0:   # layer 0 has no value-residual LoRA
            sd[a + "v0"] = randn(1, 1, C, std=0.5)
            sd[a + "v1"] = randn(C, D_V, std=1 / C ** 0.5)
            sd[a + "v2"] = randn(D_V, C, std=1 / D_V ** 0.5)
        sd[a + "g1"] = randn(C, D_G, std=1 / C ** 0.5)
        sd[a + "g2"] = randn(D_G, C, std=1 / D_G ** 0.5)
        sd[a + "k_k"] = randn(1, 1, C, std=0.1, mean=1.0)
        sd[a + "k_a"] = randn(1, 1, C, std=0.1, mean=1.0)
        sd[a + "r_k"] = randn(H, N, std=0.5)
        sd[a + "receptance.weight"] = mat(C, C)
        sd[a + "key.weight"] = mat(C, C)
        sd[a + "value.weight"] = mat(C, C)
        sd[a + "output.weight"] = mat(C, C)
        sd[a + "ln_x.weight"] = randn(C, std=0.1, mean=1.0)
        sd[a + "ln_x.bias"] = randn(C, std=0.05)
        f = b + "ffn."
        sd[f + "x_k"] = uniform(1, 1, C)
        sd[f + "key.weight"] = mat(FFN, C)
        sd[f + "value.weight"] = mat(C, FFN, scale=0.5)
    sd["ln_out.weight"] = randn(C, std=0.1, mean=1.0)
    sd["ln_out.bias"] = randn(C, std=0.05)
    sd["head.weight"] = mat(VOCAB, C)
    return collections.OrderedDict((k, bf16_round(v)) for k, v in sd.items())


# ---------------------------------------------------------------- fla (Hugging Face) mapping
def blinkdl_to_fla(sd):
    """Mirror of fla-org/flash-linear-attention utils/convert_from_rwkv7.py (RWKV7ForCausalLM)."""
    out = collections.OrderedDict()
    emb_head = {"emb.weight": "model.embeddings.weight", "ln_out.weight": "model.norm.weight",
                "ln_out.bias": "model.norm.bias", "head.weight": "lm_head.weight"}
    proj = {"receptance": "r_proj", "key": "k_proj", "value": "v_proj", "ln_x": "g_norm",
            "output": "o_proj"}
    for name, w in sd.items():
        if name in ("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"):
            continue
        if name in emb_head:
            out[emb_head[name]] = w.clone()
            continue
        p = name.split(".")
        p[0] = "model.layers"
        p[2] = {"att": "attn", "ffn": "ffn", "ln0": "pre_norm", "ln1": "attn_norm",
                "ln2": "ffn_norm"}[p[2]]
        w = w.clone()
        if p[2] == "attn" and len(p[3]) == 2 and p[3][0] in "wvag" and p[3][1] in "012":
            typ, num = p[3]
            p[3] = f"{typ}_lora.lora." + {"0": "2.bias", "1": "0.weight", "2": "2.weight"}[num]
            if num in "12":
                w = w.t().contiguous()
        elif p[2] == "attn" and p[3] in proj:
            p[3] = proj[p[3]]
        fla_name = ".".join(p)
        if list(w.shape) == [1, 1, N_EMBD] and not (p[2] == "attn" and p[3].startswith("x_")):
            w = w.reshape(N_EMBD)      # fla: k_k, k_a [C]; ffn.x_k [C]; lora biases [C]
        # fla keeps attn.x_r..x_g as [1,1,C]; r_k stays [H, N]
        out[fla_name] = w.contiguous()
    return out


def fla_to_blinkdl(fla):
    """Inverse mapping (used for verification only)."""
    sd = collections.OrderedDict()
    inv_proj = {"r_proj": "receptance", "k_proj": "key", "v_proj": "value", "g_norm": "ln_x",
                "o_proj": "output"}
    for name, w in fla.items():
        w = torch.from_numpy(np.array(w)) if not isinstance(w, torch.Tensor) else w
        if name == "model.embeddings.weight": sd["emb.weight"] = w; continue
        if name == "model.norm.weight": sd["ln_out.weight"] = w; continue
        if name == "model.norm.bias": sd["ln_out.bias"] = w; continue
        if name == "lm_head.weight": sd["head.weight"] = w; continue
        p = name.split(".")
        i, blk, rest = p[2], p[3], p[4:]
        blk_b = {"attn": "att", "ffn": "ffn", "pre_norm": "ln0", "attn_norm": "ln1",
                 "ffn_norm": "ln2"}[blk]
        if blk == "attn" and rest[0].endswith("_lora"):
            typ = rest[0][0]
            tail = ".".join(rest[2:])
            num = {"2.bias": "0", "0.weight": "1", "2.weight": "2"}[tail]
            if num == "0":
                w = w.reshape(1, 1, -1)
            else:
                w = w.t().contiguous()
            sd[f"blocks.{i}.att.{typ}{num}"] = w
            continue
        if blk == "attn" and rest[0] in inv_proj:
            rest = [inv_proj[rest[0]]] + rest[1:]
        if (blk == "attn" and rest[0] in ("k_k", "k_a")) or (blk == "ffn" and rest[0] == "x_k"):
            w = w.reshape(1, 1, -1)
        sd[".".join(["blocks", i, blk_b] + rest)] = w
    return sd


# ---------------------------------------------------------------- GGUF (llama.cpp rwkv7) mapping
def gguf_tensors(sd):
    """BlinkDL state dict -> list of (gguf name, numpy array in ggml/numpy order), as in the tiny
    fixture tiny-rwkv7-834K-f32.gguf (numpy shape is the reverse of the GGUF ne[] dims)."""
    n_layer = dims(sd)["n_layer"]
    t = []
    n = lambda k: sd[k].numpy()
    t.append(("token_embd.weight", n("emb.weight")))
    t.append(("token_embd_norm.weight", n("blocks.0.ln0.weight")))
    t.append(("token_embd_norm.bias", n("blocks.0.ln0.bias")))
    t.append(("output_norm.weight", n("ln_out.weight")))
    t.append(("output_norm.bias", n("ln_out.bias")))
    t.append(("output.weight", n("head.weight")))
    for i in range(n_layer):
        b, a, f, g = f"blocks.{i}.", f"blocks.{i}.att.", f"blocks.{i}.ffn.", f"blk.{i}."
        t.append((g + "attn_norm.weight", n(b + "ln1.weight")))
        t.append((g + "attn_norm.bias", n(b + "ln1.bias")))
        t.append((g + "attn_norm_2.weight", n(b + "ln2.weight")))
        t.append((g + "attn_norm_2.bias", n(b + "ln2.bias")))
        t.append((g + "time_mix_lerp_fused.weight",
                  np.stack([n(a + "x_" + c) for c in "rwkvag"], axis=0)))      # (6,1,1,C)
        v = "v" if i > 0 else "a"     # layer 0: copies of a0/a1/a2 stand in for v0/v1/v2
        for key, src in (("w0", "w0"), ("w1", "w1"), ("w2", "w2"), ("a0", "a0"), ("a1", "a1"),
                         ("a2", "a2"), ("v0", v + "0"), ("v1", v + "1"), ("v2", v + "2"),
                         ("g1", "g1"), ("g2", "g2")):
            x = n(a + src)
            x = x.reshape(-1) if key.endswith("0") else np.ascontiguousarray(x.T)
            t.append((g + f"time_mix_{key}.weight", x))
        t.append((g + "time_mix_k_k.weight", n(a + "k_k").reshape(-1)))
        t.append((g + "time_mix_k_a.weight", n(a + "k_a").reshape(-1)))
        t.append((g + "time_mix_r_k.weight", n(a + "r_k").reshape(-1)))
        t.append((g + "time_mix_receptance.weight", n(a + "receptance.weight")))
        t.append((g + "time_mix_key.weight", n(a + "key.weight")))
        t.append((g + "time_mix_value.weight", n(a + "value.weight")))
        t.append((g + "time_mix_output.weight", n(a + "output.weight")))
        t.append((g + "time_mix_ln.weight", n(a + "ln_x.weight")))
        t.append((g + "time_mix_ln.bias", n(a + "ln_x.bias")))
        t.append((g + "channel_mix_lerp_k.weight", n(f + "x_k").reshape(1, 1, -1)))
        t.append((g + "channel_mix_key.weight", n(f + "key.weight")))
        t.append((g + "channel_mix_value.weight", n(f + "value.weight")))
    return [(k, np.ascontiguousarray(v, dtype=np.float32)) for k, v in t]


def gguf_to_blinkdl(path):
    """Inverse mapping (verification only); returns float32 torch tensors."""
    r = gguf.GGUFReader(path)
    T = {t.name: np.array(t.data).astype(np.float32) for t in r.tensors}
    C = N_EMBD
    sd = collections.OrderedDict()
    sd["emb.weight"] = T["token_embd.weight"]
    for i in range(n_layer):
        b, a, f, g = f"blocks.{i}.", f"blocks.{i}.att.", f"blocks.{i}.ffn.", f"blk.{i}."
        sd[b + "ln1.weight"] = T[g + "attn_norm.weight"]
        sd[b + "ln1.bias"] = T[g + "attn_norm.bias"]
        sd[b + "ln2.weight"] = T[g + "attn_norm_2.weight"]
        sd[b + "ln2.bias"] = T[g + "attn_norm_2.bias"]
        if i == 0:
            sd[b + "ln0.weight"] = T["token_embd_norm.weight"]
            sd[b + "ln0.bias"] = T["token_embd_norm.bias"]
        L = T[g + "time_mix_lerp_fused.weight"]
        for j, c in enumerate("rwkvag"):
            sd[a + "x_" + c] = L[j].reshape(1, 1, C)
        for key in ("w", "a", "v", "g"):
            if key == "v" and i == 0:
                continue
            if key != "g":
                sd[a + key + "0"] = T[g + f"time_mix_{key}0.weight"].reshape(1, 1, C)
            sd[a + key + "1"] = T[g + f"time_mix_{key}1.weight"].T.copy()
            sd[a + key + "2"] = T[g + f"time_mix_{key}2.weight"].T.copy()
        sd[a + "k_k"] = T[g + "time_mix_k_k.weight"].reshape(1, 1, C)
        sd[a + "k_a"] = T[g + "time_mix_k_a.weight"].reshape(1, 1, C)
        sd[a + "r_k"] = T[g + "time_mix_r_k.weight"].reshape(N_HEAD, HEAD_SIZE)
        for bk, gk in (("receptance", "receptance"), ("key", "key"), ("value", "value"),
                       ("output", "output")):
            sd[a + bk + ".weight"] = T[g + f"time_mix_{gk}.weight"]
        sd[a + "ln_x.weight"] = T[g + "time_mix_ln.weight"]
        sd[a + "ln_x.bias"] = T[g + "time_mix_ln.bias"]
        sd[f + "x_k"] = T[g + "channel_mix_lerp_k.weight"].reshape(1, 1, C)
        sd[f + "key.weight"] = T[g + "channel_mix_key.weight"]
        sd[f + "value.weight"] = T[g + "channel_mix_value.weight"]
    sd["ln_out.weight"] = T["output_norm.weight"]
    sd["ln_out.bias"] = T["output_norm.bias"]
    sd["head.weight"] = T["output.weight"]
    return collections.OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in sd.items())


def f16_type_map():
    """Per-tensor GGML type used in the tiny f16 fixture, keyed by name with blk.N -> blk.#."""
    m = {}
    r = gguf.GGUFReader(TINY_F16_GGUF)
    for t in r.tensors:
        nm = t.name
        if nm.startswith("blk."):
            p = nm.split(".")
            nm = ".".join([p[0], "#"] + p[2:])
        m[nm] = t.tensor_type
    return m


def gguf_vocab(vocab_path, vocab=VOCAB):
    """llama.cpp convert_hf_to_gguf `_set_vocab_rwkv_world` convention, truncated to `vocab`:
    id 0 = '<s>' (CONTROL), ids 1..vocab-1 = World vocab ids 1..vocab-1 as repr(bytes)[2:-1]."""
    import ast
    tokens, types = [b"<s>"], [int(gguf.TokenType.CONTROL)]
    with open(vocab_path, "r", encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split(" ")
            idx = int(parts[0])
            if idx >= vocab:
                break
            assert idx == len(tokens)
            tok = ast.literal_eval(" ".join(parts[1:-1]))
            tok = tok.encode("utf-8") if isinstance(tok, str) else tok
            assert len(tok) == int(parts[-1])
            tokens.append(repr(tok)[2:-1].encode("utf-8"))
            types.append(int(gguf.TokenType.NORMAL))
    assert len(tokens) == vocab
    return tokens, types


def dims(sd):
    """The hyper-parameters a BlinkDL state dict implies (layer 0 has no v0/v1/v2)."""
    n_layer = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    return {"n_layer": n_layer, "vocab": sd["emb.weight"].shape[0], "n_embd": sd["emb.weight"].shape[1],
            "head_size": sd["blocks.0.att.r_k"].shape[1], "ffn": sd["blocks.0.ffn.key.weight"].shape[0],
            "d_w": sd["blocks.0.att.w1"].shape[1], "d_a": sd["blocks.0.att.a1"].shape[1],
            "d_v": sd["blocks.1.att.v1"].shape[1], "d_g": sd["blocks.0.att.g1"].shape[1]}


def write_gguf(path, sd, ftype, vocab_path, name="rwkv-edit-golden-x070-L3-D256"):
    tensors = gguf_tensors(sd)
    d = dims(sd)
    type_map = f16_type_map() if ftype == 1 else None
    w = gguf.GGUFWriter(path, "rwkv7")
    w.add_name(name)
    w.add_context_length(1048576)
    w.add_embedding_length(d["n_embd"])
    w.add_block_count(d["n_layer"])
    w.add_layer_norm_eps(1e-5)
    w.add_wkv_head_size(d["head_size"])
    w.add_decay_lora_rank(d["d_w"])
    w.add_iclr_lora_rank(d["d_a"])
    w.add_value_residual_mix_lora_rank(d["d_v"])
    w.add_gate_lora_rank(d["d_g"])
    w.add_feed_forward_length(d["ffn"])
    w.add_file_type(ftype)
    w.add_head_count(0)
    toks, types = gguf_vocab(vocab_path, d["vocab"])
    w.add_tokenizer_model("rwkv")
    w.add_token_list(toks)
    w.add_token_types(types)
    for name, arr in tensors:
        if type_map is not None:
            p = name.split(".")
            key = ".".join([p[0], "#"] + p[2:]) if name.startswith("blk.") else name
            if type_map[key] == gguf.GGMLQuantizationType.F16:
                arr = arr.astype(np.float16)
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------- official package runs
def load_official(pth_path):
    from rwkv.model import RWKV
    assert pth_path.endswith(".pth")
    return RWKV(model=pth_path[:-4], strategy="cpu fp32")


def clone_state(st):
    return [s.clone() for s in st]


def run_one(model, tokens, state=None):
    st = model.generate_zero_state() if state is None else clone_state(state)
    out = None
    for t in tokens:
        out, st = model.forward_one(int(t), st)
    return out.clone(), clone_state(st)


def run_seq(model, tokens, state=None):
    st = model.generate_zero_state() if state is None else clone_state(state)
    out, st = model.forward_seq([int(t) for t in tokens], st, False)
    return out.clone(), clone_state(st)


def maxdiff(a, b):
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


# ---------------------------------------------------------------- tokenizer golden
TOKENIZER_TEXT = (
    "RWKV tokenizer golden text \u2014 version 1.\r\n"
    "The quick brown fox jumps over the lazy dog. It's 7:45 a.m., and the caf\u00e9 on 5th Avenue "
    "already smells of cinnamon. \"Don't panic,\" she said; then\u2014after a pause\u2014'we'll manage.'\n"
    "Prices: $1,299.99 (\u20ac1.199,00 / \u00a3999), up 12.5% YoY; \u03c0 \u2248 3.14159265358979, "
    "e^(i\u03c0) + 1 = 0, 2\u00b9\u2070 = 1024, \u00bd + \u00bc = \u00be.\n"
    "Dates & numbers: 2024-05-01T13:37:00Z, 1234567890, 007, 0x1F600, 1e-9, -42, +3.0e+08.\n"
    "Visit https://example.com/path/to/page?query=rwkv&lang=en-US#section-2 or "
    "http://localhost:8080/api/v1/items?id=42 and mailto:someone@example.org for details.\n"
    "\n\n\n\n"
    "```python\n"
    "def fibonacci(n: int) -> list[int]:\n"
    "    \"\"\"Return the first n Fibonacci numbers.\"\"\"\n"
    "    seq = [0, 1]\n"
    "    while len(seq) < n:\n"
    "        seq.append(seq[-1] + seq[-2])  # grow\n"
    "    return seq[:n]\n"
    "\n"
    "class Greeter:\n"
    "\tdef __init__(self, name):\n"
    "\t\tself.name = name\n"
    "\n"
    "\tdef greet(self):\n"
    "\t\treturn f\"Hello, {self.name}!\\n\"\n"
    "\n"
    "if __name__ == \"__main__\":\n"
    "    print(fibonacci(10), Greeter('\u4e16\u754c').greet())\n"
    "```\n"
    "\n"
    "```swift\n"
    "import Foundation\n"
    "\n"
    "struct Matrix<T: Numeric> {\n"
    "    var rows: Int, cols: Int\n"
    "    var data: [T]\n"
    "\n"
    "    subscript(i: Int, j: Int) -> T {\n"
    "        get { data[i * cols + j] }\n"
    "        set { data[i * cols + j] = newValue }\n"
    "    }\n"
    "}\n"
    "\n"
    "let greeting = \"Hello, \\(name) \U0001F44B\"\n"
    "for (index, value) in [3, 1, 4, 1, 5].enumerated() where value > 1 {\n"
    "        print(\"\\(index): \\(value)\")   // trailing spaces   \n"
    "}\n"
    "```\n"
    "\n"
    "\u4e2d\u6587\uff1a\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002"
    "\u4eba\u5de5\u667a\u80fd\u6b63\u5728\u6539\u53d8\u4e16\u754c\u3002\u300a\u7ea2\u697c\u68a6\u300b"
    "\u662f\u4e2d\u56fd\u53e4\u5178\u5c0f\u8bf4\u7684\u5dc5\u5cf0\u4e4b\u4f5c\u3002\n"
    "\u65e5\u672c\u8a9e\uff1a\u543e\u8f29\u306f\u732b\u3067\u3042\u308b\u3002\u540d\u524d\u306f\u307e"
    "\u3060\u7121\u3044\u3002\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3001\u6f22\u5b57"
    "\u3092\u6df7\u305c\u3066\u66f8\u304d\u307e\u3059\u3002\uff8a\uff9d\uff76\uff78\uff76\uff85\u3082\u3002\n"
    "\ud55c\uad6d\uc5b4: \uc548\ub155\ud558\uc138\uc694! \uc624\ub298\uc740 \ub0a0\uc528\uac00 "
    "\uc88b\ub124\uc694. \ud55c\uae00\uc740 \uc138\uc885\ub300\uc655\uc774 \ub9cc\ub4e4\uc5c8\uc2b5"
    "\ub2c8\ub2e4.\n"
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629: \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644"
    "\u0639\u0627\u0644\u0645! \u0643\u064a\u0641 \u062d\u0627\u0644\u0643 \u0627\u0644\u064a\u0648"
    "\u0645\u061f \u0661\u0662\u0663\u0664\u0665\n"
    "\u05e2\u05d1\u05e8\u05d9\u05ea: \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd. "
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439: \u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438"
    "\u0440! \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac: \u0393\u03b5\u03b9\u03ac \u03c3\u03bf"
    "\u03c5 \u03ba\u03cc\u03c3\u03bc\u03b5. \u0939\u093f\u0928\u094d\u0926\u0940: \u0928\u092e\u0938"
    "\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e\u0964 \u0e44\u0e17\u0e22: \u0e2a\u0e27"
    "\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a\n"
    "Emoji: \U0001F600 \U0001F602 \U0001F44D\U0001F3FD \u2764\ufe0f \U0001F980 \U0001F680\u2728 "
    "family \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466, "
    "rainbow flag \U0001F3F3\ufe0f\u200d\U0001F308, technologist \U0001F469\U0001F3FE\u200d\U0001F4BB, "
    "flags \U0001F1EF\U0001F1F5 \U0001F1FA\U0001F1F8 \U0001F1E9\U0001F1EA \U0001F1E8\U0001F1F3, "
    "keycap 1\ufe0f\u20e3, England \U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F.\n"
    "Rare: e\u0301 vs \u00e9, \ufb01 ligature, soft\u00adhyphen, zero\u200bwidth, BOM\ufeffin-text, "
    "\U0001D518\U0001D52B\U0001D526\U0001D520\U0001D52C\U0001D521\U0001D522, \U0001D11E clef, "
    "\U00020000\U0002A6D6 ext-B, \u2603 \u2620 \u00a7 \u00b6 \u2020 \u2021 \u00bf\u00a1, "
    "\u1e9e \u00df, \u2126 \u212b, \ufffd, tab\there, NBSP\u00a0here.\n"
    "Whitespace runs:      six spaces,\t\t\ttabs,  \t \t mixed,\r\n"
    "CRLF line\r\n"
    "\r\n"
    "lone CR\rthen text\n"
    "\n\n\n\n\n\n\n\n"
    "    indented four\n"
    "        indented eight\n"
    "                indented sixteen\n"
    "A longer paragraph of plain English follows, because ordinary prose is what most prompts "
    "look like. Recurrent language models read text one token at a time and keep a fixed-size "
    "state; nothing in that state is a copy of the past, only a compressed summary of it. When "
    "the summary is edited, the model's later behaviour changes, and a good test suite checks "
    "that the change is exactly the one that was intended -- no more, no less. Commas, semicolons; "
    "colons: dashes - and -- and ---, ellipses... and !!!??? are all common.\n"
    "{\"name\": \"rwkv-edit\", \"version\": \"0.1.0\", \"layers\": [0, 1, 2], \"ok\": true, "
    "\"ratio\": 0.75, \"nested\": {\"empty\": [], \"null\": null}}\n"
    "| col A | col B | \u5217C |\n|-------|------:|:----:|\n| 1     | 2.50  | \u4e09 |\n"
    "<div class=\"note\">&lt;escaped&gt; &amp; <b>bold</b></div> <!-- comment -->\n"
    "$ git commit -m \"fix: handle CRLF\" && echo ok || exit 1; ls -la ~/ | grep '^d' > /dev/null\n"
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;\n"
    "C:\\Program Files\\RWKV\\model.pth  /usr/local/bin/rwkv  ../shared/fixtures/\n"
    "3.141592653589793238462643383279502884197169399375105820974944592307816406286\n"
    "\u4e2d\u6587\u6bb5\u843d\uff1a\u5faa\u73af\u795e\u7ecf\u7f51\u7edc\u9010\u4e2a\u8bfb\u53d6"
    "\u8bcd\u5143\uff0c\u5e76\u628a\u8fc7\u53bb\u7684\u4fe1\u606f\u538b\u7f29\u5230\u56fa\u5b9a"
    "\u5927\u5c0f\u7684\u72b6\u6001\u91cc\u3002\u300c\u5f15\u53f7\u300d\u3001\u3010\u62ec\u53f7"
    "\u3011\u3001\u2026\u2026\u548c\u2014\u2014\u90fd\u662f\u5e38\u89c1\u7684\u6807\u70b9\u3002"
    "\u6570\u5b57\uff1a\uff11\uff12\uff13\uff14\uff15\uff0c\u4e00\u4e8c\u4e09\u56db\u4e94\u3002\n"
    "\u65e5\u672c\u8a9e\u306e\u6bb5\u843d\uff1a\u6771\u4eac\u90fd\u306f\u65e5\u672c\u306e\u9996"
    "\u90fd\u3067\u3059\u3002\u300c\u3053\u3093\u306b\u3061\u306f\u300d\u3068\u8a00\u3044\u307e"
    "\u3057\u305f\u3002\u30b3\u30f3\u30d4\u30e5\u30fc\u30bf\u30fc\u3001\u30c7\u30fc\u30bf\u3001"
    "\u30e2\u30c7\u30eb\u3002\n"
    "\ud55c\uad6d\uc5b4 \ubb38\ub2e8: \uc11c\uc6b8\uc740 \ub300\ud55c\ubbfc\uad6d\uc758 \uc218"
    "\ub3c4\uc785\ub2c8\ub2e4. \uc0ac\ub78c\ub4e4\uc740 \uc544\uce68\ub9c8\ub2e4 \ucee4\ud53c"
    "\ub97c \ub9c8\uc2ed\ub2c8\ub2e4.\n"
    "More emoji: \U0001F9D1\u200d\U0001F91D\u200d\U0001F9D1 \U0001F44B\U0001F3FB\U0001F44B\U0001F3FF "
    "\U0001F415\u200d\U0001F9BA \u263a\ufe0f \u270c\ufe0f \U0001FAE0 \U0001F1EA\U0001F1FA\U0001F1EC"
    "\U0001F1E7 #\ufe0f\u20e3 *\ufe0f\u20e3\n"
    "END \u2014 \u7ed3\u675f \u2014 \u7d42\u308f\u308a \u2014 \ub05d.\n"
)

CASES = [
    "",
    "\U0001F600",
    "\n\n",
    "a\U0001D11Eb",
    "Hello, world!",
    " \t  \r\n  x",
    "\u4f60\u597d\uff0c\u4e16\u754c",
    "\U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\U0001F1EF\U0001F1F5\U0001F1FA\U0001F1F8",
    "The capital of France is",
]


def make_tokenizer_golden(out_dir, vocab_path):
    from rwkv.rwkv_tokenizer import TRIE_TOKENIZER
    from rwkv.utils import PIPELINE
    tok = TRIE_TOKENIZER(vocab_path)
    pipe = PIPELINE(None, "rwkv_vocab_v20230424")
    text = TOKENIZER_TEXT
    ids = tok.encode(text)
    assert ids == pipe.encode(text), "PIPELINE tokenizer differs from TRIE_TOKENIZER"
    assert tok.decode(ids) == text, "round-trip failed"
    raw = text.encode("utf-8")
    with open(os.path.join(out_dir, "tokenizer-text.txt"), "wb") as fh:
        fh.write(raw)
    cases = []
    for s in CASES:
        c = tok.encode(s)
        assert c == pipe.encode(s)
        assert tok.decode(c) == s
        cases.append({"text": s, "tokens": c})
    doc = collections.OrderedDict()
    doc["vocab"] = "rwkv_vocab_v20230424.txt"
    doc["text_file"] = "tokenizer-text.txt"
    doc["text_utf8_bytes"] = len(raw)
    doc["text_sha256"] = hashlib.sha256(raw).hexdigest()
    doc["tokens"] = ids
    doc["cases"] = cases
    with open(os.path.join(out_dir, "tokenizer-golden.json"), "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=None, separators=(",", ":"))
        fh.write("\n")
    return len(raw), len(ids), cases


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--vocab", default=DEFAULT_VOCAB)
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    P = lambda name: os.path.join(out, name)

    sd = make_weights()
    n_params = sum(v.numel() for v in sd.values())
    print(f"params: {n_params}")

    # ---- weight files
    torch.save(sd, P("golden.f32.pth"))
    torch.save(collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in sd.items()),
               P("golden.bf16.pth"))
    sd16 = collections.OrderedDict((k, v.to(torch.float16)) for k, v in sd.items())
    torch.save(sd16, P("golden.f16.pth"))
    f16_err = max(maxdiff(sd16[k].float(), sd[k]) for k in sd)
    f16_bad = sum(int((sd16[k].float() != sd[k]).sum()) for k in sd)
    bf16_err = max(maxdiff(v.to(torch.bfloat16).float(), v) for v in sd.values())
    np_save_file({k: v.numpy() for k, v in sd.items()}, P("golden.blinkdl.safetensors"),
                 metadata={"format": "pt"})
    fla = blinkdl_to_fla(sd)
    np_save_file({k: v.numpy() for k, v in fla.items()}, P("golden.fla.safetensors"),
                 metadata={"format": "pt"})
    write_gguf(P("golden.f32.gguf"), sd, 0, args.vocab)
    write_gguf(P("golden.f16.gguf"), sd, 1, args.vocab)

    # ---- reference outputs from the official package
    g = torch.Generator().manual_seed(TOKEN_SEED)
    prompts = {n: torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in (1, 7, 120)}
    model = load_official(P("golden.f32.pth"))
    ref = collections.OrderedDict()
    summary = []
    states = {}
    for n, toks in prompts.items():
        lo, st = run_one(model, toks)
        ls, st_seq = run_seq(model, toks)
        states[n] = st
        ref[f"p{n}.tokens"] = np.array(toks, dtype=np.int32)
        ref[f"p{n}.logits_one"] = lo.numpy().astype(np.float32)
        ref[f"p{n}.logits_seq"] = ls.numpy().astype(np.float32)
        for i in range(N_LAYER):
            ref[f"p{n}.layer{i}.att_x_prev"] = st[3 * i].numpy().astype(np.float32)
            ref[f"p{n}.layer{i}.wkv"] = st[3 * i + 1].numpy().astype(np.float32)
            ref[f"p{n}.layer{i}.ffn_x_prev"] = st[3 * i + 2].numpy().astype(np.float32)
        sdiff = max(maxdiff(a, b) for a, b in zip(st, st_seq))
        wkv_abs = [float(st[3 * i + 1].abs().max()) for i in range(N_LAYER)]
        wkv_rms = [float(st[3 * i + 1].pow(2).mean().sqrt()) for i in range(N_LAYER)]
        summary.append(f"P{n}: logits std {lo.std():.3f} mean {lo.mean():+.3f}; "
                       f"one-vs-seq logits {maxdiff(lo, ls):.2e}, state {sdiff:.2e}; "
                       f"wkv rms {['%.3f' % x for x in wkv_rms]} max {['%.2f' % x for x in wkv_abs]}; "
                       f"att_x_prev rms {float(st[0].pow(2).mean().sqrt()):.3f}")
    l71, _ = run_one(model, prompts[1], state=states[7])
    ref["p7p1.logits"] = l71.numpy().astype(np.float32)
    # check the hand-over: P7+P1 in one go equals continuing from the P7 state
    l71_full, _ = run_one(model, prompts[7] + prompts[1])
    summary.append(f"p7p1 continue-vs-fresh(8 tokens): {maxdiff(l71, l71_full):.2e}")

    m_bf16 = load_official(P("golden.bf16.pth"))
    lb, _ = run_one(m_bf16, prompts[7])
    ref["p7.logits_bf16file"] = lb.numpy().astype(np.float32)
    summary.append(f"bf16.pth vs f32.pth logits (P7): {maxdiff(lb, ref['p7.logits_one']):.2e}")
    m_f16 = load_official(P("golden.f16.pth"))
    lh, _ = run_one(m_f16, prompts[7])
    ref["p7.logits_f16file"] = lh.numpy().astype(np.float32)
    summary.append(f"f16.pth vs f32.pth logits (P7): {maxdiff(lh, ref['p7.logits_one']):.2e}")
    del m_bf16, m_f16

    # one metadata key only: safetensors writes metadata in hash-map order (not deterministic)
    meta = {"info": "made by tools/golden/make_golden.py with the official rwkv package "
                    "(RWKV_x070, cpu fp32) from golden.f32.pth; wkv layout [head][value i][key j]"}
    np_save_file(ref, P("golden-ref.safetensors"), metadata=meta)

    # ---- verification: other files converted back to BlinkDL layout, loaded by the package
    with tempfile.TemporaryDirectory() as td:
        def check(label, sd_back, expect_exact=True):
            for k in sd:
                assert k in sd_back, f"{label}: missing {k}"
                assert tuple(sd_back[k].shape) == tuple(sd[k].shape), \
                    f"{label}: {k} shape {tuple(sd_back[k].shape)} != {tuple(sd[k].shape)}"
            extra = set(sd_back) - set(sd)
            assert not extra, f"{label}: extra keys {extra}"
            wdiff = max(maxdiff(sd_back[k], sd[k]) for k in sd)
            path = os.path.join(td, label + ".pth")
            torch.save(collections.OrderedDict((k, sd_back[k].float().contiguous()) for k in sd), path)
            m = load_official(path)
            lo, _ = run_one(m, prompts[7])
            ls, _ = run_seq(m, prompts[120])
            d = max(maxdiff(lo, ref["p7.logits_one"]), maxdiff(ls, ref["p120.logits_seq"]))
            summary.append(f"{label}: weights max|diff| {wdiff:.2e}; logits vs f32.pth {d:.2e}")
            if expect_exact:
                assert wdiff == 0.0 and d == 0.0, label

        st = np_load_file(P("golden.blinkdl.safetensors"))
        check("blinkdl.safetensors", {k: torch.from_numpy(v) for k, v in st.items()})
        check("fla.safetensors", fla_to_blinkdl(np_load_file(P("golden.fla.safetensors"))))
        check("f32.gguf", gguf_to_blinkdl(P("golden.f32.gguf")))
        check("f16.gguf", gguf_to_blinkdl(P("golden.f16.gguf")), expect_exact=False)

    # ---- tokenizer
    nbytes, ntok, cases = make_tokenizer_golden(out, args.vocab)

    print("\n==== summary ====")
    for s in summary:
        print(s)
    print(f"bf16 rounding of f32 weights: max|diff| {bf16_err:.1e} (weights are bf16-exact)")
    print(f"f16 .pth vs f32 weights: max|diff| {f16_err:.3e} over {f16_bad} inexact values")
    print(f"tokenizer: {nbytes} bytes -> {ntok} tokens; {len(cases)} cases; round-trip ok")
    for f in sorted(os.listdir(out)):
        print(f"{os.path.getsize(P(f)):>10}  {f}")


if __name__ == "__main__":
    main()
