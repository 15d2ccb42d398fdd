#!/usr/bin/env bash
# Runs the whole test suite (release build with testing enabled: the fusion kernels are too slow
# unoptimised for the real-data tests). Installs what is missing first.
# Tests that need ../shared (real datasets) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release -Xswiftc -enable-testing --build-tests
log=$(mktemp)
status=0
swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?
# One plain summary line from XCTest's last "Executed N tests, with [K tests skipped and] M failures".
summary=$(grep -E "Executed [0-9]+ tests?, with" "$log" | tail -n 1 || true)
rm -f "$log"
if [ -n "$summary" ]; then
  total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
  failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
  skipped=$(grep -oE '[0-9]+ tests? skipped' <<<"$summary" | grep -oE '^[0-9]+' || echo 0)
  echo "tests: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit $status
