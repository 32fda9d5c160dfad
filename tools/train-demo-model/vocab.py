"""Builds models/demo-vocab.txt in the RWKV World vocab file format, and a greedy longest-match tokenizer.

File format (as rwkv_vocab_v20230424.txt): one line per token `<id> <python repr of str or bytes> <byte length>`;
ids 1..256 are the single bytes (byte b has id b+1; str repr below 0x80, bytes repr above), id 0 is the
end-of-text / document separator and is not listed.

Design choice: no "punctuation + trailing space" tokens (". ", ", "): greedy matching would let them eat the
space in front of the next word, and every name and value must stay ONE token with its leading space.

Usage: python tools/train-demo-model/vocab.py          # writes models/demo-vocab.txt and checks it against
                                                        # the official rwkv TRIE_TOKENIZER on corpus samples
"""
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VOCAB_PATH = os.path.join(ROOT, "models", "demo-vocab.txt")
sys.path.insert(0, HERE)

EXTRA = ["\n\n", ".\n", ".\n\n", "?\n", "?\n\n", ":\n", "'s", " 's", "User:", "Assistant:", "Q:", "A:", " Q:", " A:",
         "\n\nUser:", "\n\nAssistant:", "User", "Assistant", " User", " Assistant", "?", " ?", "  ", "\n "]


def build_tokens():
    import corpus
    toks = []
    for w in corpus.all_words():
        toks += [w, " " + w]
        if w[0].islower():
            c = w[0].upper() + w[1:]
            toks += [c, " " + c]
    toks += EXTRA
    seen, out = set(), []
    for t in toks:
        b = t.encode("utf-8")
        if len(b) <= 1 or b in seen:
            continue
        seen.add(b)
        out.append(t)
    out.sort(key=lambda t: (len(t.encode()), t))
    return out


def write_vocab(path=VOCAB_PATH):
    lines = []
    for b in range(256):
        x = chr(b) if b < 0x80 else bytes([b])
        lines.append(f"{b + 1} {x!r} 1")
    i = 257
    for t in build_tokens():
        lines.append(f"{i} {t!r} {len(t.encode('utf-8'))}")
        i += 1
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return i  # vocab size including id 0


class Tokenizer:
    """Greedy longest byte match over a World-format vocab file (same result as rwkv's TRIE_TOKENIZER)."""

    def __init__(self, path=VOCAB_PATH):
        self.idx2tok = {}
        with open(path, "r", encoding="utf-8") as f:
            for l in f:
                if not l.strip():
                    continue
                idx = int(l[:l.index(" ")])
                x = eval(l[l.index(" "):l.rindex(" ")])  # the vocab file is ours; same parsing as rwkv
                x = x.encode("utf-8") if isinstance(x, str) else x
                assert len(x) == int(l[l.rindex(" "):])
                self.idx2tok[idx] = x
        self.tok2idx = {v: k for k, v in self.idx2tok.items()}
        self.maxlen = max(len(v) for v in self.idx2tok.values())
        self.vocab_size = max(self.idx2tok) + 1
        self._cache = {}

    def encode_bytes(self, b: bytes):
        out, i, n = [], 0, len(b)
        t2i = self.tok2idx
        while i < n:
            for L in range(min(self.maxlen, n - i), 0, -1):
                j = t2i.get(b[i:i + L])
                if j is not None:
                    out.append(j)
                    i += L
                    break
            else:
                raise ValueError("byte not in vocab")
        return out

    def encode(self, s: str):
        r = self._cache.get(s)
        if r is None:
            r = self.encode_bytes(s.encode("utf-8"))
            if len(self._cache) < 200000:
                self._cache[s] = r
        return list(r)

    def decode(self, ids):
        return b"".join(self.idx2tok.get(i, b"") for i in ids).decode("utf-8", errors="replace")

    def single(self, s: str):
        """Id of s, which must be exactly one token."""
        ids = self.encode(s)
        if len(ids) != 1:
            raise ValueError(f"{s!r} is {len(ids)} tokens: {ids}")
        return ids[0]


if __name__ == "__main__":
    import corpus
    n = write_vocab()
    print(f"wrote {VOCAB_PATH}: {n - 1} entries (vocab size {n} with id 0)")
    tok = Tokenizer()
    from rwkv.rwkv_tokenizer import TRIE_TOKENIZER
    ref = TRIE_TOKENIZER(VOCAB_PATH)
    rng = random.Random(123)
    ndoc = ntok = 0
    for i in range(3000):
        segs = corpus.gen_document(rng, binding_heavy=(i % 2 == 1))
        s = corpus.doc_text(segs)
        a, b = tok.encode(s), ref.encode(s)
        assert a == b, (s, a, b)
        ndoc += 1
        ntok += len(a)
    # every name / value is a single token with a leading space (and one without)
    for w in corpus.FIRST + corpus.SURNAMES + sorted({v for vs in corpus.PROPS.values() for v in vs}):
        tok.single(" " + w)
        tok.single(w)
    for s in ["Alice lives in Paris. Bob lives in Tokyo.", "User: Where does Alice live?\n\nAssistant: Alice lives in"]:
        print(repr(s), "->", [tok.decode([i]) for i in tok.encode(s)])
    print(f"tokenizer == TRIE_TOKENIZER on {ndoc} documents ({ntok} tokens); all names/values single tokens")
