#!/usr/bin/env bash
# Recompiles the packs shipped for the demo model (run after retraining models/demo.*: a pack records the
# model's identity — config, vocabulary digest, sampled weights — and a stale one is refused with a clear error).
# Usage: packs/build.sh [path/to/rwkv-edit]   (default: .build/release/rwkv-edit)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/release/rwkv-edit}
model=models/demo.safetensors
for v in cities colours pets drinks jobs items; do
  "$bin" compile --model "$model" --values "prompts/$v.txt" -o "packs/$v.rwkvpack" --force
done
"$bin" packs verify --model "$model" packs/{cities,colours,pets,drinks,jobs,items}.rwkvpack
