#!/usr/bin/env bash
# Starts an aiosmtpd SMTP server on 127.0.0.1:PORT that stores every mail it accepts in the
# Maildir STATE_DIR/maildir (recreated empty), and adds S3IMGFS_TEST_SMTP_URL and
# S3IMGFS_TEST_MAILDIR to STATE_DIR/env.sh.
# Usage: scripts/servers/smtp-start.sh STATE_DIR [PORT]   (default port 2525)
# Stop with scripts/servers/smtp-stop.sh STATE_DIR. Details: scripts/servers/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
. "$here/lib.sh"

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR [PORT]"; fi
port=${2:-2525}
check_port "$port"
# Debian's python: another python3 may come first on PATH without Debian's modules.
py=/usr/bin/python3
[ -x "$py" ] || die "$py not found (run scripts/install-deps.sh)"
"$py" -c 'import aiosmtpd' 2>/dev/null || die "aiosmtpd missing for $py (package python3-aiosmtpd)"
command -v flock >/dev/null 2>&1 || die "flock not found"

mkdir -p "$1"
state=$(cd "$1" && pwd)
maildir=$state/maildir
pidf=$state/pids/smtp.pid
log=$state/smtp.log
start_ts=$(date +%s.%N)

if pid=$(recorded_pid "$pidf" "aiosmtpd.handlers.Mailbox $state/maildir"); then
  die "aiosmtpd is already running from $state (pid $pid); stop it with smtp-stop.sh"
fi
rm -f "$pidf"
if port_busy "$port"; then die "port 127.0.0.1:$port is already in use"; fi
mkdir -p "$state/pids"
# The Mailbox handler creates the Maildir itself; start each run with an empty one.
rm -rf "$maildir"

: >"$log"
"$py" -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$maildir" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidf"

deadline=$(($(date +%s) + 20))
until port_busy "$port"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidf"
    log_error "$log" "aiosmtpd exited during start"
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log_error "$log" "aiosmtpd not listening on 127.0.0.1:$port after 20s"
    "$here/smtp-stop.sh" "$state" >&2 || true
    exit 1
  fi
  sleep 0.1
done

# env.sh: replace only our own lines (other services' lines stay).
env_update "$state" "S3IMGFS_TEST_SMTP_URL=smtp://127.0.0.1:$port" "S3IMGFS_TEST_MAILDIR=$maildir"

say "aiosmtpd ready on smtp://127.0.0.1:$port in $(elapsed_since "$start_ts")s (pid $pid, Maildir $maildir)"
