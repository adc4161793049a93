#!/usr/bin/env bash
# Fuzz campaigns over trailwarden-core (fuzz/fuzz_targets/): cargo-fuzz, libFuzzer, stable
# Rust (no sanitizer: the core is safe Rust; libFuzzer's coverage instrumentation is stable).
#
#   scripts/fuzz.sh [RUNS]        every target for RUNS executions each (default 10000000)
#   scripts/fuzz.sh RUNS TARGET   one target
#
# Seeds come from ../shared/corpus and config/ (scripts/fuzz_seeds.py). A crash stops with
# the input saved under fuzz/artifacts/<target>/; its fix gets a regression test. Prints one
# line per target with executions and time: docs/reliability.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10000000}"
targets="${2:-record log_file digest_chain key_layout config condition}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
python3 scripts/fuzz_seeds.py
(cd fuzz && cargo fuzz build -O -s none)
for t in $targets; do
  start=$(date +%s)
  out=$(cd fuzz && cargo fuzz run -O -s none "$t" "corpus/$t" -- \
          -runs="$runs" -max_len=65536 -rss_limit_mb=1024 -print_final_stats=1 2>&1) || {
    if echo "$out" | grep -q 'libFuzzer: run interrupted'; then
      done_runs=$(echo "$out" | sed -n 's/^stat::number_of_executed_units: *//p' | tail -1)
      echo "FUZZ $t: interrupted after ${done_runs:-?} executions, 0 crashes"
      exit 130
    fi
    echo "$out" | tail -40
    echo "FUZZ $t: CRASH (artifact in fuzz/artifacts/$t/)"
    exit 1
  }
  done_runs=$(echo "$out" | sed -n 's/^stat::number_of_executed_units: *//p' | tail -1)
  echo "FUZZ $t: ${done_runs:-?} executions, 0 crashes, $(( $(date +%s) - start ))s"
done
