# Helpers of test_gateway.sh and test_durability.sh (sourced after harness.sh): mounting and
# unmounting s3imgfs, waiting for a file's state or for the queue to drain, the independent checks
# through the aws CLI and vipsheader, and the clean-up of buckets.
# shellcheck shell=bash disable=SC2154
#
# The sourcing script sets: fs (the s3imgfs binary, absolute), conf (its INI file), mnt (the
# mount point), log (s3imgfs's stdout/stderr), tmp (a private scratch folder), endpoint, src, dst
# (the buckets), gw_timeout (seconds a wait may take), AWS and PY (the aws CLI and python3).
#
# Every check prints what it expected and what it found with diag, and returns 1 on a mismatch.
# Functions whose output is data (aws_objects, aws_put_history) print their errors on stderr.

fs_pid=""   # the running s3imgfs process (started with -f, or found after it daemonized)
mount_extra=() # more s3imgfs arguments for the next mounts (e.g. -o gateway.sync_upload=true)
log_seen=0  # lines of $log already shown

awsc() { "$AWS" --endpoint-url "$endpoint" "$@"; }
md5() { md5sum "$1" | cut -d' ' -f1; }
now_ms() { date +%s%3N; }

# expect WHAT EXPECTED FOUND: equal, or says both.
expect() {
  [ "$2" = "$3" ] && return 0
  diag "$1: expected '$2', found '$3'"
  return 1
}

# The lines s3imgfs logged since the last call (at most 25), as diag lines.
log_tail() {
  [ -s "$log" ] || return 0
  local total
  total=$(wc -l <"$log")
  if [ "$total" -gt "$log_seen" ]; then
    diag "s3imgfs log (new lines, last 25):"
    tail -n +"$((log_seen + 1))" "$log" | tail -n 25 | sed 's/^/#   | /'
  fi
  log_seen=$total
  report_cores
}

# core_files DIR DEPTH: the core dumps (core, core.PID) in DIR, DEPTH levels down at most.
core_files() { find "$1" -maxdepth "$2" -type f -regex '.*/core\(\.[0-9]+\)?' 2>/dev/null; }

# The stacks in each core s3imgfs dumped since the last call (in a cache_dir under $tmp; gdb:
# the stack of the thread that crashed, then one line per thread), as diag lines; the
# core is removed after.
report_cores() {
  local core
  core_files "$tmp" 4 | while read -r core; do
    diag "s3imgfs dumped a core ($core); its stacks:"
    if command -v gdb >/dev/null; then
      gdb -batch -nx -ex 'bt 40' -ex 'info threads' "$fs" "$core" 2>&1 |
        grep -v -e '^\[New LWP' -e '^warning:' -e '^\[Thread debugging' -e '^Using host libthread' |
        head -n 120 | sed 's/^/#   | /' || true
    else
      diag "(no gdb to read it)"
    fi
    rm -f "$core"
  done || true
}

# signal_main_thread SIGNUM PID: the signal to the main thread of PID (tgkill), not to whichever
# thread the kernel picks for kill(1): the crash report then shows the main thread's stack.
signal_main_thread() {
  python3 - "$1" "$2" <<'PYEOF2'
import ctypes, os, platform, sys
number = {"x86_64": 234, "aarch64": 131}[platform.machine()]  # SYS_tgkill
sig, pid = int(sys.argv[1]), int(sys.argv[2])
if ctypes.CDLL(None, use_errno=True).syscall(number, pid, pid, sig) != 0:
    sys.exit("tgkill: " + os.strerror(ctypes.get_errno()))
PYEOF2
}

# ---- mounting -----------------------------------------------------------------------------

is_mounted() { grep -q '^fuse' <<<"$(findmnt -rn -M "$mnt" -o FSTYPE 2>/dev/null)"; }

# alive PID: that process runs, is not a zombie, and has $mnt as an argument (our s3imgfs, not
# a recycled PID; $mnt is a unique temporary path).
alive() {
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null &&
    grep -qxF -- "$mnt" <<<"$( { tr '\0' '\n' <"/proc/$1/cmdline"; } 2>/dev/null)"
}

# The PID of the s3imgfs process serving $mnt (after it daemonized), or nothing.
find_fs_pid() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    if [ "$p" = $$ ] || [ "$p" = "$BASHPID" ]; then continue; fi
    alive "$p" && { echo "$p"; return 0; }
  done
  return 0
}

# mount_fs [daemon]: mounts $mnt. By default runs s3imgfs -f in the background (PID and log
# known) and polls until the mount shows; with "daemon", runs it without -f, which must return
# only once the mount is ready.
mount_fs() {
  local debug=() deadline rc
  [ "${S3IMGFS_GWTEST_DEBUG:-0}" = 1 ] && debug=(-d)
  mkdir -p "$mnt"
  if is_mounted; then
    diag "mount_fs: $mnt is already mounted"
    return 1
  fi
  echo "---- mount ($(date +%T)) ----" >>"$log"
  if [ "${1:-}" = daemon ]; then
    rc=0
    "$fs" "${debug[@]}" "${mount_extra[@]}" -o "config=$conf" "$mnt" >>"$log" 2>&1 </dev/null || rc=$?
    if [ "$rc" != 0 ]; then
      diag "s3imgfs (daemon mode) exited $rc"
      log_tail
      return 1
    fi
    fs_pid=$(find_fs_pid)
    if ! is_mounted; then
      diag "s3imgfs returned (daemon mode) but $mnt is not mounted yet: it must daemonize only once the mount is ready"
      # Give it a chance, so that later cases still run.
      deadline=$(($(now_ms) + 20000))
      until is_mounted || [ "$(now_ms)" -gt "$deadline" ]; do sleep 0.1; done
      fs_pid=$(find_fs_pid)
      return 1
    fi
    [ -n "$fs_pid" ] || { diag "mounted, but no s3imgfs process names $mnt on its command line"; return 1; }
    return 0
  fi
  # Core dumps on: s3imgfs works in its cache_dir, where the kernel's default core_pattern puts
  # the core of a crash; log_tail prints its stacks.
  (
    ulimit -c unlimited 2>/dev/null || true
    exec "$fs" -f "${debug[@]}" "${mount_extra[@]}" -o "config=$conf" "$mnt"
  ) >>"$log" 2>&1 </dev/null &
  fs_pid=$!
  deadline=$(($(now_ms) + 20000))
  until is_mounted; do
    if ! kill -0 "$fs_pid" 2>/dev/null; then
      wait "$fs_pid" 2>/dev/null && rc=0 || rc=$?
      diag "s3imgfs exited ($rc) before the mount was ready"
      log_tail
      fs_pid=""
      return 1
    fi
    if [ "$(now_ms)" -gt "$deadline" ]; then
      diag "s3imgfs did not mount $mnt within 20 s"
      log_tail
      return 1
    fi
    sleep 0.1
  done
}

# unmount_fs: fusermount3 -u (retried while busy for 10 s), then waits up to 30 s for the
# process to exit.
unmount_fs() {
  local deadline
  if is_mounted; then
    deadline=$(($(now_ms) + 10000))
    until fusermount3 -u "$mnt" 2>"$tmp/fusermount.err"; do
      if [ "$(now_ms)" -gt "$deadline" ]; then
        diag "fusermount3 -u $mnt failed: $(cat "$tmp/fusermount.err")"
        return 1
      fi
      sleep 0.2
    done
  fi
  if [ -n "$fs_pid" ]; then
    deadline=$(($(now_ms) + 30000))
    while alive "$fs_pid"; do
      if [ "$(now_ms)" -gt "$deadline" ]; then
        diag "s3imgfs (pid $fs_pid) still runs 30 s after the unmount"
        log_tail
        return 1
      fi
      sleep 0.1
    done
    wait "$fs_pid" 2>/dev/null || true # reap it when it was our child
  fi
  fs_pid=""
}

# kill_fs: the last resort of the cleanup (lazy unmount, TERM, KILL).
kill_fs() {
  local pid
  if is_mounted; then
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
  fi
  for pid in "$fs_pid" $(find_fs_pid); do
    alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  done
  fs_pid=""
}

# ---- the state of a file (extended attributes) --------------------------------------------

xattr() { getfattr --only-values -n "user.s3imgfs.$2" -- "$1" 2>/dev/null; } # FILE NAME
status_of() { xattr "$1" status || true; }

# The state a file must end in: done for images (by extension), uploaded for the rest.
final_state() {
  case ${1,,} in
  *.jpg | *.jpeg | *.png | *.webp | *.tif | *.tiff | *.gif | *.avif | *.heic) echo 'done' ;;
  *) echo uploaded ;;
  esac
}

# wait_status FILE WANT [SECONDS]: polls user.s3imgfs.status every 0.1 s until it is WANT
# ("failed" matches any "failed: reason"). Gives up at once on a failure that was not wanted, or
# on "done"/"resizing" when "uploaded" (a non-image) was wanted.
wait_status() {
  local f=$1 want=$2 limit=${3:-$gw_timeout} deadline st seen=""
  deadline=$(($(now_ms) + limit * 1000))
  while :; do
    st=$(status_of "$f")
    case " $seen " in *" [$st] "*) ;; *) seen="$seen [$st]" ;; esac
    if [ "$st" = "$want" ] || { [ "$want" = failed ] && [[ $st == failed:* ]]; }; then
      return 0
    fi
    if { [[ $st == failed* ]] && [ "$want" != failed ]; } ||
      { [ "$st" = "done" ] && [ "$want" != "done" ]; }; then
      diag "$f: status '$st', expected '$want' (seen:$seen)"
      return 1
    fi
    if [ "$want" = uploaded ] && { [ "$st" = "done" ] || [ "$st" = resizing ]; }; then
      diag "$f: status '$st', expected '$want' (a non-image must not be resized; seen:$seen)"
      return 1
    fi
    if [ "$(now_ms)" -gt "$deadline" ]; then
      diag "$f: status still '$st' after ${limit}s, expected '$want' (seen:$seen)"
      return 1
    fi
    sleep 0.1
  done
}

# wait_final FILE...: each file reaches its final state (final_state), all within gw_timeout.
wait_final() {
  local f start left
  start=$(now_ms)
  for f in "$@"; do
    left=$((gw_timeout - ($(now_ms) - start) / 1000))
    [ "$left" -gt 0 ] || left=1
    wait_status "$f" "$(final_state "$f")" "$left" || return 1
  done
}

# wait_until DESCRIPTION COMMAND...: runs COMMAND until it succeeds (0.1 s between tries) for
# at most gw_timeout seconds; on a timeout shows what the last try said.
wait_until() {
  local what=$1 deadline
  shift
  deadline=$(($(now_ms) + gw_timeout * 1000))
  until "$@" >"$tmp/attempt.out" 2>&1; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
      diag "timed out after ${gw_timeout}s waiting for: $what"
      sed 's/^/#   > /' "$tmp/attempt.out"
      return 1
    fi
    sleep 0.1
  done
}

# ---- independent checks: the aws CLI --------------------------------------------------------

# aws_objects BUCKET [PREFIX]: "key<TAB>size" of every object, sorted (errors on stderr).
aws_objects() {
  awsc s3api list-objects-v2 --bucket "$1" --prefix "${2:-}" --output json \
    >"$tmp/aws-list.json" 2>"$tmp/aws.err" ||
    { echo "# aws list-objects-v2 s3://$1/${2:-} failed: $(head -c 400 "$tmp/aws.err")" >&2; return 1; }
  "$PY" - "$tmp/aws-list.json" <<'EOF' | LC_ALL=C sort
import json, sys
text = open(sys.argv[1]).read().strip()
for o in (json.loads(text) if text else {}).get("Contents", []) or []:
    print(f"{o['Key']}\t{o['Size']}")
EOF
}

# aws_put_history BUCKET [PREFIX]: "key<TAB>size" of every version ever written (the source
# bucket is versioned: one line per PUT or copy, deleted ones included), sorted.
aws_put_history() {
  awsc s3api list-object-versions --bucket "$1" --prefix "${2:-}" --output json \
    >"$tmp/aws-versions.json" 2>"$tmp/aws.err" ||
    { echo "# aws list-object-versions s3://$1/${2:-} failed: $(head -c 400 "$tmp/aws.err")" >&2; return 1; }
  "$PY" - "$tmp/aws-versions.json" <<'EOF' | LC_ALL=C sort
import json, sys
text = open(sys.argv[1]).read().strip()
for o in (json.loads(text) if text else {}).get("Versions", []) or []:
    print(f"{o['Key']}\t{o['Size']}")
EOF
}

# files_only: drops "key<TAB>size" lines of folder markers (keys ending in /); never fails.
files_only() { grep -v $'/\t' || true; }
# count_lines: the number of lines on stdin (0 for none).
count_lines() { grep -c . || true; }

# aws_keys BUCKET [PREFIX]: the keys only.
aws_keys() {
  local out
  out=$(aws_objects "$@") || return 1
  [ -z "$out" ] || cut -f1 <<<"$out"
}

# aws_get BUCKET KEY FILE: downloads the object; its Content-Type goes to FILE.type.
aws_get() {
  rm -f "$3" "$3.type"
  if ! awsc s3api get-object --bucket "$1" --key "$2" --output json "$3" >"$3.meta" 2>"$tmp/aws.err"; then
    # The aws CLI crashes on radosgw's error bodies: say whether the object exists at all.
    if aws_keys "$1" "$2" 2>/dev/null | grep -qxF -- "$2"; then
      diag "aws get-object s3://$1/$2 failed: $(head -c 300 "$tmp/aws.err" | tr '\n' ' ')"
    else
      diag "s3://$1/$2 does not exist (aws list-objects-v2)"
    fi
    return 1
  fi
  "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("ContentType",""))' \
    "$3.meta" >"$3.type"
}

has_key() { # BUCKET KEY
  aws_keys "$1" "$2" >"$tmp/keys" || return 1
  grep -qxF -- "$2" "$tmp/keys" || { diag "s3://$1/$2 does not exist (aws list-objects-v2)"; return 1; }
}
lacks_key() { # BUCKET KEY
  aws_keys "$1" "$2" >"$tmp/keys" || return 1
  ! grep -qxF -- "$2" "$tmp/keys" || { diag "s3://$1/$2 still exists (aws list-objects-v2)"; return 1; }
}
# has_keys BUCKET KEY...: all of them exist (one listing of the bucket).
has_keys() {
  local b=$1 k rc=0
  shift
  aws_keys "$b" >"$tmp/keys" || return 1
  for k in "$@"; do
    grep -qxF -- "$k" "$tmp/keys" || { diag "s3://$b/$k does not exist"; rc=1; }
  done
  return $rc
}
lacks_keys() {
  local b=$1 k rc=0
  shift
  aws_keys "$b" >"$tmp/keys" || return 1
  for k in "$@"; do
    ! grep -qxF -- "$k" "$tmp/keys" || { diag "s3://$b/$k still exists"; rc=1; }
  done
  return $rc
}

# same_object BUCKET KEY LOCALFILE: aws get-object gives the bytes of LOCALFILE.
same_object() {
  local got=$tmp/got.$RANDOM
  aws_get "$1" "$2" "$got" || return 1
  if ! cmp -s "$got" "$3"; then
    diag "s3://$1/$2 differs from $3: md5 $(md5 "$got") ($(stat -c %s "$got") bytes), expected $(md5 "$3") ($(stat -c %s "$3") bytes)"
    rm -f "$got"*
    return 1
  fi
  rm -f "$got"*
}

# rendition_is KEY WIDTH HEIGHT: the destination object KEY is a JPEG of WIDTHxHEIGHT served as
# image/jpeg (checked with vipsheader).
rendition_is() {
  local got=$tmp/rendition.jpg dims loader type
  aws_get "$dst" "$1" "$got" || return 1
  dims="$(vipsheader -f width "$got" 2>/dev/null)x$(vipsheader -f height "$got" 2>/dev/null)"
  loader=$(vipsheader -f vips-loader "$got" 2>/dev/null || true)
  type=$(cat "$got.type")
  expect "s3://$dst/$1 dimensions" "$2x$3" "$dims" &&
    expect "s3://$dst/$1 format (vips loader)" jpegload "$loader" &&
    expect "s3://$dst/$1 Content-Type" image/jpeg "$type"
}

# renditions_xattr_is FILE KEY...: user.s3imgfs.renditions lists exactly these keys.
renditions_xattr_is() {
  local f=$1 got want
  shift
  got=$(xattr "$f" renditions | grep -v '^$' | LC_ALL=C sort | tr '\n' ' ' || true)
  want=$(printf '%s\n' "$@" | LC_ALL=C sort | tr '\n' ' ')
  [ "$got" = "$want" ] && return 0
  diag "user.s3imgfs.renditions of $f:" "  expected: $want" "  found:    $got"
  return 1
}

# ---- test data --------------------------------------------------------------------------------

# make_photo OUT.jpg WIDTH HEIGHT: an sRGB noise "photo" (a JPEG of a few hundred KB to MB).
make_photo() {
  local v=$tmp/mk.$RANDOM
  vips gaussnoise "$v-n.v" "$2" "$3" --mean 128 --sigma 40 &&
    vips cast "$v-n.v" "$v-u.v" uchar &&
    vips colourspace "$v-u.v" "$v-s.v" srgb &&
    vips copy "$v-s.v" "$1[Q=85]"
  local rc=$?
  rm -f "$v"-*.v
  return $rc
}

# fails_with MESSAGE COMMAND...: the command fails and its stderr says MESSAGE.
fails_with() {
  local msg=$1 rc=0
  shift
  "$@" >"$tmp/cmd.out" 2>"$tmp/cmd.err" || rc=$?
  if [ "$rc" = 0 ]; then
    diag "'$*' succeeded, expected it to fail with '$msg'"
    return 1
  fi
  grep -qF -- "$msg" "$tmp/cmd.err" && return 0
  diag "'$*' failed ($rc) but does not say '$msg': $(head -c 300 "$tmp/cmd.err")"
  return 1
}

# ---- many files at once, the queue ------------------------------------------------------------

# same_tree BUCKET PREFIX LOCALDIR NAME...: every NAME (a path under LOCALDIR) is the object
# PREFIX/NAME, byte-identical: one `aws s3 cp --recursive` of the prefix, then md5 of both sides.
# Says how many differ or are missing (the first 10 by name).
same_tree() {
  local b=$1 prefix=$2 dir=$3 got=$tmp/tree.$RANDOM bad=0 name
  shift 3
  mkdir -p "$got"
  if ! awsc s3 cp --quiet --recursive "s3://$b/$prefix" "$got/" >"$tmp/aws-tree.err" 2>&1; then
    diag "aws s3 cp --recursive s3://$b/$prefix failed: $(head -c 400 "$tmp/aws-tree.err")"
    rm -rf "$got"
    return 1
  fi
  for name in "$@"; do
    if [ ! -f "$got/$name" ]; then
      bad=$((bad + 1))
      [ "$bad" -gt 10 ] || diag "s3://$b/$prefix$name is missing"
    elif [ "$(md5 "$got/$name")" != "$(md5 "$dir/$name")" ]; then
      bad=$((bad + 1))
      [ "$bad" -gt 10 ] || diag "s3://$b/$prefix$name: md5 $(md5 "$got/$name") ($(stat -c %s "$got/$name") bytes), expected $(md5 "$dir/$name") ($(stat -c %s "$dir/$name") bytes)"
    fi
  done
  rm -rf "$got"
  [ "$bad" = 0 ] && return 0
  diag "$bad of $# objects under s3://$b/$prefix missing or different"
  return 1
}

# gw_status FIELD...: the values of fields of MOUNTPOINT/.s3imgfs/status (files.pending,
# bytes_pending, retries, ...), on one line separated by spaces; fails if the file cannot be read.
gw_status() {
  "$PY" - "$mnt/.s3imgfs/status" "$@" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
out = []
for field in sys.argv[2:]:
    v = s
    for part in field.split("."):
        v = v[part]
    out.append(str(v))
print(" ".join(out))
EOF
}

# drained IMAGES: nothing waits for an upload or a resize (files.pending, uploading, resizing and
# bytes_pending are 0) and at least IMAGES files are done (images resized) or failed.
drained() {
  local p u r b d f
  read -r p u r b d f < <(gw_status files.pending files.uploading files.resizing bytes_pending \
    files.done files.failed) || return 1
  [ "$p" = 0 ] && [ "$u" = 0 ] && [ "$r" = 0 ] && [ "$b" = 0 ] && [ $((d + f)) -ge "$1" ]
}

# wait_drained SECONDS IMAGES: polls `drained IMAGES` every 0.5 s; on a timeout says what the
# status still shows.
wait_drained() {
  local deadline=$(($(now_ms) + $1 * 1000))
  until drained "$2"; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
      diag "the queue did not drain within $1 s: $(gw_status files bytes_pending retries 2>&1 | tr -d '\n')"
      return 1
    fi
    sleep 0.5
  done
}

# free_port: a TCP port on 127.0.0.1 nothing listens on now.
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the end of a run ---------------------------------------------------------------------------

# purge_bucket BUCKET: deletes every version and delete marker, then the bucket.
purge_bucket() {
  local b=$1
  for _ in $(seq 20); do
    awsc s3api list-object-versions --bucket "$b" --max-items 1000 --output json \
      >"$tmp/purge.json" 2>/dev/null || return 0 # no such bucket
    "$PY" - "$tmp/purge.json" "$tmp/purge-del.json" <<'EOF' || break
import json, sys
text = open(sys.argv[1]).read().strip()
d = json.loads(text) if text else {}
objs = [{"Key": o["Key"], "VersionId": o["VersionId"]}
        for o in (d.get("Versions") or []) + (d.get("DeleteMarkers") or [])]
if not objs:
    sys.exit(1)
json.dump({"Objects": objs[:1000], "Quiet": True}, open(sys.argv[2], "w"))
EOF
    awsc s3api delete-objects --bucket "$b" --delete "file://$tmp/purge-del.json" >/dev/null 2>&1 || true
  done
  awsc s3api delete-bucket --bucket "$b" >/dev/null 2>&1 || true
}

# crashes_caught_by_sanitizer: true (and says so) when $fs is an ASan or TSan build, whose own
# signal handler reports a crash instead of s3imgfs's: the crash cases do not apply to it.
crashes_caught_by_sanitizer() {
  grep -qE 'lib(a|t)san' <<<"$(ldd "$fs")" || return 1 # whole: grep -q may leave early (SIGPIPE)
  diag "sanitizer build: its handler reports crashes, not s3imgfs's"
}

# Under ASan/UBSan (the suite's second build) the gateway reports leaks and undefined behaviour
# in its log when it exits: any report fails the run.
no_sanitizer_report() {
  ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" && return 0
  diag "sanitizer report in $log:"
  grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -40 | sed 's/^/#   | /'
  return 1
}
