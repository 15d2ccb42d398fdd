#!/usr/bin/env bash
# Installs the Debian packages semfuse builds against, if any is missing.
# Needs root (or sudo) only when something has to be installed.
set -euo pipefail
# python3-numpy: tools/convert_checkpoint.py (checkpoint conversion, no torch) and its tests.
packages=(libopenblas-dev libpng-dev libeigen3-dev libjpeg62-turbo-dev zlib1g-dev pkg-config python3 python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "semfuse setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "semfuse setup: Swift 6 toolchain not found on PATH" >&2; exit 1; }
