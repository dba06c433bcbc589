#!/usr/bin/env bash
# Stops the Ceph daemons (radosgw, osd, mgr, mon) that rgw-start.sh started from STATE_DIR, by PID.
# Safe to call twice or after a failed start. --purge then removes STATE_DIR (unless another
# service recorded in STATE_DIR/pids is still running: then only the Ceph state is removed).
# Usage: scripts/servers/rgw-stop.sh [--purge] STATE_DIR
# Env: RGW_STOP_TIMEOUT (seconds to wait after TERM before KILL, default 15).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

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
exit_unless_dir "${args[0]}"
state=$(cd "${args[0]}" && pwd)
conf=$state/ceph.conf
pids=$state/pids
limit=${RGW_STOP_TIMEOUT:-15}

# One at a time, clients first: with the monitor gone the others hang in shutdown for seconds.
stopped=()
for name in radosgw ceph-osd.0 ceph-mgr.x ceph-mon.a; do
  f=$pids/$name.pid
  [ -f "$f" ] || continue
  # The recorded PID counts only if that process still runs with this STATE_DIR's ceph.conf.
  if pid=$(recorded_pid "$f" "$conf"); then
    stop_pid "$name" "$pid" "$limit"
    if ! gone "$pid"; then # killed: give it 5 s to go
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
env_drop "$state" S3IMGFS_TEST_ENDPOINT S3IMGFS_TEST_ACCESS_KEY S3IMGFS_TEST_SECRET_KEY \
  S3IMGFS_TEST_OTHER_ACCESS_KEY S3IMGFS_TEST_OTHER_SECRET_KEY S3IMGFS_TEST_REGION \
  S3IMGFS_TEST_RGW_STATE

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
