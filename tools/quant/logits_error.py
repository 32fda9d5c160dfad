#!/usr/bin/env python3
"""Logits of quantised GGUF files against a reference file of the same weights (e.g. the anchor's f16
file and its llama-quantize outputs), through `rwkv-edit logits` on one random prompt.

    python3 tools/quant/logits_error.py REF.gguf OTHER.gguf... [--tokens 20]

Prints RMS(logits − reference) / RMS(reference), max |Δ| and whether the top token agrees."""
import argparse
import json
import math
import os
import random
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def logits(path, tokens):
    out = subprocess.run([os.path.join(ROOT, ".build", "release", "rwkv-edit"), "logits", "--model", path,
                          "--tokens", ",".join(map(str, tokens)), "--json", "--top", "0"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["logits"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("others", nargs="+")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    tokens = [rnd.randrange(1, 60000) for _ in range(a.tokens)]
    ref = logits(a.ref, tokens)
    rms = lambda v: math.sqrt(sum(x * x for x in v) / len(v))
    for path in a.others:
        got = logits(path, tokens)
        d = [g - r for g, r in zip(got, ref)]
        print(f"{os.path.basename(path)}: rms(Δ)/rms(ref) {rms(d) / rms(ref):.4f}, max |Δ| {max(map(abs, d)):.4f} "
              f"(max |ref| {max(map(abs, ref)):.3f}), top token {'same' if got.index(max(got)) == ref.index(max(ref)) else 'differs'}")


if __name__ == "__main__":
    main()
