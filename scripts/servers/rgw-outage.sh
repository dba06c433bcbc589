#!/usr/bin/env bash
# An S3 outage on demand: stops only the radosgw process of the cluster rgw-start.sh started from
# STATE_DIR, and starts it again. The monitor and the memstore OSD keep running, so every bucket
# and object is still there when radosgw comes back.
# Usage: scripts/servers/rgw-outage.sh STATE_DIR stop|start|status
#   stop    TERM to radosgw (KILL after RGW_STOP_TIMEOUT seconds, default 15); returns once the
#           process is gone and its port refuses connections.
#   start   relaunches radosgw exactly as rgw-start.sh does (same ceph.conf, name, log, PID file,
#           in a session of its own) and returns once it answers on its port (at most
#           RGW_OUTAGE_START_TIMEOUT seconds, default 60).
#   status  prints "up" or "down"; exit 0 when up, 3 when down.
# Details: scripts/servers/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

if [ $# -ne 2 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR stop|start|status"; fi
[ -d "$1" ] || die "$1 does not exist (start the cluster with rgw-start.sh first)"
state=$(cd "$1" && pwd)
action=$2
conf=$state/ceph.conf
cdir=$state/ceph
pidf=$state/pids/radosgw.pid
rgw_name=client.rgw.s3imgfs # as in rgw-start.sh
[ -f "$conf" ] || die "no cluster in $state ($conf is missing)"
need_tools radosgw curl setsid

# The port from the "rgw frontends = beast endpoint=127.0.0.1:PORT ..." line rgw-start.sh wrote.
port=$(sed -n 's/^rgw frontends = .*endpoint=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$conf" | head -n 1)
[ -n "$port" ] || die "cannot find radosgw's port in $conf"

rgw_up() {
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/") || return 1
  [ "$code" = 200 ] || [ "$code" = 403 ]
}

case $action in
stop)
  start_ts=$(date +%s.%N)
  if ! pid=$(recorded_pid "$pidf" "$conf"); then
    die "radosgw is not running from $state"
  fi
  stop_pid radosgw "$pid" "${RGW_STOP_TIMEOUT:-15}"
  for _ in $(seq 50); do gone "$pid" && break; sleep 0.1; done
  gone "$pid" || die "radosgw (pid $pid) still present after KILL"
  for _ in $(seq 50); do port_busy "$port" || break; sleep 0.1; done
  ! port_busy "$port" || die "127.0.0.1:$port still accepts connections after radosgw stopped"
  say "radosgw (pid $pid) stopped in $(elapsed_since "$start_ts")s: 127.0.0.1:$port refuses connections"
  ;;
start)
  start_ts=$(date +%s.%N)
  if pid=$(recorded_pid "$pidf" "$conf"); then
    die "radosgw is already running from $state (pid $pid)"
  fi
  for daemon in ceph-mon.a ceph-osd.0; do
    recorded_pid "$state/pids/$daemon.pid" "$conf" >/dev/null ||
      die "$daemon is not running from $state: restart the whole cluster (rgw-stop.sh, rgw-start.sh)"
  done
  ! port_busy "$port" || die "port 127.0.0.1:$port is already in use"
  out=$cdir/log/radosgw.out
  # As rgw-start.sh's launch, but in a session of its own: a test that runs this script and is
  # then killed by its runner (process group) must not take radosgw with it.
  setsid radosgw -c "$conf" -n "$rgw_name" -f </dev/null >>"$out" 2>&1 &
  pid=$!
  echo "$pid" >"$pidf"
  deadline=$(($(date +%s) + ${RGW_OUTAGE_START_TIMEOUT:-60}))
  until rgw_up; do
    if gone "$pid"; then
      log_error "$out" "radosgw exited during start (log: $cdir/log/$rgw_name.log)"
      exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log_error "$cdir/log/$rgw_name.log" "radosgw not answering on 127.0.0.1:$port after ${RGW_OUTAGE_START_TIMEOUT:-60}s"
      exit 1
    fi
    sleep 0.1
  done
  say "radosgw (pid $pid) answers on http://127.0.0.1:$port again after $(elapsed_since "$start_ts")s"
  ;;
status)
  if recorded_pid "$pidf" "$conf" >/dev/null && rgw_up; then
    echo up
  else
    echo down
    exit 3
  fi
  ;;
*) die "unknown action '$action' (stop, start or status)" ;;
esac
