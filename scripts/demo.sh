#!/usr/bin/env bash
# The trailwarden demo: trailsim (our CloudTrail layer over moto) seeded like the lab, watched
# by the daemon.
#
#   scripts/demo.sh                 start trailsim on 127.0.0.1:4566, seed it, run the daemon
#   scripts/demo.sh stop-logging    (in another terminal) click "Stop Logging"
#   scripts/demo.sh start-logging | disable-key | shorten-lifecycle
#   scripts/demo.sh check           one-shot `trailwarden check` against the demo world
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
VENV=target/pyenv
ENDPOINT=http://127.0.0.1:4566
# moto accepts any credentials; the daemon reads them through the default chain.
export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

ensure_venv() {
  if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "moto[server]==$MOTO_VERSION" ]; then
    echo "installing moto[server]==$MOTO_VERSION into $VENV ..."
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    printf '%s' "moto[server]==$MOTO_VERSION" > "$VENV/.installed"
  fi
}

case "${1:-run}" in
  run)
    ensure_venv
    cargo build --quiet -p trailwarden -p trailsim
    mkdir -p target
    # trailsim starts the pinned moto itself; events, log files and digests come from it.
    target/debug/trailsim --listen 127.0.0.1:4566 --moto-server "$VENV/bin/moto_server" \
      --delivery-interval 5 --digest-interval 30 >target/demo-trailsim.log 2>&1 &
    sim=$!
    trap 'kill $sim 2>/dev/null || true' EXIT
    for _ in $(seq 100); do
      "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$ENDPOINT/_trailsim/health')" 2>/dev/null && break
      sleep 0.2
    done
    "$VENV/bin/python" scripts/demo_world.py seed --endpoint "$ENDPOINT"
    rm -rf target/demo-state
    cat <<MSG

trailwarden is starting against the demo world (trailsim at $ENDPOINT, over moto).
  metrics:       curl -s localhost:9847/metrics | grep -E 'trail_logging|policy_status.*fail'
  status:        curl -s localhost:9847/status
  Stop Logging:  scripts/demo.sh stop-logging     (trailwarden_trail_logging drops to 0 within 5 s)
  more:          scripts/demo.sh disable-key | shorten-lifecycle | start-logging
  one-shot:      scripts/demo.sh check
  trailsim:      curl -s -XPOST localhost:4566/_trailsim/deliver   (log files into the bucket now)
Ctrl-C stops the daemon and moto.

MSG
    target/debug/trailwarden run --config config/demo.yaml
    ;;
  check)
    cargo build --quiet --bin trailwarden
    target/debug/trailwarden check --config config/demo.yaml
    ;;
  stop-logging|start-logging|disable-key|shorten-lifecycle)
    ensure_venv
    "$VENV/bin/python" scripts/demo_world.py "$1" --endpoint "$ENDPOINT"
    ;;
  *)
    sed -n '2,8p' "$0"
    exit 2
    ;;
esac
