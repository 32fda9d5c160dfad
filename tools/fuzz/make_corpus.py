#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (Fuzz/corpus/TARGET/) from the repo's fixtures.

Each seed is small (at most 64 KiB, the fuzz runs' -max_len) and uses the input layout its target
documents: byte 0 picks the form; the odd form of the file targets is a file's head plus the length
to pad it to with zeros, so a 3 MB model file becomes a seed of its header alone.
Run from the repository root: python3 tools/fuzz/make_corpus.py
"""
import io, json, os, pathlib, shutil, struct, zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "fixtures"
TINY = SHARED / "tiny-rwkv-7v0"
OUT = ROOT / "Fuzz" / "corpus"
MAX = 65536


def put(target, name, data):
    assert len(data) <= MAX, (target, name, len(data))
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def padded(head, total):
    """The odd form: 1, length in 256-byte units (24 bits), the head."""
    units = (total + 255) // 256
    return bytes([1]) + units.to_bytes(3, "little") + head


def safetensors_head(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return raw[: 8 + n], len(raw)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    pth = TINY / "tiny-rwkv-7v0-834K.blinkdl.pth"
    with zipfile.ZipFile(pth) as z:
        pkl_name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        pkl = z.read(pkl_name)
        storages = sum(1 for n in z.namelist() if "/data/" in n)
        biggest = max(i.file_size for i in z.infolist() if "/data/" in i.filename)
    # pth, odd form: the tiny model's pickle over K zero storages of the largest storage's size.
    put("pth", "tiny-pickle", bytes([1]) + storages.to_bytes(2, "little") + biggest.to_bytes(3, "little") + pkl)
    # pth, even form: a whole small archive (the pickle, byteorder, one short storage), as Python writes zips.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("m/data.pkl", pkl)
        z.writestr("m/byteorder", "little")
        z.writestr("m/data/0", bytes(64))
    put("pth", "small-zip", bytes([0]) + buf.getvalue())

    head, total = safetensors_head(TINY / "tiny-rwkv-7v0-834K.blinkdl.safetensors")
    put("safetensors", "tiny-header", padded(head, total))
    fla = ROOT / "Tests" / "Fixtures" / "golden" / "golden.fla.safetensors"
    head, total = safetensors_head(fla)
    put("safetensors", "golden-fla-header", padded(head, total))

    for name in ["tiny-rwkv7-834K-f16.gguf", "tiny-rwkv7-834K-f32.gguf"]:
        raw = (TINY / name).read_bytes()
        put("gguf", name, padded(raw[: MAX - 4], len(raw)))

    head, total = safetensors_head(TINY / "reference_state_after_quote_in.safetensors")
    put("state", "reference-state", padded(head, total))

    vocab = (SHARED / "world-vocab" / "rwkv_vocab_v20230424.txt").read_bytes().split(b"\n")
    put("worldvocab", "first-300", b"\n".join(vocab[:300]) + b"\n")
    put("worldvocab", "crlf-first-100", b"\r\n".join(vocab[:100]) + b"\r\n")
    # Renumbered samples of the harder literals: bytes escapes and non-ASCII text.
    picked = [l for l in vocab if l.split(b" ", 1)[-1].startswith(b"b'")][:40] + [l for l in vocab if any(c > 127 for c in l)][:40]
    lines = [b"%d %s" % (i + 1, l.split(b" ", 1)[1]) for i, l in enumerate(picked)]
    put("worldvocab", "escapes-and-unicode", b"\n".join(lines) + b"\n")

    for p in sorted((ROOT / "prompts").glob("*.txt")):
        put("values", p.stem, p.read_bytes()[:MAX])
    put("values", "pairs", b"# pairs\nParis -> Rome\r\nTokyo, Oslo\n")

    for p in sorted((ROOT / "prompts" / "eval").iterdir()):
        if p.suffix in (".json", ".jsonl") and p.stat().st_size < MAX:
            put("evalsuite", p.name, bytes([1 if p.suffix == ".jsonl" else 0]) + p.read_bytes())
    # A .jsonl form with CRLF endings: the header line, then one case per line.
    five = json.loads((ROOT / "prompts" / "eval" / "five-entity.json").read_text())
    lines = [json.dumps({"version": five["version"], "name": "five-lines"})] + [json.dumps(c) for c in five["cases"][:2]]
    put("evalsuite", "five-entity-crlf.jsonl", bytes([1]) + "\r\n".join(lines).encode() + b"\r\n")


if __name__ == "__main__":
    main()
