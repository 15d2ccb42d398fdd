#!/usr/bin/env bash
# Fuzzes the parsers of untrusted files with libFuzzer + AddressSanitizer (issue 9).
#
#   scripts/fuzz.sh [target|all] [seconds] [max-executions]
#
# Targets are listed in Tests/FuzzTargets/FuzzTargets.swift (png-rgb, jpeg, npy, ply, manifest, …);
# `all` runs each in turn, `python` runs the two converters under atheris (dev-only:
# `pip install atheris`). Each target runs until `seconds` (default 60) or `max-executions`
# (default unlimited) and prints its executions and findings. The build goes to .build-fuzz
# (debug: Swift's overflow and bounds checks on).
# Seeds come from Tests/FuzzCorpus/<target>; the working corpus grows in .build-fuzz/corpus/.
# A crashing input is copied to Tests/FuzzCorpus/<target>/crash-<hash>, which the normal test
# suite then replays (FuzzRegressionTests). Exit status: 0 when nothing was found, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
target=${1:-all}
seconds=${2:-60}
runs=${3:--1}
scratch=.build-fuzz

case "$target" in python|convert-*) native=0 ;; *) native=1 ;; esac
if [ $native -eq 1 ]; then
  # SEMFUSE_FUZZ_NO_BUILD=1: several targets in parallel share one build made beforehand.
  # `--sanitize=fuzzer --sanitize=address` becomes two swiftc flags in an order that varies from
  # run to run, and the last one wins: half the builds had no coverage instrumentation. One
  # combined -sanitize=fuzzer,address (after SwiftPM's own) instruments every time; --sanitize=fuzzer
  # makes SwiftPM link libFuzzer. Debug (-Onone): Swift's overflow and bounds checks stay on.
  flags=(--scratch-path "$scratch" -c debug --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address)
  if [ "${SEMFUSE_FUZZ_NO_BUILD:-0}" != 1 ]; then
    echo "building the fuzzers ($scratch)…"
    SEMFUSE_FUZZ=1 swift build "${flags[@]}" --product semfuse-fuzz 2>&1 | grep -E "error|Build" || true
  fi
  binary=$(SEMFUSE_FUZZ=1 swift build "${flags[@]}" --show-bin-path)/semfuse-fuzz
  [ -x "$binary" ] || { echo "fuzz: build failed ($binary missing)" >&2; exit 2; }
  mapfile -t all < <(sed -n '/static let names = \[/,/\]/p' Tests/FuzzTargets/FuzzTargets.swift | grep -oE '"[a-z0-9-]+"' | tr -d '"')
else
  all=()
fi

findings=0
run_swift() {
  local name=$1
  local corpus="$scratch/corpus/$name" artifacts="$scratch/artifacts/$name/" log
  rm -rf "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  log=$(mktemp)
  # -rss_limit_mb / -malloc_limit_mb: an allocation beyond 2 GB is a finding (a declared size
  # trusted); -timeout: one input taking 10 s is a finding (a hang).
  SEMFUSE_FUZZ_TARGET=$name ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 "$binary" "$corpus" "Tests/FuzzCorpus/$name" \
    -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1
  local status=$?
  local executions=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  local coverage=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  # A binary without coverage instrumentation fuzzes blind: say so instead of "no findings".
  if grep -q "no interesting inputs were found" "$log"; then
    echo "fuzz $name: the binary is not instrumented for coverage (rebuild: rm -rf $scratch)"; findings=$((findings + 1))
  fi
  local found=0
  for crash in "$artifacts"*; do
    [ -f "$crash" ] || continue
    found=$((found + 1))
    cp "$crash" "Tests/FuzzCorpus/$name/$(basename "$crash")"
  done
  if [ $status -ne 0 ] || [ $found -gt 0 ]; then
    findings=$((findings + 1))
    echo "fuzz $name: FINDING after ${executions:-?} executions (status $status); inputs copied to Tests/FuzzCorpus/$name/"
    grep -E "ERROR: |SUMMARY|Fatal error|panic|==[0-9]+==" "$log" | head -5
  else
    echo "fuzz $name: ${executions:-?} executions (limits: $seconds s, $runs runs), ${coverage:-cov ?} Swift edges, no findings"
  fi
  cp "$log" "$scratch/artifacts/$name.log"
  rm -f "$log"
}

run_python() {
  local name=$1
  python3 -c "import atheris" 2>/dev/null || { echo "fuzz $name: skipped (pip install atheris)"; return; }
  rm -rf "$scratch/artifacts/$name"
  mkdir -p "$scratch/corpus/$name" "$scratch/artifacts/$name" "Tests/FuzzCorpus/$name"
  local log=$(mktemp)
  # Python exceptions are collected (one input per distinct exception) instead of ending the run.
  SEMFUSE_FUZZ_COLLECT="$scratch/artifacts/$name" python3 tools/fuzz_converters.py "$name" "$scratch/corpus/$name" "Tests/FuzzCorpus/$name" \
    -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$scratch/artifacts/$name/" -print_final_stats=1 >"$log" 2>&1
  local status=$?
  local executions=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  local found=$(ls "$scratch/artifacts/$name" | wc -l)
  if [ $status -ne 0 ] || [ "$found" -gt 0 ]; then
    findings=$((findings + 1))
    echo "fuzz $name: $found FINDING(S) in ${executions:-?} executions (status $status); inputs in $scratch/artifacts/$name/"
    grep -E "^FINDING|Uncaught|ERROR" "$log" | head -20
  else
    echo "fuzz $name: ${executions:-?} executions (limits: $seconds s, $runs runs), no findings"
  fi
  cp "$log" "$scratch/artifacts/$name.log"
  rm -f "$log"
}

case "$target" in
  all) for name in "${all[@]}"; do run_swift "$name"; done ;;
  python) run_python convert-tflite; run_python convert-checkpoint ;;
  convert-tflite|convert-checkpoint) run_python "$target" ;;
  *) run_swift "$target" ;;
esac
[ $findings -eq 0 ]
