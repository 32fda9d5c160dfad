#!/usr/bin/env bash
# The main job on the bundled demo model: build, compile an edit pack, edit a fact in a scripted
# chat, and show the answers before and after. Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "== building (release)"
swift build -c release 2>&1 | tail -n 1
bin=.build/release/rwkv-edit
model=models/demo.safetensors
pack=packs/cities.rwkvpack
[ -f "$model" ] || { echo "error: $model is missing (see models/README.md)" >&2; exit 1; }

echo; echo "== the model"
$bin info --model "$model"

echo; echo "== compiling the cities pack (resumable: the shipped pack is complete, so this only checks it belongs to the model)"
$bin compile --model "$model" --values prompts/cities.txt -o "$pack"
$bin packs verify "$pack"

context="Alice lives in Paris. Bob lives in Austin."
echo; echo "== edit by name with the pack: Bob: Austin -> Chicago, in the context \"$context\""
$bin apply --model "$model" --pack "$pack" --context "$context" --edit "Bob: Austin -> Chicago" \
  --query "Where does Bob live? Bob lives in" --old Austin --new Chicago \
  --control-query "Where does Alice live? Alice lives in" --control-answer Paris

echo; echo "== a scripted chat: edits by name (pack) and free-form, answers before and after, exact undo"
$bin chat --model "$model" --pack "$pack" --max-tokens 3 <<'CHAT'
/feed Alice lives in Paris. Bob lives in Austin.
/ask Where does Bob live? Bob lives in
/ask Where does Alice live? Alice lives in
/edit cities Bob: Austin -> Chicago
/ask Where does Bob live? Bob lives in
/ask Where does Alice live? Alice lives in
/undo
/edit "Bob lives in Austin." "Bob lives in Chicago." --ratio 0.5
/ask Where does Bob live? Bob lives in
/undo
/ask Where does Bob live? Bob lives in
CHAT
