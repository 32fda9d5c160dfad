#!/usr/bin/env bash
# The whole test suite: installs system packages if missing (and the interop venv), builds in release mode,
# runs every test, then builds the example app against a tagged clone (the runtime as a versioned
# dependency), and ends with a short fuzz run of every file reader (scripts/fuzz.sh --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The Python side of the state interop tests (tools/interop): the official `rwkv` package and CPU torch,
# pinned, in a venv kept under .build. Without it those tests skip and say why.
if [ -x .build/interop-venv/bin/python ] || python3 -m venv .build/interop-venv; then
  .build/interop-venv/bin/pip install -q -r tools/interop/requirements.txt \
    || { rm -rf .build/interop-venv; echo "warning: could not install tools/interop/requirements.txt; the interop tests will skip" >&2; }
else
  echo "warning: could not create .build/interop-venv; the interop tests will skip" >&2
fi
# llama.cpp (llama-cpp-python): built from its sdist once (~13 min on a 2-core VM), then installed from
# the wheel kept in ~/.cache/rwkv-edit-interop/wheels (keep that folder between CI runs).
wheels="${RWKV_EDIT_WHEEL_CACHE:-$HOME/.cache/rwkv-edit-interop/wheels}"
if [ -x .build/interop-venv/bin/python ] && mkdir -p "$wheels" \
   && .build/interop-venv/bin/pip wheel -q --no-deps -w "$wheels" --find-links "$wheels" -r tools/interop/requirements-llama.txt \
   && .build/interop-venv/bin/pip install -q --find-links "$wheels" -r tools/interop/requirements-llama.txt; then :
else
  echo "warning: llama-cpp-python is not installed; the llama.cpp interop test will skip" >&2
fi
swift build --build-tests -c release
swift build --product RWKVEdit -c release
swift test -c release --skip-build
bash scripts/test-example.sh
bash scripts/fuzz.sh --smoke
