#!/usr/bin/env bash
# Stops the webhook receiver that webhook-start.sh started from STATE_DIR (by PID: TERM, then
# KILL after WEBHOOK_STOP_TIMEOUT seconds, default 10) and drops its lines from
# STATE_DIR/env.sh. The stored requests stay in STATE_DIR/webhook. Safe to call twice or after
# a failed start.
# Usage: scripts/servers/webhook-stop.sh STATE_DIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

if [ $# -ne 1 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR"; fi
exit_unless_dir "$1"
state=$(cd "$1" && pwd)
stop_service "$state" "$state/pids/webhook.pid" "webhook receiver" \
  "webhook-receiver.py $state/webhook" "${WEBHOOK_STOP_TIMEOUT:-10}"
env_drop "$state" S3IMGFS_TEST_WEBHOOK_URL S3IMGFS_TEST_WEBHOOK_DIR S3IMGFS_TEST_WEBHOOK_SECRET
