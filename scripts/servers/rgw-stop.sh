#!/usr/bin/env bash
# Stops the Ceph daemons (radosgw, osd, mgr, mon) that rgw-start.sh started from STATE_DIR, by PID.
# Safe to call twice or after a failed start. --purge then removes STATE_DIR (unless another
# service recorded in STATE_DIR/pids is still running: then only the Ceph state is removed).
# Usage: scripts/servers/rgw-stop.sh [--purge] STATE_DIR
# Env: RGW_STOP_TIMEOUT (seconds to wait after TERM before KILL, default 15).
set -euo pipefail

me=rgw-stop
say() { echo "$me: $*"; }
die() { echo "$me: error: $*" >&2; exit 1; }

purge=0
args=()
for a in "$@"; do
  case $a in
    --purge) purge=1 ;;
    -*) die "unknown option $a" ;;
    *) args+=("$a") ;;
  esac
done
if [ "${#args[@]}" -ne 1 ] || [ -z "${args[0]}" ]; then die "usage: $0 [--purge] STATE_DIR"; fi
if [ ! -d "${args[0]}" ]; then
  say "nothing to do: ${args[0]} does not exist"
  exit 0
fi
state=$(cd "${args[0]}" && pwd)
conf=$state/ceph.conf
pids=$state/pids
limit=${RGW_STOP_TIMEOUT:-15}

# The recorded PID counts only if that process still runs with this STATE_DIR's ceph.conf
# (guards against a recycled PID).
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$conf"; }
# Gone once /proc/PID is absent or a zombie (the cmdline empties before the exit completes).
gone() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  [ -z "$st" ] || [ "${st%% *}" = Z ]
}

# One at a time, clients first: with the monitor gone the others hang in shutdown for seconds.
stopped=()
for name in radosgw ceph-osd.0 ceph-mgr.x ceph-mon.a; do
  f=$pids/$name.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(date +%s) + limit))
    while ! gone "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    if ! gone "$pid"; then
      say "$name (pid $pid) did not stop within ${limit}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do gone "$pid" && break; sleep 0.1; done
      gone "$pid" || say "warning: $name (pid $pid) still present after KILL"
    fi
    stopped+=("$name")
  fi
  rm -f "$f"
done
if [ "${#stopped[@]}" -gt 0 ]; then
  say "stopped ${stopped[*]}"
else
  say "no Ceph daemon running from $state"
fi

# Drop our lines from env.sh (other services' lines stay).
if [ -f "$state/env.sh" ]; then
  (
    flock 9
    tmp=$(mktemp "$state/.env.XXXXXX")
    grep -vE '^export S3IMGFS_TEST_(ENDPOINT|ACCESS_KEY|SECRET_KEY|OTHER_ACCESS_KEY|OTHER_SECRET_KEY|REGION)=' \
      "$state/env.sh" >"$tmp" || true
    chmod 644 "$tmp"
    mv -f "$tmp" "$state/env.sh"
  ) 9>"$state/.env.lock"
fi

if [ "$purge" = 1 ]; then
  others=()
  for f in "$pids"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && others+=("$(basename "$f" .pid)")
  done
  if [ "${#others[@]}" -eq 0 ]; then
    rm -rf "$state"
    say "removed $state"
  else
    rm -rf "$state/ceph" "$conf" "$state/ceph.keyring"
    say "removed the Ceph state only: ${others[*]} still running from $state"
  fi
fi
