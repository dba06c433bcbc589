# shellcheck shell=bash
# Shared by the start and stop scripts of scripts/servers (sourced, not run): messages, ports,
# PID files and STATE_DIR/env.sh.

# Every message starts with the script's name ("rgw-start: ...").
me=$(basename "$0" .sh)
say() { echo "$me: $*"; }
err() { echo "$me: error: $*" >&2; }
die() { err "$@"; exit 1; }

# log_error LOG MESSAGE: "ME: error: MESSAGE; last lines of LOG:" and those lines, on stderr.
log_error() {
  err "$2; last lines of $1:"
  tail -n 20 "$1" >&2
}

# need_tools TOOL...: dies unless every TOOL is on PATH.
need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/install-deps.sh)"
  done
}

# check_port PORT: dies unless PORT is a number from 1 to 65535.
check_port() {
  if ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then die "bad port: $1"; fi
}

# port_busy PORT: true if something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# elapsed_since START: seconds since START (a `date +%s.%N` value), with one decimal.
elapsed_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# exit_unless_dir DIR: for the stop scripts, which have nothing to do without their STATE_DIR.
exit_unless_dir() {
  if [ ! -d "$1" ]; then
    say "nothing to do: $1 does not exist"
    exit 0
  fi
}

# recorded_pid PIDFILE TEXT: prints the PID recorded in PIDFILE if that process still runs with
# TEXT in its command line; fails otherwise (a recycled PID does not count).
recorded_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" && echo "$pid"
}

# gone PID: true once /proc/PID is absent or a zombie (the cmdline empties before the exit
# completes).
gone() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  [ -z "$st" ] || [ "${st%% *}" = Z ]
}

# stop_pid NAME PID LIMIT: TERM, and KILL if PID is not gone after LIMIT seconds.
stop_pid() {
  local name=$1 pid=$2 limit=$3 deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(date +%s) + limit))
  while ! gone "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  if ! gone "$pid"; then
    say "$name (pid $pid) did not stop within ${limit}s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# stop_service STATE_DIR PIDFILE NAME TEXT LIMIT: for a service with one process: stops the
# process recorded in PIDFILE if it still runs with TEXT in its command line (as stop_pid), says
# what it did, and removes PIDFILE.
stop_service() {
  local state=$1 pidf=$2 name=$3 pid
  if pid=$(recorded_pid "$pidf" "$4"); then
    stop_pid "$name" "$pid" "$5"
    say "stopped $name (pid $pid)"
  else
    say "$name is not running from $state"
  fi
  rm -f "$pidf"
}

# env_update STATE_DIR VAR[=VALUE]...: rewrites STATE_DIR/env.sh under a lock (every service's
# start and stop scripts share the file): drops the export lines of each VAR, then appends
# "export VAR=VALUE" (shell-quoted) for each VAR=VALUE. A VAR without "=" is only dropped.
env_update() {
  local state=$1 envf=$1/env.sh tmp names=() kv
  shift
  for kv in "$@"; do names+=("${kv%%=*}"); done
  (
    flock 9
    tmp=$(mktemp "$state/.env.XXXXXX")
    if [ -f "$envf" ]; then
      grep -vE "^export ($(IFS='|'; echo "${names[*]}"))=" "$envf" >"$tmp" || true
    fi
    for kv in "$@"; do
      if [[ $kv == *=* ]]; then printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}" >>"$tmp"; fi
    done
    chmod 644 "$tmp"
    mv -f "$tmp" "$envf"
  ) 9>"$state/.env.lock"
}

# env_drop STATE_DIR VAR...: drops the export lines of each VAR from STATE_DIR/env.sh, if the
# file exists.
env_drop() {
  if [ -f "$1/env.sh" ]; then env_update "$@"; fi
}
