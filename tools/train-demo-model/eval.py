"""Accuracy table on held-out (name, value) combinations + the WKV state-patching check. Prints markdown.

python tools/train-demo-model/eval.py [--model models/demo] [--n 200] [--pairs 100]
(--model is the exported path without extension; --ckpt tools/train-demo-model/ckpt/latest.pt evaluates a
checkpoint directly: the table uses model.py, the patching check the official rwkv package on a temp .pth.)

Table: top-1 of the answer token; rows = entities in context (1; 2 with the same property; 3 and 5 with a city
plus one other property each), columns = no filler / ~100 filler tokens between facts and question; "other" =
share of queries answered with another in-context entity's value. Extra rows: held-out query templates, and
updates ("Later, N moved to Y." -> Y).
Patching: A = "N1 lives in X. N2 lives in Z.", B = same with Y for N1; B's WKV states of the upper-half layers
(lower half for the control) replace A's; then "Where does N1 live? N1 lives in" should give Y, N2 still Z.
"""
import argparse
import os
import random
import sys
import tempfile

os.environ["RWKV_V7_ON"] = "1"
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import evalsets  # noqa: E402
from model import RWKV7  # noqa: E402
from vocab import Tokenizer  # noqa: E402


def load(args):
    if args.ckpt:
        ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        sd = ck["model"]
        path = os.path.join(tempfile.mkdtemp(), "ckpt")
        torch.save({k: v.float().contiguous() for k, v in sd.items()}, path + ".pth")
        info = f"checkpoint {args.ckpt} step {ck['step']} ({ck['tokens'] / 1e6:.2f}M tokens)"
    else:
        path = args.model
        sd = torch.load(path + ".pth", map_location="cpu", weights_only=True)
        info = f"{path}.pth"
    V, C = sd["emb.weight"].shape
    L = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    m = RWKV7(V, C, L)
    m.load_state_dict(sd)
    m.eval()
    return m, path, info


def update_case(rng, tok, filler):
    """One or two people with a city; the queried one moves later."""
    w = corpus.World(rng, mode="eval")
    n_ent = rng.choice([1, 2])
    used, ents = [], []
    while len(ents) < n_ent:
        first, surname = w.entity(used)
        nm = corpus.name_of(first, surname)
        v = w.value(nm, "city", avoid={e[2] for e in ents})
        v2 = w.value(nm, "city", avoid={v} | {e[2] for e in ents})
        if v is None or v2 is None:
            continue
        used.append(nm)
        ents.append((first, nm, v, v2))
    sents = [corpus.fill(rng.choice(corpus.FACTS["city"]), nm, v, first) for first, nm, v, _ in ents]
    rng.shuffle(sents)
    first, nm, v, v2 = ents[0]
    sents.append(corpus.fill(rng.choice(corpus.UPDATES["city"]), nm, v2, first))
    ctx = " ".join(sents)
    if filler:
        ctx += " " + evalsets.filler_text(rng, filler, tok)
    return ctx + " " + corpus.query_text(evalsets.QUERY["city"], nm, v2), v2, [v] + [e[2] for e in ents[1:]]


def table(m, tok, n, seed):
    rng = random.Random(seed)
    print("| entities in context | no filler | ~100 filler tokens |")
    print("|---|---|---|")
    rows = list(evalsets.CELLS)
    for label, n_ent, sp in rows:
        cells = []
        for fill in (0, 100):
            cases = [evalsets.make_case(rng, n_ent, fill, tok, same_prop=sp) for _ in range(n)]
            acc, oth = evalsets.score(m, tok, cases)
            cells.append(f"{acc * 100:.1f}% (other {oth * 100:.0f}%)")
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    for prop, tmpls in corpus.HELDOUT_QUERIES.items():
        for t in tmpls:
            cells = []
            for fill in (0, 100):
                cases = [evalsets.make_case(rng, 3, fill, tok, query_template=t, query_prop=prop) for _ in range(n)]
                acc, oth = evalsets.score(m, tok, cases)
                cells.append(f"{acc * 100:.1f}% (other {oth * 100:.0f}%)")
            print(f"| 3, held-out template `{t}` | {cells[0]} | {cells[1]} |")
    cells = []
    for fill in (0, 100):
        cases = [update_case(rng, tok, fill) for _ in range(n)]
        acc, oth = evalsets.score(m, tok, cases)
        cells.append(f"{acc * 100:.1f}% (old/other {oth * 100:.0f}%)")
    print(f"| 1–2, update \"Later, N moved to Y.\" → Y | {cells[0]} | {cells[1]} |")
    print(f"\n{n} queries per cell; held-out (name, value) combinations only; top-1 over the whole vocabulary.")


def patching(path, tok, pairs, seed):
    from rwkv.model import RWKV
    ref = RWKV(model=path, strategy="cpu fp32")
    L = ref.n_layer
    upper, lower = list(range(L // 2, L)), list(range(0, L // 2))
    rng = random.Random(seed)
    w = corpus.World(rng, mode="eval")
    clone = lambda st: [s.clone() for s in st]
    res = {"base": 0, "upper": [0, 0, 0], "lower": [0, 0, 0]}
    for _ in range(pairs):
        used = []
        f1, s1 = w.entity(used)
        n1 = corpus.name_of(f1, s1)
        used.append(n1)
        f2, s2 = w.entity(used)
        n2 = corpus.name_of(f2, s2)
        x = w.value(n1, "city")
        z = w.value(n2, "city", avoid={x})
        y = w.value(n1, "city", avoid={x, z})
        A = f"{n1} lives in {x}. {n2} lives in {z}."
        B = f"{n1} lives in {y}. {n2} lives in {z}."
        _, sA = ref.forward(tok.encode(A), None)
        sA = clone(sA)
        _, sB = ref.forward(tok.encode(B), None)
        sB = clone(sB)

        def ask(state, nm):
            q = " " + corpus.query_text(evalsets.QUERY["city"], nm, "x")
            out, _ = ref.forward(tok.encode(q), clone(state))
            return tok.decode([int(out.argmax())]).strip()

        if ask(sA, n1) == x and ask(sA, n2) == z:
            res["base"] += 1
        for key, layers in (("upper", upper), ("lower", lower)):
            sP = clone(sA)
            for i in layers:
                sP[3 * i + 1] = sB[3 * i + 1].clone()
            a1, a2 = ask(sP, n1), ask(sP, n2)
            res[key][0] += a1 == y
            res[key][1] += a2 == z
            res[key][2] += (a1 == y and a2 == z)
    print(f"\nState patching (B's WKV states into A), {pairs} random pairs, held-out combinations; unpatched A "
          f"answered both people right in {res['base']}/{pairs}.\n")
    print("| patched layers | N1 flips to new city | N2 keeps its city | both |")
    print("|---|---|---|---|")
    for key, layers in (("upper", upper), ("lower", lower)):
        r = res[key]
        print(f"| {key} half {layers} | {r[0]}/{pairs} | {r[1]}/{pairs} | {r[2]}/{pairs} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "demo"))
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--skip-table", action="store_true")
    args = ap.parse_args()
    tok = Tokenizer()
    m, path, info = load(args)
    print(f"## Demo model eval: {info}, d{m.n_embd} L{m.n_layer} ({m.n_head} heads/layer)\n")
    if not args.skip_table:
        table(m, tok, args.n, args.seed)
    patching(path, tok, args.pairs, args.seed + 1)


if __name__ == "__main__":
    main()
