#!/usr/bin/env bash
# Installs the Debian packages semfuse builds against, if any is missing, and makes sure the
# python3 on PATH can import numpy and flatbuffers (the converters in tools/).
# Needs root (or sudo) only when something has to be installed. Quiet when nothing is missing.
set -euo pipefail
# python3-numpy: tools/convert_checkpoint.py and tools/convert_tflite.py, and their tests.
# python3-flatbuffers: tools/convert_tflite.py reads .tflite files with the flatbuffers runtime.
packages=(libopenblas-dev libpng-dev libeigen3-dev libjpeg62-turbo-dev zlib1g-dev pkg-config python3 python3-numpy python3-flatbuffers)
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "semfuse setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The python3 on PATH may not be Debian's (a pyenv or venv python shadowing /usr/bin/python3):
# if it still cannot import a module, install that module with its own pip.
for module in numpy flatbuffers; do
  python3 -c "import $module" 2>/dev/null && continue
  echo "semfuse setup: $(command -v python3) cannot import $module; installing it with pip" >&2
  if ! output=$(python3 -m pip install --quiet "$module" 2>&1); then
    if grep -q "externally-managed-environment" <<<"$output"; then
      python3 -m pip install --quiet --break-system-packages "$module" \
        || echo "semfuse setup: warning: could not install $module; the converter tests will be skipped" >&2
    else
      echo "$output" >&2
      echo "semfuse setup: warning: could not install $module; the converter tests will be skipped" >&2
    fi
  fi
done
command -v swift >/dev/null || { echo "semfuse setup: Swift 6 toolchain not found on PATH" >&2; exit 1; }
