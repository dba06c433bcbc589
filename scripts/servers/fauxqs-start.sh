#!/usr/bin/env bash
# Starts the fauxqs SNS/SQS emulator on 127.0.0.1:PORT in the background and adds
# S3IMGFS_TEST_SNS_ENDPOINT to STATE_DIR/env.sh. Installs tests/node_modules (npm ci) if missing.
# Usage: scripts/servers/fauxqs-start.sh STATE_DIR [PORT]   (default port 4566)
# Stop with scripts/servers/fauxqs-stop.sh STATE_DIR. Details: scripts/servers/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR [PORT]"; fi
port=${2:-4566}
check_port "$port"
tests=$(cd "$here/../../tests" && pwd)
server=$here/fauxqs-server.mjs
need_tools node npm curl flock
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "fauxqs 1.9.2 needs Node.js >= 20, found $(node --version)"

mkdir -p "$1"
state=$(cd "$1" && pwd)
pidf=$state/pids/fauxqs.pid
log=$state/fauxqs.log
start_ts=$(date +%s.%N)

if pid=$(recorded_pid "$pidf" "$server"); then
  die "fauxqs is already running from $state (pid $pid); stop it with fauxqs-stop.sh"
fi
rm -f "$pidf"
if port_busy "$port"; then die "port 127.0.0.1:$port is already in use"; fi
mkdir -p "$state/pids"

# npm dependencies: only when missing; the lock on package.json serialises parallel starts.
if [ ! -f "$tests/node_modules/fauxqs/package.json" ]; then
  say "installing npm dependencies in $tests"
  if [ -f "$tests/package-lock.json" ]; then npm_cmd=(npm ci); else npm_cmd=(npm install); fi
  if ! (cd "$tests" && flock package.json sh -c '[ -f node_modules/fauxqs/package.json ] || exec "$@"' sh \
    "${npm_cmd[@]}" --no-audit --no-fund) >"$state/npm-install.log" 2>&1; then
    log_error "$state/npm-install.log" "${npm_cmd[*]} failed in $tests"
    exit 1
  fi
fi

: >"$log"
node "$server" "$port" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidf"

deadline=$(($(date +%s) + 30))
until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/health" || true)" = 200 ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidf"
    log_error "$log" "fauxqs exited during start"
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log_error "$log" "fauxqs not ready on 127.0.0.1:$port after 30s"
    "$here/fauxqs-stop.sh" "$state" >&2 || true
    exit 1
  fi
  sleep 0.1
done

# env.sh: replace only our own lines (other services' lines stay).
env_update "$state" "S3IMGFS_TEST_SNS_ENDPOINT=http://127.0.0.1:$port"

say "fauxqs ready on http://127.0.0.1:$port in $(elapsed_since "$start_ts")s (pid $pid, env: $state/env.sh)"
