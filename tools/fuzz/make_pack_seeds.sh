#!/usr/bin/env bash
# Seeds of the `pack` fuzz target (Fuzz/FuzzPack.swift): a 3-value pack compiled on the tiny fixture
# model, vacuumed to 512-byte pages (so it fits the runs' 64 KiB -max_len), as a whole file and as the
# base of structured inputs whose ops rewrite the manifest, the status, a moved-and-re-signed entry
# and a pair row's size.
# Usage: bash tools/fuzz/make_pack_seeds.sh   (after `swift build -c release`)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.build/release/rwkv-edit
model=../shared/fixtures/tiny-rwkv-7v0/tiny-rwkv-7v0-834K.blinkdl.safetensors
out=Fuzz/corpus/pack
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '@property colour\n@template The answer is {value}.\n@probe {entity} likes {value}.\n@query What does {entity} like? {entity} likes\nred\nblue\ngreen = green-ish\n' >"$tmp/values.txt"
"$bin" compile --model "$model" --values "$tmp/values.txt" -o "$tmp/base.rwkvpack" >/dev/null
rm -rf "$out"; mkdir -p "$out"
python3 - "$tmp/base.rwkvpack" "$out" <<'PY'
import pathlib, sqlite3, struct, sys
base, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
db = sqlite3.connect(base)
db.execute("PRAGMA page_size = 512")
db.execute("VACUUM")
def offset(table, where):
    rowids = [r[0] for r in db.execute(f"SELECT rowid FROM {table} ORDER BY rowid")]
    return rowids.index(db.execute(f"SELECT rowid FROM {table} WHERE {where}").fetchone()[0])
tables = ["meta", "vocab", "staged", "addresses", "vocab_entries", "pair_entries"]
def op(table, row, column, kind, payload=b""):
    return bytes([tables.index(table), row, column, kind]) + struct.pack("<H", len(payload)) + payload
manifest = db.execute("SELECT value FROM meta WHERE key = 'manifest'").fetchone()[0].encode()
blob1 = db.execute("SELECT blob FROM vocab_entries ORDER BY rowid LIMIT 1 OFFSET 1").fetchone()[0]
m_row, s_row = offset("meta", "key = 'manifest'"), offset("meta", "key = 'status'")
db.close()
pack = base.read_bytes()
assert len(pack) < 60000, len(pack)
structured = lambda ops: bytes([1]) + len(pack).to_bytes(3, "little") + pack + ops
seeds = {
    "whole": bytes([0]) + pack,
    "manifest": structured(op("meta", m_row, 1, 1, manifest)),
    "staged": structured(op("meta", s_row, 1, 1, b"staged")),
    "moved-entry": structured(op("vocab_entries", 0, 1, 0, blob1) + op("vocab_entries", 0, 0, 6)),
    "pair-size": structured(op("pair_entries", 0, 3, 2, struct.pack("<q", 1 << 30)) + op("pair_entries", 0, 0, 6)),
    "deleted-vocab": structured(op("vocab", 2, 0, 5)),
}
for name, data in seeds.items():
    assert len(data) <= 65536, (name, len(data))
    (out / name).write_bytes(data)
PY
ls -l "$out"
