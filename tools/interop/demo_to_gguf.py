"""Converts a BlinkDL-keyed RWKV-7 .safetensors (the demo model) to llama.cpp GGUF, F32, with its
vocabulary, using the golden fixtures' GGUF writer (tools/golden/make_golden.py: llama.cpp's tensor
names and layouts, the World-vocabulary token convention).

    python tools/interop/demo_to_gguf.py models/demo.safetensors models/demo-vocab.txt demo.gguf
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import make_golden  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def main():
    model, vocab, out = sys.argv[1:4]
    sd = {k: v.float() for k, v in load_file(model).items()}
    make_golden.write_gguf(out, sd, 0, vocab, name=os.path.splitext(os.path.basename(model))[0])
    print(f"wrote {out}: {make_golden.dims(sd)}")


if __name__ == "__main__":
    main()
