#!/usr/bin/env bash
# Starts the test webhook receiver (webhook-receiver.py, Python standard library only) on
# 127.0.0.1:PORT, storing every request it gets as a numbered JSON file in STATE_DIR/webhook
# (recreated empty), and adds S3IMGFS_TEST_WEBHOOK_URL, S3IMGFS_TEST_WEBHOOK_DIR and
# S3IMGFS_TEST_WEBHOOK_SECRET to STATE_DIR/env.sh. The receiver checks signatures with the
# secret in WEBHOOK_SECRET (default s3imgfs-test-secret), passed through the environment.
# Usage: scripts/servers/webhook-start.sh STATE_DIR [PORT]   (default port 8080)
# Stop with scripts/servers/webhook-stop.sh STATE_DIR. Details: scripts/servers/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR [PORT]"; fi
port=${2:-8080}
check_port "$port"
# Debian's python: another python3 may come first on PATH.
py=/usr/bin/python3
[ -x "$py" ] || die "$py not found (run scripts/install-deps.sh)"
command -v flock >/dev/null 2>&1 || die "flock not found"
secret=${WEBHOOK_SECRET:-s3imgfs-test-secret}

mkdir -p "$1"
state=$(cd "$1" && pwd)
dir=$state/webhook
pidf=$state/pids/webhook.pid
log=$state/webhook.log
start_ts=$(date +%s.%N)

if pid=$(recorded_pid "$pidf" "webhook-receiver.py $dir"); then
  die "the webhook receiver is already running from $state (pid $pid); stop it with webhook-stop.sh"
fi
rm -f "$pidf"
if port_busy "$port"; then die "port 127.0.0.1:$port is already in use"; fi
mkdir -p "$state/pids"
# Each run starts with an empty folder: the tests read the files it stores.
rm -rf "$dir"
mkdir -p "$dir"

: >"$log"
WEBHOOK_SECRET=$secret "$py" "$here/webhook-receiver.py" "$dir" "$port" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidf"

deadline=$(($(date +%s) + 20))
until port_busy "$port"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidf"
    log_error "$log" "the webhook receiver exited during start"
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log_error "$log" "the webhook receiver is not listening on 127.0.0.1:$port after 20s"
    "$here/webhook-stop.sh" "$state" >&2 || true
    exit 1
  fi
  sleep 0.1
done

# env.sh: replace only our own lines (other services' lines stay).
env_update "$state" "S3IMGFS_TEST_WEBHOOK_URL=http://127.0.0.1:$port/hook" \
  "S3IMGFS_TEST_WEBHOOK_DIR=$dir" "S3IMGFS_TEST_WEBHOOK_SECRET=$secret"

say "webhook receiver ready on http://127.0.0.1:$port/hook in $(elapsed_since "$start_ts")s (pid $pid, requests in $dir)"
