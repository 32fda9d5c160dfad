"""Reference logits of the exported demo model from the OFFICIAL rwkv package, for the Swift golden test.

python tools/train-demo-model/reference.py   (after export.py) -> models/demo-reference.json
"""
import json
import os
import sys

os.environ["RWKV_V7_ON"] = "1"
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from vocab import Tokenizer  # noqa: E402
from rwkv.model import RWKV  # noqa: E402

PROMPTS = [
    "Alice lives in Paris. Bob lives in Tokyo. Where does Alice live? Alice lives in",
    "User: Carol has a red hat and blue eyes. What colour is Carol's hat?\n\nAssistant: Carol's hat is",
]


def main():
    tok = Tokenizer(os.path.join(ROOT, "models", "demo-vocab.txt"))
    model = RWKV(model=os.path.join(ROOT, "models", "demo"), strategy="cpu fp32")
    cases = []
    for text in PROMPTS:
        ids = tok.encode(text)
        logits, _ = model.forward(ids, None)
        cases.append({"text": text, "tokens": ids, "logits": [float(x) for x in logits]})
    out = os.path.join(ROOT, "models", "demo-reference.json")
    with open(out + ".tmp", "w") as f:
        json.dump({"made_by": "official rwkv package, RWKV_x070, cpu fp32", "cases": cases}, f)
    os.replace(out + ".tmp", out)
    print(f"wrote {out}: {len(cases)} prompts")


if __name__ == "__main__":
    main()
