#!/usr/bin/env bash
# The whole test suite: installs system packages if missing (and the interop venv), builds in release mode, runs every test,
# then builds the example app against a tagged clone (the runtime as a versioned dependency).
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
swift build --build-tests -c release
swift build --product RWKVEdit -c release
swift test -c release --skip-build
bash scripts/test-example.sh
