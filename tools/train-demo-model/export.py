"""Checkpoint -> models/demo.safetensors (f16 by default, BlinkDL keys) + models/demo.pth (torch state dict, BlinkDL keys,
loadable by the official rwkv package) + models/demo.json (config), then checks the exported .pth in the
official rwkv package against model.py on a sample text.

python tools/train-demo-model/export.py [--ckpt tools/train-demo-model/ckpt/latest.pt] [--out models/demo]
"""
import argparse
import json
import os
import sys

os.environ["RWKV_V7_ON"] = "1"
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from model import RWKV7, HEAD_SIZE  # noqa: E402
from vocab import Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "ckpt", "latest.pt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "demo"))
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16",
                    help="stored weight type (f16 halves the files; evaluation runs on the stored weights)")
    args = ap.parse_args()
    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    sd = {k: v.detach().to(dtype).contiguous().clone() for k, v in ck["model"].items()}
    from safetensors.torch import save_file
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file(sd, args.out + ".safetensors", metadata={"format": "pt", "layout": "BlinkDL RWKV-7 x070"})
    torch.save(sd, args.out + ".pth")
    meta = {"architecture": "rwkv7 (x070)", "vocab_size": cfg["vocab_size"], "n_embd": cfg["n_embd"],
            "n_layer": cfg["n_layer"], "head_size": HEAD_SIZE, "n_head": cfg["n_embd"] // HEAD_SIZE,
            "dtype": "float16" if args.dtype == "f16" else "float32", "vocab": "models/demo-vocab.txt", "train_step": ck["step"],
            "train_tokens": ck["tokens"], "curriculum_phase": ck["phase"],
            "train_args": {k: ck["args"][k] for k in ("d", "layers", "T", "B", "lr", "seed", "answer_weight")}}
    # settings measured on the model after training (the edit ratio) survive a re-export
    if os.path.exists(args.out + ".json"):
        with open(args.out + ".json") as f:
            meta.update({k: v for k, v in json.load(f).items()
                         if k in ("edit_ratio", "forget_ratio", "erase_ratio", "ratios_note")})
    with open(args.out + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {args.out}.safetensors, {args.out}.pth, {args.out}.json (step {ck['step']}, "
          f"{ck['tokens'] / 1e6:.2f}M tokens)")

    tok = Tokenizer()
    m = RWKV7(cfg["vocab_size"], cfg["n_embd"], cfg["n_layer"])
    m.load_state_dict({k: v.float() for k, v in sd.items()})
    m.eval()
    from rwkv.model import RWKV
    ref = RWKV(model=args.out, strategy="cpu fp32")
    text = "Alice lives in Paris. Bob has a red hat. Where does Alice live? Alice lives in"
    ids = tok.encode(text)
    with torch.no_grad():
        mine = m(torch.tensor([ids]))[0]
    theirs, _ = ref.forward(ids, None, full_output=True)
    err = (mine - theirs).abs().max().item()
    top = tok.decode([int(theirs[-1].argmax())])
    print(f"official rwkv vs model.py on {len(ids)} tokens: max logit err {err:.2e}; next token after "
          f"{text[-25:]!r}: {top!r}")
    from safetensors.torch import load_file
    st = load_file(args.out + ".safetensors")
    assert all(torch.equal(st[k], sd[k]) for k in sd) and set(st) == set(sd)
    if err > 1e-4:
        sys.exit("export check FAILED")
    print("export check OK")


if __name__ == "__main__":
    main()
