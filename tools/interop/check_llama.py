"""State interop with llama.cpp (through llama-cpp-python's ctypes bindings to its C API).

Run by Tests/RWKVTests/StateInteropTests.swift as
    python tools/interop/check_llama.py MODEL.gguf WORKDIR
WORKDIR holds what rwkv-edit wrote:
  ours.session, ours.seq   our export of state S (llama-session, llama-seq)
  probe.json               {"continue": [...], "prompt": [...]} as for check_states.py
and this script writes WORKDIR/llama.safetensors:
  session.logits, seq.logits   logits after `continue` from our files, loaded with llama_state_load_file /
                               llama_state_seq_load_file
  own.logits                   llama.cpp's logits after `prompt` + `continue` from its own state
  own_prompt.logits            its logits after `prompt` alone
and its own files for rwkv-edit to import: theirs.session, theirs.seq (saved after `prompt`).
"""
import ctypes
import json
import os
import sys

import llama_cpp as L
import numpy as np
from safetensors.numpy import save_file


def main():
    model_path, work = sys.argv[1], sys.argv[2]
    probe = json.load(open(os.path.join(work, "probe.json")))
    prompt, cont = [int(t) for t in probe["prompt"]], [int(t) for t in probe["continue"]]
    L.llama_backend_init()
    model = L.llama_model_load_from_file(model_path.encode(), L.llama_model_default_params())
    assert model, "llama.cpp could not load " + model_path
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))

    def new_context():
        p = L.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max = 512, 512, 512, 1
        p.n_threads = p.n_threads_batch = 1
        ctx = L.llama_init_from_model(model, p)
        assert ctx
        return ctx

    def feed(ctx, tokens):
        arr = (L.llama_token * len(tokens))(*tokens)
        assert L.llama_decode(ctx, L.llama_batch_get_one(arr, len(tokens))) == 0
        return np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).astype(np.float32).copy()

    out = {}
    cap = 4096
    tokens_out = (L.llama_token * cap)()
    n_out = ctypes.c_size_t(0)

    # (a) our files loaded by llama.cpp, then continued.
    ctx = new_context()
    assert L.llama_state_load_file(ctx, os.path.join(work, "ours.session").encode(), tokens_out, cap, ctypes.byref(n_out)), "llama_state_load_file refused ours.session"
    out["session.tokens"] = np.array(tokens_out[: n_out.value], dtype=np.int32)
    out["session.logits"] = feed(ctx, cont)
    L.llama_free(ctx)
    ctx = new_context()
    assert L.llama_state_seq_load_file(ctx, os.path.join(work, "ours.seq").encode(), 0, tokens_out, cap, ctypes.byref(n_out)) > 0, "llama_state_seq_load_file refused ours.seq"
    out["seq.logits"] = feed(ctx, cont)
    L.llama_free(ctx)

    # (b) llama.cpp's own state after the prompt, saved both ways, then continued there.
    ctx = new_context()
    out["own_prompt.logits"] = feed(ctx, prompt)
    arr = (L.llama_token * len(prompt))(*prompt)
    assert L.llama_state_save_file(ctx, os.path.join(work, "theirs.session").encode(), arr, len(prompt))
    assert L.llama_state_seq_save_file(ctx, os.path.join(work, "theirs.seq").encode(), 0, arr, len(prompt)) > 0
    out["own.logits"] = feed(ctx, cont)
    L.llama_free(ctx)
    L.llama_model_free(model)
    save_file(out, os.path.join(work, "llama.safetensors"))
    print("ok")


if __name__ == "__main__":
    main()
