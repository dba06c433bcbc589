#!/usr/bin/env bash
# Stops the aiosmtpd server that smtp-start.sh started from STATE_DIR (by PID: TERM, then KILL
# after SMTP_STOP_TIMEOUT seconds, default 10) and drops its lines from STATE_DIR/env.sh.
# Safe to call twice or after a failed start.
# Usage: scripts/servers/smtp-stop.sh STATE_DIR
set -euo pipefail

me=smtp-stop
say() { echo "$me: $*"; }
die() { echo "$me: error: $*" >&2; exit 1; }

if [ $# -ne 1 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR"; fi
if [ ! -d "$1" ]; then
  say "nothing to do: $1 does not exist"
  exit 0
fi
state=$(cd "$1" && pwd)
pidf=$state/pids/smtp.pid
limit=${SMTP_STOP_TIMEOUT:-10}

ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "aiosmtpd.handlers.Mailbox $state/maildir"; }
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
    say "aiosmtpd (pid $pid) did not stop within ${limit}s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  say "stopped aiosmtpd (pid $pid)"
else
  say "aiosmtpd is not running from $state"
fi
rm -f "$pidf"

if [ -f "$state/env.sh" ]; then
  (
    flock 9
    tmp=$(mktemp "$state/.env.XXXXXX")
    grep -vE '^export S3IMGFS_TEST_(SMTP_URL|MAILDIR)=' "$state/env.sh" >"$tmp" || true
    chmod 644 "$tmp"
    mv -f "$tmp" "$state/env.sh"
  ) 9>"$state/.env.lock"
fi
