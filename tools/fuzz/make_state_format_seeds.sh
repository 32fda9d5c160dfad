#!/usr/bin/env bash
# Seeds of the `stateformats` fuzz target: the tiny fixture's reference state converted by the CLI
# into every format, each prefixed with the byte 0 (FuzzSupport's "whole file" input form).
# Usage: bash tools/fuzz/make_state_format_seeds.sh   (after `swift build -c release`)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.build/release/rwkv-edit
tiny=../shared/fixtures/tiny-rwkv-7v0
model=$tiny/tiny-rwkv-7v0-834K.blinkdl.safetensors
out=Fuzz/corpus/stateformats
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
for f in native llama-session llama-seq pth webrwkv rwkvcpp; do
  "$bin" state convert "$tiny/reference_state_after_quote_in.safetensors" "$tmp/$f.state" --to "$f" --model "$model" >/dev/null 2>&1
  { printf '\000'; cat "$tmp/$f.state"; } > "$out/$f"
done
ls -l "$out"
