"""The README walkthrough's llama.cpp side: load a session file rwkv-edit wrote, ask, print the answer.
    python tools/interop/continue_in_llama.py demo.gguf bob.session " Where does Bob live? Bob lives in"
"""
import ctypes, sys, llama_cpp as L
gguf, session, query = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
llm = L.Llama(gguf, n_ctx=512, verbose=False)                          # llama.cpp with the demo model
n = ctypes.c_size_t(); assert L.llama_state_load_file(llm.ctx, session, (L.llama_token * 512)(), 512, ctypes.byref(n))
q = llm.tokenize(query, add_bos=False); tokens = (L.llama_token * len(q))(*q)
assert L.llama_decode(llm.ctx, L.llama_batch_get_one(tokens, len(q))) == 0  # positions continue the session's
logits = L.llama_get_logits_ith(llm.ctx, -1); print(llm.detokenize([max(range(llm.n_vocab()), key=lambda i: logits[i])]).decode())
