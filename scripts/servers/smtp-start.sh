#!/usr/bin/env bash
# Starts an aiosmtpd SMTP server on 127.0.0.1:PORT that stores every mail it accepts in the
# Maildir STATE_DIR/maildir (recreated empty), and adds S3IMGFS_TEST_SMTP_URL and
# S3IMGFS_TEST_MAILDIR to STATE_DIR/env.sh.
# Usage: scripts/servers/smtp-start.sh STATE_DIR [PORT]   (default port 2525)
# Stop with scripts/servers/smtp-stop.sh STATE_DIR. Details: scripts/servers/README.md.
set -euo pipefail

me=smtp-start
say() { echo "$me: $*"; }
die() { echo "$me: error: $*" >&2; exit 1; }

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then die "usage: $0 STATE_DIR [PORT]"; fi
port=${2:-2525}
if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "bad port: $port"; fi
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

ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "aiosmtpd.handlers.Mailbox $state/maildir"; }
if [ -f "$pidf" ]; then
  pid=$(cat "$pidf" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
    die "aiosmtpd is already running from $state (pid $pid); stop it with smtp-stop.sh"
  fi
  rm -f "$pidf"
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
if port_open; then die "port 127.0.0.1:$port is already in use"; fi
mkdir -p "$state/pids"
# The Mailbox handler creates the Maildir itself; start each run with an empty one.
rm -rf "$maildir"

: >"$log"
"$py" -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$maildir" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidf"

deadline=$(($(date +%s) + 20))
until port_open; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidf"
    echo "$me: error: aiosmtpd exited during start; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "$me: error: aiosmtpd not listening on 127.0.0.1:$port after 20s; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    "$(dirname "${BASH_SOURCE[0]}")/smtp-stop.sh" "$state" >&2 || true
    exit 1
  fi
  sleep 0.1
done

# env.sh: replace only our own lines, under a lock (other start scripts share it).
(
  flock 9
  tmp=$(mktemp "$state/.env.XXXXXX")
  if [ -f "$state/env.sh" ]; then
    grep -vE '^export S3IMGFS_TEST_(SMTP_URL|MAILDIR)=' "$state/env.sh" >"$tmp" || true
  fi
  printf 'export %s=%q\n' S3IMGFS_TEST_SMTP_URL "smtp://127.0.0.1:$port" S3IMGFS_TEST_MAILDIR "$maildir" >>"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$state/env.sh"
) 9>"$state/.env.lock"

elapsed=$(awk -v a="$start_ts" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "aiosmtpd ready on smtp://127.0.0.1:$port in ${elapsed}s (pid $pid, Maildir $maildir)"
