#!/usr/bin/env bash
# Builds Examples/EditByName against a tagged clone of this repository (a versioned SwiftPM dependency,
# not a path), runs it on the demo model, and checks that the app links none of the tools' libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q . "$tmp/rwkv-edit"
git -C "$tmp/rwkv-edit" tag 0.4.0
export RWKV_EDIT_PACKAGE_URL="file://$tmp/rwkv-edit"
# A copy of the example, so that its Package.resolved (which names the temporary clone) stays out of the tree.
cp -R Examples/EditByName "$tmp/example"
rm -f "$tmp/example/Package.resolved"
swift build -c release --package-path "$tmp/example" --scratch-path "$tmp/build"
bin="$tmp/build/release/EditByName"
out=$("$bin" models/demo.safetensors)
echo "$out"
grep -q "^verdict: applied" <<<"$out" || { echo "error: the example's edit did not verify" >&2; exit 1; }
if ldd "$bin" | grep -Ei "openblas|lapack|vulkan"; then
  echo "error: the example links a library the runtime must not need (above)" >&2
  exit 1
fi
echo "example: built from a tagged clone, edit verified, no OpenBLAS/LAPACK/Vulkan linked"
