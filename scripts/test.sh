#!/usr/bin/env bash
# Runs the whole test suite (release build with testing enabled: the fusion kernels are too slow
# unoptimised for the real-data tests). Installs what is missing first.
# Tests that need ../shared (real datasets) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release -Xswiftc -enable-testing --build-tests
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
