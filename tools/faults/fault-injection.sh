#!/usr/bin/env bash
# Fault injection against `rwkv-edit compile` (README "Reliability"): SIGKILL at random moments, a full
# disk at several sizes, and two compiles of one output at once. For every run it checks that no
# finished pack exists that fails `packs verify`, and that resuming finishes a pack that verifies.
# Needs root for the small tmpfs mounts of the full-disk part (skipped otherwise).
# Usage: bash tools/faults/fault-injection.sh [KILLS]   (after `swift build -c release`)
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/.build/release/rwkv-edit
model=$PWD/../shared/fixtures/tiny-rwkv-7v0/tiny-rwkv-7v0-834K.blinkdl.safetensors
kills=${1:-20}
work=$(mktemp -d)
trap 'umount "$work/disk" 2>/dev/null; rm -rf "$work"' EXIT
seq 0 2999 | sed 's/^/value/' > "$work/values.txt"
compile() { "$bin" compile --model "$model" --values "$work/values.txt" --batch 1 --threads 1 -o "$1" --json >/dev/null 2>"$2"; }
finished_ok() { [ ! -e "$1" ] || "$bin" packs verify "$1" >/dev/null 2>&1; }

# 1. SIGKILL during compile, then resume.
bad=0; finished=0
out="$work/kill.rwkvpack"
for i in $(seq 1 "$kills"); do
  compile "$out" /dev/null & pid=$!
  sleep "0.$(( (RANDOM % 9) + 1 ))"
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ -e "$out" ]; then finished=$((finished + 1)); fi
  finished_ok "$out" || bad=$((bad + 1))
done
compile "$out" /dev/null; resumed=$?
"$bin" packs verify "$out" >/dev/null 2>&1; verified=$?
echo "SIGKILL: $kills kills at random moments; finished packs seen $finished, finished packs failing verify $bad; resumed compile exit $resumed, verify exit $verified"

# 2. Full disk: a tmpfs of each size holds the output.
if [ "$(id -u)" = 0 ] && mkdir -p "$work/disk"; then
  for size in 1m 64m 256m 1g; do
    mount -t tmpfs -o size=$size tmpfs "$work/disk" || { echo "full disk: cannot mount tmpfs; skipped"; break; }
    compile "$work/disk/p.rwkvpack" "$work/err"; status=$?
    ok=yes; finished_ok "$work/disk/p.rwkvpack" || ok=no
    echo "full disk $size: exit $status, finished pack $( [ -e "$work/disk/p.rwkvpack" ] && echo present || echo absent ), verifies-or-absent $ok; $(head -c 160 "$work/err" | tr '\n' ' ')"
    umount "$work/disk"
  done
else
  echo "full disk: needs root for tmpfs; skipped"
fi

# 3. Two compiles of one output at once.
out="$work/two.rwkvpack"
compile "$out" "$work/err1" & a=$!
sleep 0.3
compile "$out" "$work/err2"; second=$?
wait "$a"; first=$?
"$bin" packs verify "$out" >/dev/null 2>&1; verified=$?
echo "concurrent: first exit $first, second exit $second ($(grep -o 'another compile (pid [0-9]*) is writing' "$work/err2" | head -1)), pack verify exit $verified"
