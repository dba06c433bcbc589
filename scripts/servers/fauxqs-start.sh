#!/usr/bin/env bash
# Starts the fauxqs SNS/SQS emulator on 127.0.0.1:PORT in the background and adds
# S3IMGFS_TEST_SNS_ENDPOINT to STATE_DIR/env.sh. Installs tests/node_modules (npm ci) if missing.
# Usage: scripts/servers/fauxqs-start.sh STATE_DIR [PORT]   (default port 4566)
# Stop with scripts/servers/fauxqs-stop.sh STATE_DIR. Details: scripts/servers/README.md.
set -euo pipefail

me=fauxqs-start
say() { echo "$me: $*"; }
die() { echo "$me: error: $*" >&2; exit 1; }

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR [PORT]"; fi
port=${2:-4566}
if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "bad port: $port"; fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tests=$(cd "$here/../../tests" && pwd)
server=$here/fauxqs-server.mjs
for tool in node npm curl flock; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/install-deps.sh)"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "fauxqs 1.9.2 needs Node.js >= 20, found $(node --version)"

mkdir -p "$1"
state=$(cd "$1" && pwd)
pidf=$state/pids/fauxqs.pid
log=$state/fauxqs.log
start_ts=$(date +%s.%N)

ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$server"; }
if [ -f "$pidf" ]; then
  pid=$(cat "$pidf" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
    die "fauxqs is already running from $state (pid $pid); stop it with fauxqs-stop.sh"
  fi
  rm -f "$pidf"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port 127.0.0.1:$port is already in use"; fi
mkdir -p "$state/pids"

# npm dependencies: only when missing; the lock on package.json serialises parallel starts.
if [ ! -f "$tests/node_modules/fauxqs/package.json" ]; then
  say "installing npm dependencies in $tests"
  if [ -f "$tests/package-lock.json" ]; then npm_cmd=(npm ci); else npm_cmd=(npm install); fi
  if ! (cd "$tests" && flock package.json sh -c '[ -f node_modules/fauxqs/package.json ] || exec "$@"' sh \
    "${npm_cmd[@]}" --no-audit --no-fund) >"$state/npm-install.log" 2>&1; then
    echo "$me: error: ${npm_cmd[*]} failed in $tests; last lines of $state/npm-install.log:" >&2
    tail -n 20 "$state/npm-install.log" >&2
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
    echo "$me: error: fauxqs exited during start; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "$me: error: fauxqs not ready on 127.0.0.1:$port after 30s; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    "$here/fauxqs-stop.sh" "$state" >&2 || true
    exit 1
  fi
  sleep 0.1
done

# env.sh: replace only our own lines, under a lock (other start scripts share it).
(
  flock 9
  tmp=$(mktemp "$state/.env.XXXXXX")
  if [ -f "$state/env.sh" ]; then grep -vE '^export S3IMGFS_TEST_SNS_ENDPOINT=' "$state/env.sh" >"$tmp" || true; fi
  printf 'export %s=%q\n' S3IMGFS_TEST_SNS_ENDPOINT "http://127.0.0.1:$port" >>"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$state/env.sh"
) 9>"$state/.env.lock"

elapsed=$(awk -v a="$start_ts" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "fauxqs ready on http://127.0.0.1:$port in ${elapsed}s (pid $pid, env: $state/env.sh)"
