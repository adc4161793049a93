#!/usr/bin/env bash
# Digest validation speed: `trailwarden validate-logs` against `aws cloudtrail validate-logs`
# on the same chain, served by trailsim (over its own moto), timed in one run. Target in
# ../shared/design.md: at least 20 times faster. Results go in docs/benchmarks.md.
#
#   scripts/bench-validate.sh
#
# Environment (defaults in brackets):
#   HOURS [48]            hourly digests in the chain (the clock is moved back, as in tests)
#   DELIVERIES [4]        log deliveries per hour (one log file each)
#   CALLS [5]             API calls recorded before each delivery
#   RUNS [3]              timed runs of each command (hyperfine if installed, else medians)
#   CONCURRENCY [64 16]    --concurrency values timed for trailwarden (the first one is
#                         the one compared with the CLI)
#   LATENCY_MS [0 30 100] milliseconds every request waits in trailsim before it is answered
#                         (POST /_trailsim/latency), one round of timings per value
#   S3_READ_CACHE [unset] 1: trailsim answers repeated S3 reads from memory, side by side as
#                         S3 does (--read-cache); moto alone answers one request at a time
#   SKIP_BUILD [unset]    use the binaries already in target/release
#   PORT [0]              trailsim's port (0: a free one)
#   HOLD [unset]          at the end, keep trailsim running and write the environment to
#                         target/bench-validate.env (for profiling by hand); Ctrl-C ends it
#
# Needs python3 (venv) and, for the timings, hyperfine (`apt-get install hyperfine`) or not.
set -euo pipefail
cd "$(dirname "$0")/.."

HOURS=${HOURS:-48}
DELIVERIES=${DELIVERIES:-4}
CALLS=${CALLS:-5}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-64 16}
LATENCY_MS=${LATENCY_MS:-0 30 100}
PORT=${PORT:-0}
# The versions the test bed pins (testbed/src/lib.rs).
MOTO_REQ="moto[server]==5.2.5"
AWSCLI_REQ="awscli==1.46.3"

# A virtual environment under target/ with one requirement, made like testbed::venv().
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
PY=target/pyenv/bin/python
AWS=$PWD/target/awscli/bin/aws

if [ -z "${SKIP_BUILD:-}" ]; then
  nice -n 19 cargo build --release --quiet -p trailsim -p trailwarden --bins
fi
TW=$PWD/target/release/trailwarden

work=$(mktemp -d)
sim=
cleanup() {
  set +e
  [ -n "$sim" ] && kill "$sim" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# trailsim starts moto itself; no timed deliveries or digests, only the ones asked for.
target/release/trailsim --listen "127.0.0.1:$PORT" --moto-server target/pyenv/bin/moto_server \
  --delivery-interval 1000000 --digest-interval 1000000 ${S3_READ_CACHE:+--read-cache} >"$work/trailsim.log" 2>&1 &
sim=$!
for _ in $(seq 150); do
  ENDPOINT=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/trailsim.log" | head -1 || true)
  [ -n "$ENDPOINT" ] && curl -sf "$ENDPOINT/_trailsim/health" >/dev/null 2>&1 && break
  sleep 0.2
done
[ -n "$ENDPOINT" ] || { cat "$work/trailsim.log"; exit 1; }
MOTO=$(grep -o 'upstream http://127.0.0.1:[0-9]*' "$work/trailsim.log" | head -1 | cut -d' ' -f2)
echo "trailsim at $ENDPOINT (moto at $MOTO)" >&2

# The chain: a fresh account (AssumeRole through trailsim, which learns the keys), a bucket,
# a trail with log file validation; then, hour by hour in the past, CALLS API calls and a
# delivery DELIVERIES times, and a digest. Prints shell assignments.
"$PY" - "$ENDPOINT" "$HOURS" "$DELIVERIES" "$CALLS" >"$work/chain.env" <<'PY'
import json, random, sys, urllib.request
import boto3
from botocore.config import Config

endpoint, hours, deliveries, calls = sys.argv[1], *map(int, sys.argv[2:5])

def control(path, body):
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req) as r:
        return json.load(r)

account = f"{random.randrange(400_000_000_000, 499_999_999_999):012d}"
sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="not-a-secret")
creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/bench",
                        RoleSessionName="bench-validate")["Credentials"]
session = boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"], region_name="us-east-1")
s3 = session.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
ct = session.client("cloudtrail", endpoint_url=endpoint)
ec2 = session.client("ec2", endpoint_url=endpoint)
bucket = f"trail-logs-{account}"
s3.create_bucket(Bucket=bucket)
trail = "bench"
arn = ct.create_trail(Name=trail, S3BucketName=bucket, IsMultiRegionTrail=False,
                      EnableLogFileValidation=True)["TrailARN"]
ct.start_logging(Name=arn)

def ours(keys):
    return [e["key"] for e in keys if f"/{account}/" in e.get("key", "")]

calls_made = [lambda: ct.describe_trails(), lambda: ct.get_trail_status(Name=arn),
              lambda: s3.list_objects_v2(Bucket=bucket, MaxKeys=1),
              lambda: ec2.describe_instances(), lambda: s3.get_bucket_location(Bucket=bucket)]
logs, digests = [], []
for h in range(hours):
    hour = -(hours - h) * 3600
    for d in range(deliveries):
        control("/_trailsim/clock", {"offset_seconds": hour + d * (3600 // deliveries) + 60})
        for c in range(calls):
            calls_made[c % len(calls_made)]()
        logs += ours(control("/_trailsim/deliver", {})["delivered"])
    control("/_trailsim/clock", {"offset_seconds": hour + 3590})
    digests += ours(control("/_trailsim/digest", {})["digests"])
control("/_trailsim/clock", {"offset_seconds": 0})
print(f"ACCOUNT={account}")
print(f"TRAIL={trail}")
print(f"TRAIL_ARN={arn}")
print(f"BUCKET={bucket}")
print(f"AWS_ACCESS_KEY_ID={creds['AccessKeyId']}")
print(f"AWS_SECRET_ACCESS_KEY={creds['SecretAccessKey']}")
print(f"AWS_SESSION_TOKEN={creds['SessionToken']}")
print(f"N_LOGS={len(logs)}")
print(f"N_DIGESTS={len(digests)}")
print(f"FIRST_LOG={logs[0]}")
PY
# shellcheck disable=SC1091
. "$work/chain.env"
echo "chain: account $ACCOUNT, trail $TRAIL, $N_DIGESTS digests, $N_LOGS log files" >&2

# Both clients see only this: the account's credentials, trailsim, path-style S3 for the CLI.
printf '[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n' >"$work/aws-config"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export AWS_ENDPOINT_URL=$ENDPOINT AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/none
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE RUST_LOG TRAILWARDEN_CONFIG
START=$(date -u -d "-$((HOURS + 2)) hours" +%Y-%m-%dT%H:%M:%SZ)
C0=${CONCURRENCY%% *}
ours_cmd() { echo "$TW validate-logs --trail $TRAIL --start-time $START --concurrency ${1:-$C0}"; }
cli_cmd="$AWS cloudtrail validate-logs --trail-arn $TRAIL_ARN --start-time $START --verbose"

# Verdicts first: both must find every digest and log file valid.
set +e
$(ours_cmd) --format json >"$work/ours.json" 2>"$work/ours.err"; ours_rc=$?
$cli_cmd >"$work/cli.out" 2>&1; cli_rc=$?
set -e
"$PY" - "$work/ours.json" "$work/cli.out" "$ours_rc" "$cli_rc" "$N_DIGESTS" "$N_LOGS" <<'PY'
import collections, json, re, sys
ours_path, cli_path, ours_rc, cli_rc, n_digests, n_logs = sys.argv[1:]
try:
    report = json.load(open(ours_path))
    classes = collections.Counter(i["class"] for c in report["chains"] for i in c["items"])
except Exception as e:  # noqa: BLE001
    classes = f"unreadable report ({e})"
cli = open(cli_path).read()
summary = re.findall(r"^(\d+/\d+ (?:digest|log) files? valid.*)$", cli, re.M)
print(f"trailwarden: exit {ours_rc}, items by class: {dict(classes) if isinstance(classes, collections.Counter) else classes}")
print(f"aws cli:     exit {cli_rc}, {'; '.join(summary) or 'no summary: ' + cli[-400:]}")
print(f"written:     {n_digests} digests, {n_logs} log files")
PY
[ "$ours_rc" = 0 ] && [ "$cli_rc" = 0 ] || {
  echo "a validator did not find the chain valid; see above" >&2
  head -c 2000 "$work/ours.err" "$work/cli.out" >&2
  exit 1
}

# The timings, in one run, for each latency: every request both clients make waits that long
# in trailsim before it is answered, as a network round trip to S3 would make it (0: loopback).
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
latency() {
  curl -sf -X POST -H 'Content-Type: application/json' -d "{\"milliseconds\": $1}" \
    "$ENDPOINT/_trailsim/latency" >/dev/null
}
cat >"$work/spans.py" <<'PY'
import datetime, re, sys
spans = {}
first = last = None
for line in sys.stdin:
    try:
        t = datetime.datetime.fromisoformat(line[:26])
    except ValueError:
        continue
    first, last = first or t, t
    m = re.search(r"\b(\w+)\.(\w+)\{rpc\.service", line)
    if m:
        a, b = spans.get(m.group(2), (t, t))
        spans[m.group(2)] = (min(a, t), max(b, t))
s = lambda t: (t - first).total_seconds()
print(f"  trailwarden --concurrency {sys.argv[1]}, with RUST_LOG=debug: {s(last):.2f} s in all; first to last log line of each call:")
for op, (a, b) in sorted(spans.items(), key=lambda kv: kv[1][0]):
    print(f"    {op:<18} {s(a):6.2f} .. {s(b):6.2f} s")
PY
for latency in $LATENCY_MS; do
  latency "$latency"
  echo "== latency added to every request: $latency ms"
  if command -v hyperfine >/dev/null; then
    # One warm-up run only for trailwarden: the CLI is the slow one.
    sweep=()
    for c in $CONCURRENCY; do sweep+=(-n "trailwarden --concurrency $c" "$(ours_cmd "$c")"); done
    hyperfine --style basic --runs "$RUNS" --export-json "$work/main-$latency.json" \
      -n "trailwarden --concurrency $C0" "$(ours_cmd)" \
      -n "aws cloudtrail validate-logs" "$cli_cmd" >&2
    hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/sweep-$latency.json" \
      "${sweep[@]}" >&2
    "$PY" - "$work/main-$latency.json" "$work/sweep-$latency.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours, cli = r[0], r[1]
for x in (ours, cli):
    print(f"  {x['command']}: median {x['median']:.3f} s (min {x['min']:.3f}, max {x['max']:.3f})")
print(f"  ratio (CLI / trailwarden, medians): {cli['median'] / ours['median']:.1f}x (target >= 20x)")
for x in json.load(open(sys.argv[2]))["results"]:
    print(f"  {x['command']}: median {x['median']:.3f} s; CLI / this {cli['median'] / x['median']:.1f}x")
PY
  else
    o=$(for _ in $(seq "$RUNS"); do timeit $(ours_cmd); done | median)
    c=$(for _ in $(seq "$RUNS"); do timeit $cli_cmd; done | median)
    echo "  trailwarden --concurrency $C0: median $o s"
    echo "  aws cloudtrail validate-logs: median $c s"
    echo "  ratio (CLI / trailwarden, medians): $(echo "scale=1; $c / $o" | bc)x (target >= 20x)"
    for k in $CONCURRENCY; do
      echo "  trailwarden --concurrency $k: median $(for _ in $(seq "$RUNS"); do timeit $(ours_cmd "$k"); done | median) s"
    done
  fi
  # Where trailwarden's time goes: the spans of its SDK calls, from its debug log.
  RUST_LOG=debug $(ours_cmd) 2>&1 >/dev/null | sed 's/\x1b\[[0-9;]*m//g' | "$PY" "$work/spans.py" "$C0"
done
latency 0

# Where the time goes on the server side: one GetObject of a log file, timed by curl, through
# trailsim and straight to moto (same credentials; moto does not check signatures).
auth="Authorization: AWS4-HMAC-SHA256 Credential=$AWS_ACCESS_KEY_ID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
per_request() {
  local url=$1 n=50 total=0 t
  for _ in $(seq $n); do
    t=$(curl -s -o /dev/null -w '%{time_total}' -H "$auth" -H "x-amz-security-token: $AWS_SESSION_TOKEN" "$url")
    total=$(echo "$total + $t" | bc)
  done
  echo "scale=2; 1000 * $total / $n" | bc
}
echo "GetObject of one log file, mean of 50 sequential curl requests:"
echo "  through trailsim: $(per_request "$ENDPOINT/$BUCKET/$FIRST_LOG") ms"
[ -n "$MOTO" ] && echo "  moto directly:    $(per_request "$MOTO/$BUCKET/$FIRST_LOG") ms"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(rustc --version); load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${HOLD:-}" ]; then
  { cat "$work/chain.env"; echo "ENDPOINT=$ENDPOINT"; echo "MOTO=$MOTO"; echo "START=$START"
    echo "AWS_CONFIG_FILE=$PWD/target/bench-validate.aws-config"; } >target/bench-validate.env
  cp "$work/aws-config" target/bench-validate.aws-config
  echo "holding trailsim at $ENDPOINT; environment in target/bench-validate.env" >&2
  wait "$sim"
fi
