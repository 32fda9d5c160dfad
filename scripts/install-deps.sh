#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages rwkv-edit builds against, if any is missing.
set -euo pipefail
packages=(libsqlite3-dev liblapacke-dev libopenblas-dev libzstd-dev libvulkan-dev mesa-vulkan-drivers glslc pkg-config python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v swift >/dev/null || { echo "error: swift is not on PATH; install Swift 6.x from swift.org" >&2; exit 1; }
