"""Evaluation contexts built only from held-out (name, property, value) combinations (see corpus.heldout_combo)."""
import random

import torch

import corpus

# A question before the answer prefix: a bare "N's hat is" right after the facts reads as one more fact
# statement (the corpus states facts that way too), so the model rightly answers it with a fresh value.
QUERY = {"city": "Where does N live? N lives in", "hat": "What colour is N's hat? N's hat is",
         "eyes": "What colour are N's eyes? N's eyes are", "pet": "What pet does N have? N has a pet",
         "drink": "Q: What does N like to drink? A:", "job": "What does N do? N works as a",
         "owns": "What does N own? N owns a"}
assert all(q in corpus.QUERIES[p] for p, q in QUERY.items())
OTHER_PROPS = ["hat", "eyes", "pet", "drink", "job", "owns"]


def filler_text(rng, n_tokens, tok):
    out, n = [], 0
    while n < n_tokens:
        s = rng.choice(corpus.FILLER)
        out.append(s)
        n += len(tok.encode(" " + s))
    return " ".join(out)


def make_case(rng, n_ent, filler_tokens, tok, same_prop=None, query_template=None, query_prop=None):
    """Returns (context text ending right before the answer, answer value, values of the other entities).

    same_prop: every entity has only this property (distinct values). Otherwise every entity has a city
    plus one other property, cities distinct."""
    w = corpus.World(rng, mode="eval")
    used, ents = [], []
    while len(ents) < n_ent:
        first, surname = w.entity(used)
        nm = corpus.name_of(first, surname)
        if same_prop:
            props = [same_prop]
        elif query_prop not in (None, "city"):
            props = ["city", query_prop]
        else:
            props = ["city", rng.choice(OTHER_PROPS)]
        facts = {}
        for p in props:
            v = w.value(nm, p, avoid={e[2].get(p) for e in ents})
            if v is None:
                break
            facts[p] = v
        if len(facts) != len(props):
            continue
        used.append(nm)
        ents.append((first, nm, facts))
    sents = []
    for first, nm, facts in ents:
        for p, v in facts.items():
            sents.append(corpus.fill(rng.choice(corpus.FACTS[p]), nm, v, first))
    rng.shuffle(sents)
    ctx = " ".join(sents)
    if filler_tokens:
        ctx += " " + filler_text(rng, filler_tokens, tok)
    qi = rng.randrange(len(ents))
    first, nm, facts = ents[qi]
    p = query_prop if query_prop else (same_prop or rng.choice(list(facts)))
    v = facts[p]
    q = corpus.query_text(query_template or QUERY[p], nm, v)
    others = [e[2][p] for j, e in enumerate(ents) if j != qi and p in e[2]]
    return ctx + " " + q, v, others


@torch.no_grad()
def score(model, tok, cases, batch=64):
    """Top-1 accuracy of the answer token (with its leading space) after each context (zero initial state)."""
    correct, wrong_other = 0, 0
    for i in range(0, len(cases), batch):
        chunk = cases[i:i + batch]
        ids = [tok.encode(c[0]) for c in chunk]
        T = max(len(x) for x in ids)
        x = torch.zeros(len(ids), T, dtype=torch.long)
        for j, s in enumerate(ids):
            x[j, :len(s)] = torch.tensor(s)
        logits = model(x.to(model.emb.weight.device))
        for j, s in enumerate(ids):
            pred = logits[j, len(s) - 1].argmax().item()
            ans = tok.single(" " + chunk[j][1])
            if pred == ans:
                correct += 1
            elif pred in [tok.single(" " + o) for o in chunk[j][2]]:
                wrong_other += 1
    return correct / len(cases), wrong_other / len(cases)


CELLS = [  # (label, n_ent, same_prop)
    ("1 entity", 1, "city"),
    ("2 (same property)", 2, "city"),
    ("3", 3, None),
    ("5", 5, None),
]


def quick_eval(model, tok, seed=7, n=48):
    rng = random.Random(seed)
    res = {}
    for label, n_ent, sp in CELLS:
        cases = [make_case(rng, n_ent, 0, tok, same_prop=sp) for _ in range(n)]
        res[label] = score(model, tok, cases)[0]
    return res
