#!/usr/bin/env bash
# The tests, as `cargo test --workspace` runs them, but several test binaries at a time.
#
# Most integration tests wait on daemons polling moto and trailsim (seconds at a time), and
# each test binary starts its own moto and trailsim (testbed/), so binaries are independent:
# run one after the other they took 16 minutes of mostly idle wall time. Here they run
# TEST_JOBS at a time (default 4), the slowest first; then the fault matrix alone, since it
# runs six daemons at once against timing bounds that a loaded machine can break (under
# load it once saw a lab's first log file arrive after the daemon's first pass). Each
# binary's output goes to target/test-logs/<binary>.log and is printed when it fails. Doc
# tests run last.
#
#   scripts/test.sh                  # everything
#   TEST_JOBS=1 scripts/test.sh      # one binary at a time, as cargo test would
#
# Extra arguments go to `cargo test --no-run` (e.g. --locked).
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${TEST_JOBS:-4}
LOGS=target/test-logs
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log "$LOGS"/*.failed

# Build every test binary; list them with the package they belong to.
cargo test --workspace "$@" --no-run --message-format=json-render-diagnostics \
  > target/test-binaries.json
python3 - target/test-binaries.json > target/test-binaries.txt <<'EOF'
import json, os, sys
# The binaries known to run longest go first, so the long pole starts at once.
slow = ["awscli", "organization", "restarts", "steady", "prometheus",
        "shards", "events", "integrity", "bucket", "demo_daemon", "posture", "trailwarden_core"]
found = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    name = m["target"]["name"]
    found.append((slow.index(name) if name in slow else len(slow), name, m["executable"],
                  os.path.dirname(m["manifest_path"])))
for rank, name, exe, pkg in sorted(found):
    print(f"{name}\t{exe}\t{pkg}")
EOF

run_one() {
  local name=$1 exe=$2 pkg=$3 started=$SECONDS
  # As cargo runs it: from its package's directory, with its manifest directory set.
  if (cd "$pkg" && CARGO_MANIFEST_DIR=$pkg "$exe") > "$LOGS/$name.log" 2>&1; then
    printf 'ok     %-22s %4ss  %s\n' "$name" $((SECONDS - started)) \
      "$(grep -h '^test result' "$LOGS/$name.log" | tail -1)"
  else
    printf 'FAILED %-22s %4ss\n' "$name" $((SECONDS - started))
    touch "$LOGS/$name.failed"
  fi
}
export -f run_one
export LOGS

started=$SECONDS
ALONE="fault_matrix"
# shellcheck disable=SC2016
awk -F'\t' -v alone="$ALONE" '$1 != alone' target/test-binaries.txt | tr '\t' '\n' \
  | xargs -d '\n' -n 3 -P "$JOBS" bash -c 'run_one "$@"' _ || true
# shellcheck disable=SC2016
awk -F'\t' -v alone="$ALONE" '$1 == alone' target/test-binaries.txt | tr '\t' '\n' \
  | xargs -d '\n' -n 3 -P 1 bash -c 'run_one "$@"' _ || true
failed=$(find "$LOGS" -name '*.failed' | sort)
if [ -n "$failed" ]; then
  for f in $failed; do
    name=$(basename "$f" .failed)
    printf '\n===== %s =====\n' "$name"
    cat "$LOGS/$name.log"
  done
  printf '\ntests FAILED: %s\n' "$(for f in $failed; do basename "$f" .failed; done | tr '\n' ' ')"
  exit 1
fi
echo "all test binaries passed in $((SECONDS - started))s ($JOBS at a time)"

cargo test --workspace "$@" --doc
