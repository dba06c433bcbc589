#!/usr/bin/env bash
# Stops the haproxy fault proxy that faultproxy-start.sh started from STATE_DIR (by PID: TERM,
# then KILL after FAULTPROXY_STOP_TIMEOUT seconds, default 10) and drops its line from
# STATE_DIR/env.sh. Safe to call twice or after a failed start.
# Usage: scripts/servers/faultproxy-stop.sh STATE_DIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

if [ $# -ne 1 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR"; fi
exit_unless_dir "$1"
state=$(cd "$1" && pwd)
stop_service "$state" "$state/pids/faultproxy.pid" "fault proxy (haproxy)" \
  "$state/faultproxy/haproxy.cfg" "${FAULTPROXY_STOP_TIMEOUT:-10}"
env_drop "$state" S3IMGFS_TEST_FAULTPROXY_ENDPOINT
