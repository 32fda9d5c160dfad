#!/bin/bash
# Interleaved speed and memory of two rwkv-edit binaries on the same GGUF files:
#   tools/quant/compare.sh OLD_BINARY NEW_BINARY ROUNDS FILE...
# Per round and file: `bench --model FILE --json` (64-token prompt, 32 decoded, best of three) with
# each binary in turn, then the maximum resident memory of `logits` on a 10-token prompt, or with
# RSS_TOKENS=N an N-token one of ids 1…N (/usr/bin/time -v; `bench` itself allocates a 512 MiB buffer to
# measure bandwidth, so its own peak says nothing about the model), with --backend cpu: `auto` would
# first load the Vulkan driver. A binary that refuses a file prints its error instead.
set -u
old=$1; new=$2; rounds=$3; shift 3
tokens=$(seq -s, 1 "${RSS_TOKENS:-10}")
for r in $(seq 1 "$rounds"); do
  for f in "$@"; do
    for v in old new; do
      b=$old; [ $v = new ] && b=$new
      echo "round $r $v $(basename "$f") $("$b" bench --model "$f" --json 2>&1 | tail -1)"
    done
  done
done
for f in "$@"; do
  for v in old new; do
    b=$old; [ $v = new ] && b=$new
    rss=$( { /usr/bin/time -v "$b" logits --model "$f" --tokens "$tokens" --top 0 --backend cpu >/dev/null; } 2>&1 | awk '/Maximum resident/ {print $6}')
    echo "rss $v $(basename "$f") ${rss} KiB, file $(stat -c %s "$f") bytes, ratio $(awk -v r="$rss" -v s="$(stat -c %s "$f")" 'BEGIN {printf "%.2f", r * 1024 / s}')"
  done
done
