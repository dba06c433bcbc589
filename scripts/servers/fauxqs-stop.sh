#!/usr/bin/env bash
# Stops the fauxqs emulator that fauxqs-start.sh started from STATE_DIR (by PID: TERM, then KILL
# after FAUXQS_STOP_TIMEOUT seconds, default 10) and drops its line from STATE_DIR/env.sh.
# Safe to call twice or after a failed start.
# Usage: scripts/servers/fauxqs-stop.sh STATE_DIR
set -euo pipefail

me=fauxqs-stop
say() { echo "$me: $*"; }
die() { echo "$me: error: $*" >&2; exit 1; }

if [ $# -ne 1 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR"; fi
if [ ! -d "$1" ]; then
  say "nothing to do: $1 does not exist"
  exit 0
fi
state=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
server=$here/fauxqs-server.mjs
pidf=$state/pids/fauxqs.pid
limit=${FAUXQS_STOP_TIMEOUT:-10}

ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$server"; }
gone() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  [ -z "$st" ] || [ "${st%% *}" = Z ]
}

pid=$(cat "$pidf" 2>/dev/null || true)
if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(date +%s) + limit))
  while ! gone "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  if ! gone "$pid"; then
    say "fauxqs (pid $pid) did not stop within ${limit}s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  say "stopped fauxqs (pid $pid)"
else
  say "fauxqs is not running from $state"
fi
rm -f "$pidf"

if [ -f "$state/env.sh" ]; then
  (
    flock 9
    tmp=$(mktemp "$state/.env.XXXXXX")
    grep -vE '^export S3IMGFS_TEST_SNS_ENDPOINT=' "$state/env.sh" >"$tmp" || true
    chmod 644 "$tmp"
    mv -f "$tmp" "$state/env.sh"
  ) 9>"$state/.env.lock"
fi
