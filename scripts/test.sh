#!/usr/bin/env bash
# The whole test suite: installs system packages if missing, builds in release mode, runs every test,
# then builds the example app against a tagged clone (the runtime as a versioned dependency), and
# ends with a short fuzz run of every file reader (scripts/fuzz.sh --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests -c release
swift build --product RWKVEdit -c release
swift test -c release --skip-build
bash scripts/test-example.sh
bash scripts/fuzz.sh --smoke
