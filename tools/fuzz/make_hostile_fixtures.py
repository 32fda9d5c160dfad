#!/usr/bin/env python3
"""Writes Tests/Fixtures/hostile/: the minimal inputs of the crashes, hangs, silent wrong results and
wrong errors found by the adversarial run and the fuzz targets (README "Reliability"), and
`expected.json`, which HostileFixtureTests runs through the CLI: each file with the command that once
crashed, hung or misled on it, the exit status it must now give and words its message must contain.

Packs are a 3-value pack compiled on the tiny fixture model and damaged through SQLite; where the damage
must get past the row checksums (a tool that knows the format could write it), the row is re-signed
with the pack's own checksum rule (PackManifest.rowChecksum in Sources/RWKVEdit/Packs/PackRows.swift).
Usage, from the repository root after `swift build -c release`:
    python3 tools/fuzz/make_hostile_fixtures.py
"""
import hashlib, json, os, pathlib, shutil, sqlite3, struct, subprocess, tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / ".build" / "release" / "rwkv-edit"
TINY = ROOT.parent / "shared" / "fixtures" / "tiny-rwkv-7v0"
MODEL = TINY / "tiny-rwkv-7v0-834K.blinkdl.safetensors"
OUT = ROOT / "Tests" / "Fixtures" / "hostile"
VALUES = "@property colour\n@template The answer is {value}.\n@probe {entity} likes {value}.\nred\nblue\ngreen\n"


def compile_pack(tmp, name, pairs):
    values = tmp / "values.txt"
    values.write_text(VALUES)
    out = tmp / name
    cmd = [str(BIN), "compile", "--model", str(MODEL), "--values", str(values), "-o", str(out), "--threads", "1"]
    if pairs:
        cmd += ["--pairs", "all"]
    subprocess.run(cmd, check=True, capture_output=True)
    db = sqlite3.connect(out)
    db.execute("PRAGMA page_size = 512")
    db.execute("VACUUM")
    db.close()
    return out


def manifest(db):
    return json.loads(db.execute("SELECT value FROM meta WHERE key = 'manifest'").fetchone()[0])


def set_manifest(db, m):
    db.execute("UPDATE meta SET value = ? WHERE key = 'manifest'", (json.dumps(m),))


def row_checksum(m, kind, names, raw_size, payload):
    """PackManifest.rowChecksum of an entry row (not staged rows, which use XXH64): what binds the row
    to its pack and place, then the stored bytes."""
    head = f"rwkv-edit pack row v3\n{m['values']['sha256']}\nlayers {m['layers'][0]}-{m['layers'][1]} heads {m['n_head']}x{m['head_size']} {m['dtype']}\n"
    data = head.encode()
    for t in [kind] + names:
        b = t.encode()
        data += struct.pack("<I", len(b)) + b
    data += struct.pack("<q", raw_size) + payload
    return hashlib.sha256(data).hexdigest()[:16]


def store_signed(db, name, blob, raw_size):
    m = manifest(db)
    db.execute("UPDATE vocab_entries SET blob = ?, raw_size = ?, checksum = ? WHERE name = ?",
               (blob, raw_size, row_checksum(m, "vocab", [name], raw_size, blob), name))


def zstd_raw_frame(content):
    """A zstd frame of one raw block (no compression library needed): magic, a single-segment header
    with an 8-byte content size, a last raw block."""
    assert len(content) < 1 << 17
    block = (len(content) << 3) | 1   # last block, type raw
    return struct.pack("<I", 0xFD2FB528) + bytes([0xE0]) + struct.pack("<Q", len(content)) + struct.pack("<I", block)[:3] + content


def zstd_rle_frame(declared):
    """A frame declaring `declared` bytes of zeros in 128 KiB RLE blocks (a few bytes per block)."""
    out = struct.pack("<I", 0xFD2FB528) + bytes([0xE0]) + struct.pack("<Q", declared)
    left = declared
    while left:
        n = min(left, 1 << 17)
        left -= n
        out += struct.pack("<I", (n << 3) | (1 << 1) | (1 if left == 0 else 0))[:3] + b"\0"
    return out


def blob(count, dim, values, dtype_code=1):
    """The blob payload (BlobCodec): header, then count×dim f16 values."""
    raw = b"RWPB" + bytes([1, dtype_code, 0, 0]) + struct.pack("<III", count, dim, 0)
    raw += struct.pack(f"<{count * dim}e", *values)
    return raw


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    expected = []

    def case(file, command, status, words, about):
        expected.append({"file": file, "command": command, "status": status, "stderr": words, "about": about})

    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        base = compile_pack(tmp, "base.rwkvpack", pairs=False)
        paired = compile_pack(tmp, "paired.rwkvpack", pairs=True)

        def damaged(name, source, change):
            path = OUT / name
            shutil.copy(source, path)
            db = sqlite3.connect(path)
            change(db)
            db.commit()
            db.execute("VACUUM")
            db.close()
            return name

        verify = ["packs", "verify", "{file}", "--model", "{tiny}"]

        def claim(db, key, value, top=True):
            m = manifest(db)
            m["model"]["identity"]["config"][key] = value
            if top:
                m[key] = value
            set_manifest(db, m)

        # Crashes: sizes from the manifest allocated before they were bounded.
        case(damaged("pack-n-head-2e31.rwkvpack", base, lambda db: claim(db, "n_head", 1 << 31)), verify, 1,
             ["config.n_head is 2147483648", "1…1024"], "abort allocating 34 GB for the head list")
        case(damaged("pack-n-layer-2e40.rwkvpack", base, lambda db: (claim(db, "n_layer", 1 << 40, top=False),
                                                                        set_manifest(db, {**manifest(db), "layers": [0, (1 << 40) - 1]}))),
             verify, 1, ["config.n_layer is 1099511627776"], "memory grew until killed")

        def staged_huge(db):
            claim(db, "n_head", (1 << 63) - 1)
            db.execute("UPDATE meta SET value = 'staged' WHERE key = 'status'")
        case(damaged("shard-n-head-max.rwkvpack", base, staged_huge), ["packs", "merge", "{file}", "-o", "{tmp}/merged.rwkvpack"], 1,
             ["config.n_head is 9223372036854775807"], "heap corruption in finalize")

        nan = blob(6, 64, [float("nan")] * 384)
        case(damaged("pack-nan-entry.rwkvpack", base, lambda db: store_signed(db, "red", zstd_raw_frame(nan), len(nan))),
             ["packs", "inspect", "{file}"], 1, ["red", "vector 0 element 0 is nan"], "SIGILL converting NaN to Int in inspect")

        # Silent wrong results: rows moved, reversed or edited, tables inconsistent.
        def move(db):
            b, s = db.execute("SELECT blob, checksum FROM vocab_entries WHERE name = 'blue'").fetchone()
            db.execute("UPDATE vocab_entries SET blob = ?, checksum = ? WHERE name = 'red'", (b, s))
        case(damaged("pack-moved-entry.rwkvpack", base, move), verify, 1, ["red", "checksum mismatch"],
             "another value's entry in a row passed verify and edited to the wrong value")
        case(damaged("pack-reversed-pair.rwkvpack", paired, lambda db: db.execute(
            "UPDATE pair_entries SET a = b, b = a WHERE rowid = (SELECT min(rowid) FROM pair_entries)")), verify, 1,
            ["reversed"], "a reversed pair row passed verify")
        case(damaged("pack-pair-a-equals-b.rwkvpack", paired, lambda db: db.execute(
            "UPDATE pair_entries SET b = a WHERE rowid = (SELECT min(rowid) FROM pair_entries)")), verify, 1,
            ["does not name two different values"], "a pair of a value with itself passed verify")
        case(damaged("pack-pair-missing-value.rwkvpack", paired, lambda db: db.execute(
            "UPDATE pair_entries SET b = 'purple' WHERE rowid = (SELECT min(rowid) FROM pair_entries)")), verify, 1,
            ["does not name two different values"], "a pair naming no value passed verify")
        case(damaged("pack-edited-surface.rwkvpack", base, lambda db: db.execute("UPDATE vocab SET surface = 'Red!' WHERE name = 'red'")),
             verify, 1, ["does not match the manifest's value list"], "an edited surface text passed verify")
        case(damaged("pack-deleted-vocab-row.rwkvpack", base, lambda db: db.execute("DELETE FROM vocab WHERE name = 'green'")),
             verify, 1, ["the vocab table has 2 values, the manifest lists 3"], "a deleted vocabulary row passed verify")

        # Blow-ups: sizes a blob claims, checked before decompressing.
        frame_head = zstd_rle_frame(1 << 30)[:64]
        case(damaged("pack-blob-claims-1gb.rwkvpack", base, lambda db: store_signed(db, "blue", frame_head, 788)), verify, 1,
             ["blue", "its zstd frame declares 1073741824 bytes"], "a gigabyte decompressed before the blob was refused")
        small = zstd_raw_frame(b"\0" * 16)
        case(damaged("pack-negative-raw-size.rwkvpack", base, lambda db: store_signed(db, "blue", small, -1)), verify, 1,
             ["blue", "raw_size is -1 bytes"], "a trap computing the row checksum (found by the pack fuzz target)")

    # A saved state with one flipped byte (loaded silently before states carried a checksum).
    with tempfile.TemporaryDirectory() as t:
        saved = pathlib.Path(t) / "s.safetensors"
        subprocess.run([str(BIN), "logits", "--model", str(MODEL), "--tokens", "65,66,67", "--state-out", str(saved)], check=True, capture_output=True)
        data = bytearray(saved.read_bytes())
        data[len(data) - 1000] ^= 0x40   # inside the last tensor's values
        (OUT / "state-flipped-byte.safetensors").write_bytes(data)
    case("state-flipped-byte.safetensors", ["logits", "--model", "{tiny}", "--tokens", "65", "--state-in", "{file}"], 1,
         ["do not match the checksum it was saved with"], "a damaged state loaded silently")

    # Values files: an overlong line (a minute and 3.6 GB), CRLF line endings (read as no values).
    (OUT / "values-long-line.txt").write_text("red\n" + "x" * 100_000 + "\nblue\n")
    case("values-long-line.txt", ["compile", "--model", "{tiny}", "--values", "{file}", "-o", "{tmp}/long.rwkvpack"], 1,
         [":2: the line is 100000 bytes"], "over 60 s and 3.6 GB for one line")
    (OUT / "values-crlf.txt").write_bytes(b"@property colour\r\nred\r\nblue\r\ngreen\r\n")
    case("values-crlf.txt", ["compile", "--model", "{tiny}", "--values", "{file}", "-o", "{tmp}/crlf.rwkvpack", "--threads", "1"], 0,
         [], "'needs at least two values (it has 0)'")

    # Eval suites: filler of 1e8 tokens (ran for ever), 1000 alphas (minutes), CRLF .jsonl (refused).
    good = {"id": "a", "context": "Alice lives in Paris.", "edit": {"from": "Alice lives in Paris.", "to": "Alice lives in Rome."},
            "targets": [{"query": "Alice lives in", "old": "Paris", "new": "Rome"}]}
    suite = lambda case_: json.dumps({"version": 1, "cases": [case_]})
    (OUT / "suite-filler-1e8.json").write_text(suite({**good, "filler": {"tokens": 100_000_000}}))
    run_suite = ["eval", "--model", "{tiny}", "--suite", "{file}", "--backend", "cpu", "--threads", "1"]
    case("suite-filler-1e8.json", run_suite, 1, ["filler.tokens", "at most 32768"], "the filler loop ran for ever")
    (OUT / "suite-1000-alphas.json").write_text(suite({**good, "alphas": [0.5] * 1000}))
    case("suite-1000-alphas.json", run_suite, 1, ["alphas", "at most 64"], "minutes of edits")
    (OUT / "suite-crlf.jsonl").write_bytes(b'{"version": 1, "name": "crlf"}\r\n' + json.dumps(good).encode() + b"\r\n")
    case("suite-crlf.jsonl", run_suite, 0, [], "'not a JSON object'")

    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:8d}  {p.name}")


if __name__ == "__main__":
    main()
