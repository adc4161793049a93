#!/usr/bin/env bash
# Measures trailwarden's idle memory with 10 trails: a local moto with 10 logging trails (each
# with its own bucket and KMS key), the release binary on the default schedules, RSS read from
# /proc after the first evaluation and again a minute later. Results go in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/pyenv
PORT=${PORT:-4569}
[ "$(cat "$VENV/.installed" 2>/dev/null)" = "moto[server]==5.2.5" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -q 'moto[server]==5.2.5'; printf '%s' 'moto[server]==5.2.5' > "$VENV/.installed"; }
cargo build --release --quiet --bin trailwarden
work=$(mktemp -d)
TZ=UTC "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto $tw 2>/dev/null || true; rm -rf "$work"' EXIT
tw=
sleep 2
"$VENV/bin/python" - "$PORT" <<'PY'
import sys, boto3
kw = dict(endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
          aws_access_key_id="x", aws_secret_access_key="x")
s3, ct, kms = (boto3.client(n, **kw) for n in ("s3", "cloudtrail", "kms"))
for i in range(10):
    s3.create_bucket(Bucket=f"footprint-{i}")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    arn = ct.create_trail(Name=f"trail-{i}", S3BucketName=f"footprint-{i}",
                          IsMultiRegionTrail=True, KmsKeyId=key)["TrailARN"]
    ct.start_logging(Name=arn)
PY
cat >"$work/c.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $work/state
aws:
  regions: [us-east-1]
  endpoint_url: http://127.0.0.1:$PORT
policies: $PWD/config/policies.yaml
YAML
AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_EC2_METADATA_DISABLED=true \
  target/release/trailwarden run --config "$work/c.yaml" 2>"$work/tw.log" &
tw=$!
for _ in $(seq 100); do grep -q "first evaluation published" "$work/tw.log" && break; sleep 0.2; done
grep -q "first evaluation published" "$work/tw.log" || { cat "$work/tw.log"; exit 1; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$tw/status"; }
first=$(rss); sleep 60; later=$(rss)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$tw/status")
echo "trails=10 rss_after_first_evaluation_kb=$first rss_after_60s_kb=$later peak_kb=$hwm threads=$(ls /proc/$tw/task | wc -l)"
