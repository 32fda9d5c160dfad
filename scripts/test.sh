#!/usr/bin/env bash
# The whole test suite: installs system packages if missing, builds in release mode, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests -c release
swift test -c release --skip-build
