#!/usr/bin/env bash
# An organization at size (issue 14): trailsim as an organization of MEMBERS accounts, an
# organization trail delivering every member's folder into one bucket, every request
# answered after LATENCY_MS. Measured for one replica, then for SHARDS replicas (as many
# processes): the duration of a full trails poll, posture poll, event history round and
# bucket pass (each poller runs once at start, nothing scheduled after), the API calls each
# made against the README's formula, peak RSS, series exported; and that every account is
# watched by exactly one shard. Figures go in docs/benchmarks.md.
#
#   scripts/bench-organization.sh
#
# Environment (defaults in brackets):
#   MEMBERS [1000]      member accounts (the management account is watched too)
#   REGIONS [us-east-1 us-west-2 eu-west-1 ap-southeast-2]
#   LATENCY_MS [30]     milliseconds every AWS request waits in trailsim
#   CONCURRENCY [16]    accounts.concurrency
#   SHARDS [4]          replicas of the sharded run (0: skip it)
#   SKIP_BUILD [unset]  use the binaries already built
#   TRAILSIM, TW        the binaries [target/release/trailsim, target/release/trailwarden]
#   KEEP_WORK [unset]   keep the working folder (configs, logs, metrics) and print its path
#   HOLD [unset]        after the warm-up, print the endpoint and the working folder and keep
#                       trailsim serving until interrupted: to profile a daemon by hand
#
# Last, one replica reads the bucket fed by its S3 event notifications (an SQS queue the
# setup attached to the bucket): the log files announced and read, the time the
# notifications poller took, its calls, against the first replica's listing.
set -euo pipefail
cd "$(dirname "$0")/.."

MEMBERS=${MEMBERS:-1000}
REGIONS=${REGIONS:-us-east-1 us-west-2 eu-west-1 ap-southeast-2}
LATENCY_MS=${LATENCY_MS:-30}
CONCURRENCY=${CONCURRENCY:-16}
SHARDS=${SHARDS:-4}
MOTO_REQ="moto[server]==5.2.5"
AWSCLI_REQ="awscli==1.46.3"

ensure_venv() {
  local venv=target/$1 req=$2
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$req" ]; then
    echo "installing $req into $venv ..." >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$req"
    printf '%s' "$req" >"$venv/.installed"
  fi
}
ensure_venv pyenv "$MOTO_REQ"
ensure_venv awscli "$AWSCLI_REQ"
if [ -z "${SKIP_BUILD:-}" ]; then
  nice -n 19 cargo build --release --quiet -p trailsim -p trailwarden --bins
fi
TW=${TW:-$PWD/target/release/trailwarden}
TRAILSIM=${TRAILSIM:-target/release/trailsim}

work=$(mktemp -d)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$TRAILSIM" --listen 127.0.0.1:0 --moto-server target/pyenv/bin/moto_server \
  --delivery-interval 1000000 --digest-interval 1000000 --read-cache >"$work/trailsim.log" 2>&1 &
pids+=($!)
ENDPOINT=
for _ in $(seq 150); do
  ENDPOINT=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/trailsim.log" | head -1 || true)
  [ -n "$ENDPOINT" ] && curl -sf "$ENDPOINT/_trailsim/health" >/dev/null 2>&1 && break
  sleep 0.2
done
[ -n "$ENDPOINT" ] || { cat "$work/trailsim.log"; exit 1; }
control() { curl -sf -X POST -H 'content-type: application/json' -d "$2" "$ENDPOINT/_trailsim/$1" >/dev/null; }

EXTERNAL_ID=bench-$RANDOM$RANDOM
started=$SECONDS
target/pyenv/bin/python scripts/bench_org_setup.py "$ENDPOINT" "$MEMBERS" "$EXTERNAL_ID" "$work/org.json"
echo "setup: $((SECONDS - started))s"
# One delivery: a log file in each member's folder (their CreateRole), and the management's.
control deliver '{}'
control latency "{\"milliseconds\": $LATENCY_MS}"

cp config/policies.yaml "$work/"
# One detection no record matches, of a service whose hits ask for no re-collection: event
# history is read whole, and every poller runs exactly once (a CloudTrail hit would run
# the trails and posture polls again).
cat >"$work/detections.yaml" <<'EOF'
detections:
  - id: bench_role_deleted
    severity: low
    source: iam.amazonaws.com
    events: [DeleteRole]
EOF
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
AWS_ACCESS_KEY_ID=$(python3 -c "import json;print(json.load(open('$work/org.json'))['credentials']['AccessKeyId'])")
AWS_SECRET_ACCESS_KEY=$(python3 -c "import json;print(json.load(open('$work/org.json'))['credentials']['SecretAccessKey'])")
AWS_SESSION_TOKEN=$(python3 -c "import json;print(json.load(open('$work/org.json'))['credentials']['SessionToken'])")
regions_yaml=$(printf '%s, ' $REGIONS | sed 's/, $//')
org_bucket=$(python3 -c "import json;print(json.load(open('$work/org.json'))['bucket'])")
org_management=$(python3 -c "import json;print(json.load(open('$work/org.json'))['management'])")

# The configuration of a daemon whose pollers each run once, at start; name, port, and
# YAML added at the end (the queues, for the run fed by notifications).
write_config() {
  local name=$1 port=$2 extra=${3:-}
  cat >"$work/$name.yaml" <<EOF
listen: 127.0.0.1:$port
state_dir: state-$name
log_level: warn
aws:
  regions: [$regions_yaml]
  endpoint_url: $ENDPOINT
  operation_timeout: 60s
  max_attempts: 3
schedule:
  trails: "0 0 0 1 1 *"
  posture: "0 0 0 1 1 *"
  events: "0 0 0 1 1 *"
  bucket: "0 0 0 1 1 *"
accounts:
  organization:
    refresh: "0 0 0 1 1 *"
  role:
    arn: "arn:aws:iam::{account}:role/trailwarden-audit"
    external_id: $EXTERNAL_ID
  concurrency: $CONCURRENCY
  # A shard that judges the organization trail but does not watch its bucket's owner reads
  # the bucket with the owner's role only when named here (README, "Shards").
  bucket_owners: { $org_bucket: "$org_management" }
event_history:
  initial_window: 1h
policies: policies.yaml
detections: [detections.yaml]
$extra
EOF
}

# A daemon on a configuration written before; name, extra arguments. Prints its pid.
start_written() {
  local name=$1
  shift
  "$TW" run --config "$work/$name.yaml" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  echo $!
}

# A daemon on that configuration; name, port, extra arguments. Prints its pid.
start_daemon() {
  local name=$1 port=$2
  shift 2
  write_config "$name" "$port"
  "$TW" run --config "$work/$name.yaml" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  echo $!
}

metric() { curl -sf "http://127.0.0.1:$1/metrics"; }

# Waits until every poller of the daemon on $1 has run once.
wait_cycle() {
  local port=$1
  for _ in $(seq 3600); do
    local m
    m=$(metric "$port" || true)
    local done=0
    for p in accounts trails posture events bucket; do
      grep -q "^trailwarden_poll_duration_seconds_count{poller=\"$p\"} [1-9]" <<<"$m" && done=$((done + 1))
    done
    [ "$done" = 5 ] && return 0
    sleep 1
  done
  echo "daemon on $port did not finish a cycle" >&2
  return 1
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# One line per daemon: durations, calls by poller's operations, RSS, series.
report() {
  local name=$1 port=$2 pid=$3
  metric "$port" >"$work/$name.metrics"
  python3 - "$work/$name.metrics" "$name" "$(grep VmHWM /proc/"$pid"/status | awk '{print $2}')" <<'EOF'
import re, sys
text, name, hwm_kb = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3])
samples = []
for line in text.splitlines():
    m = re.match(r'^([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)$', line)
    if m:
        labels = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
def value(metric, **want):
    return sum(v for n, l, v in samples if n == metric and all(l.get(k) == x for k, x in want.items()))
dur = {p: value("trailwarden_poll_duration_seconds_sum", poller=p)
       for p in ["accounts", "trails", "posture", "events", "bucket"]}
calls = {}
for n, l, v in samples:
    if n == "trailwarden_aws_api_calls_total":
        calls[l["operation"]] = calls.get(l["operation"], 0) + v
series = len(samples)
watched = value("trailwarden_accounts", state="watched")
trails_ops = ["GetCallerIdentity", "ListTrails", "DescribeTrails", "GetTrailStatus", "GetEventSelectors"]
posture_ops = ["DescribeConfigurationRecorderStatus", "ListBuckets"]
print(f"| {name} | {watched:.0f} | {dur['trails']:.1f} | {dur['posture']:.1f} | {dur['events']:.1f} "
      f"| {dur['bucket']:.1f} | {sum(calls.get(o, 0) for o in trails_ops):.0f} "
      f"| {calls.get('AssumeRole', 0):.0f} | {sum(calls.get(o, 0) for o in posture_ops):.0f} "
      f"| {calls.get('LookupEvents', 0):.0f} | {calls.get('ListObjectsV2', 0):.0f} "
      f"| {calls.get('GetObject', 0):.0f} | {hwm_kb / 1024:.0f} | {series} |")
EOF
}

header() {
  echo "| run | accounts watched | trails poll (s) | posture poll (s) | event history round (s) | bucket pass (s) | trails poll calls | AssumeRole | posture calls (recorders, ListBuckets) | LookupEvents | ListObjectsV2 | GetObject | peak RSS (MiB) | series |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
}

nregions=$(wc -w <<<"$REGIONS")
accounts=$((MEMBERS + 1))
echo
echo "organization: $accounts accounts, $nregions regions, ${LATENCY_MS} ms per request, concurrency $CONCURRENCY"
echo "formula, trails poll: $accounts × (GetCallerIdentity + ListTrails + DescribeTrails) + 2 × $accounts trails = $((accounts * 5)) calls"

# --- Warm-up: one `check` over every account, untimed by the table. trailsim keeps moto's
# answers (--read-cache), so the runs after it meet answers served side by side, as AWS
# serves them, not moto's one request at a time; this run's own time is moto's.
write_config warm 0
started=$SECONDS
(cd "$work" && "$TW" check --config warm.yaml --format json >warm.json 2>warm.log) || true
echo "warm-up check: $((SECONDS - started)) s (moto answering one request at a time)"
if [ -n "${HOLD:-}" ]; then
  echo "held: endpoint $ENDPOINT, configurations in $work (warm.yaml; credentials in org.json)"
  wait "${pids[0]}"
fi
echo
header

# --- One replica.
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
pid=$(start_daemon one "$port")
wait_cycle "$port"
report "one replica" "$port" "$pid"
kill "$pid"

# --- Shards, all at once.
if [ "$SHARDS" -gt 0 ]; then
  ports=()
  spids=()
  for i in $(seq 0 $((SHARDS - 1))); do
    p=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    ports+=("$p")
    spids+=("$(start_daemon "shard-$i" "$p" --shard "$i" --total-shards "$SHARDS")")
  done
  for i in $(seq 0 $((SHARDS - 1))); do
    wait_cycle "${ports[$i]}"
  done
  for i in $(seq 0 $((SHARDS - 1))); do
    report "shard $i of $SHARDS" "${ports[$i]}" "${spids[$i]}"
    curl -sf "http://127.0.0.1:${ports[$i]}/status" >"$work/shard-$i.status"
  done
  python3 - "$work/org.json" "$work"/shard-*.status <<'EOF'
import json, sys
org = json.load(open(sys.argv[1]))
expected = set(org["members"]) | {org["management"]}
seen = {}
for path in sys.argv[2:]:
    for a in json.load(open(path))["accounts"]["watched"]:
        seen.setdefault(a["id"], []).append(path)
twice = {a: p for a, p in seen.items() if len(p) > 1}
missing = expected - set(seen)
counts = sorted(sum(1 for p in seen.values() if p[0] == path) for path in sys.argv[2:])
even = len(expected) / len(sys.argv[2:])
spread = max(abs(c - even) / even for c in counts)
print(f"\nshards: {len(seen)} of {len(expected)} accounts watched, {len(twice)} twice, "
      f"{len(missing)} by none; per shard {counts}, at most {spread:.1%} from even")
# For comparison, rendezvous hashing alone (plan/shards.rs's weight, without the load bound):
# how far this organization's split would have been from even.
import hashlib
def weight(key, shard):
    digest = hashlib.sha256(key.encode() + b"\0" + shard.to_bytes(4, "big")).digest()
    return int.from_bytes(digest[:8], "big")
total = len(sys.argv[2:])
alone = [0] * total
for a in expected:
    alone[max(range(total), key=lambda s: (weight(f"account:{a}", s), -s))] += 1
print(f"hashing alone would have split them {sorted(alone)}, "
      f"at most {max(abs(c - even) / even for c in alone):.1%} from even")
sys.exit(1 if twice or missing else 0)
EOF
  kill "${spids[@]}"
fi

# --- One replica fed by notifications: the queue still holds every announcement (nothing
# above read it). Notifications run every 2 s, so they read the log files while the first
# trail poll is still going; the listing's pass after it finds them read.
queue_url=$(python3 -c "import json;print(json.load(open('$work/org.json'))['queue_url'])")
port=$(free_port)
write_config notified "$port" "bucket:
  queues:
    - url: \"$queue_url\"
      bucket: $org_bucket"
sed -i 's/^  bucket: "0 0 0 1 1 \*"$/&\n  notifications: "*\/2 * * * * *"/' "$work/notified.yaml"
pid=$(start_written notified)
wait_cycle "$port"
listed=$(awk '/^trailwarden_aws_api_calls_total\{operation="GetObject"/ {s += $2} END {print s + 0}' "$work/one replica.metrics")
for _ in $(seq 600); do
  announced=$(metric "$port" | awk '/^trailwarden_log_files_announced_total / {print $2}')
  [ "${announced:-0}" -ge "$listed" ] 2>/dev/null && break
  sleep 1
done
sleep 3
metric "$port" >"$work/notified.metrics"
python3 - "$work/one replica.metrics" "$work/notified.metrics" "$(grep VmHWM /proc/"$pid"/status | awk '{print $2}')" <<'EOF'
import re, sys
def samples(path):
    out = []
    for line in open(path).read().splitlines():
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)$', line)
        if m:
            out.append((m.group(1), dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2) or "")), float(m.group(3))))
    return out
def value(s, metric, **want):
    return sum(v for n, l, v in s if n == metric and all(l.get(k) == x for k, x in want.items()))
listing, notified = samples(sys.argv[1]), samples(sys.argv[2])
calls = lambda s, op: value(s, "trailwarden_aws_api_calls_total", operation=op)
print()
print("| bucket pass fed by | log files read | time (s) | ListObjectsV2 | GetObject | ReceiveMessage | DeleteMessageBatch | messages deleted | found by the listing after | peak RSS (MiB) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
print(f"| listing (one replica above) | {calls(listing, 'GetObject'):.0f} "
      f"| {value(listing, 'trailwarden_poll_duration_seconds_sum', poller='bucket'):.1f} "
      f"| {calls(listing, 'ListObjectsV2'):.0f} | {calls(listing, 'GetObject'):.0f} | 0 | 0 | | | |")
print(f"| notifications | {value(notified, 'trailwarden_log_files_announced_total'):.0f} "
      f"| {value(notified, 'trailwarden_poll_duration_seconds_sum', poller='notifications'):.1f} "
      f"| {calls(notified, 'ListObjectsV2'):.0f} (the listing after) | {calls(notified, 'GetObject'):.0f} "
      f"| {calls(notified, 'ReceiveMessage'):.0f} | {calls(notified, 'DeleteMessageBatch'):.0f} "
      f"| {value(notified, 'trailwarden_queue_messages_total', outcome='deleted'):.0f} "
      f"| {value(notified, 'trailwarden_log_files_found_by_listing_total'):.0f} | {int(sys.argv[3]) / 1024:.0f} |")
EOF
kill "$pid"
