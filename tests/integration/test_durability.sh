#!/usr/bin/env bash
# shellcheck disable=SC2119 # mount_fs's optional argument ("daemon") is not used here
# Durability of the s3imgfs gateway under real faults, on a real mount and the local radosgw:
#   1. an S3 outage: radosgw is stopped for 60 s while 200 files are copied into the mount; the
#      writes must go on locally, the queue (MOUNTPOINT/.s3imgfs/status) must show the backlog
#      and drain once radosgw is back, and every file must then be in S3 byte-identical;
#   2. a faulty network: s3imgfs talks to radosgw through haproxy injecting 503 SlowDown, dropped
#      connections and latency (scripts/servers/faultproxy-start.sh) while 500 files are copied;
#   3. a full cache file system: the spool on a 64 MiB tmpfs, uploads held back, 1 MiB files
#      written until ENOSPC, then a write larger than the tmpfs.
# Every result is checked with independent clients talking straight to radosgw (the aws CLI,
# vipsheader), never through s3imgfs or the proxy.
#
# Usage: tests/integration/test_durability.sh PATH/TO/s3imgfs
# Env: S3IMGFS_TEST_ENDPOINT, S3IMGFS_TEST_ACCESS_KEY, S3IMGFS_TEST_SECRET_KEY,
#      S3IMGFS_TEST_REGION, S3IMGFS_TEST_RGW_STATE (from scripts/servers/rgw-start.sh's env.sh;
#      the outage case stops and restarts that radosgw with scripts/servers/rgw-outage.sh).
#      Without the endpoint or FUSE the test is skipped (exit 77), or fails when
#      S3IMGFS_REQUIRE_SERVERS=1; so does a case whose tool is missing (haproxy, a tmpfs mount).
#      S3IMGFS_DURTEST_OUTAGE (60): seconds radosgw stays down in case 1.
#      S3IMGFS_GWTEST_TIMEOUT (60): seconds a single wait may take.
#      S3IMGFS_GWTEST_DEBUG=1: mount with -d (FUSE debug output into the log).
#      S3IMGFS_GWTEST_KEEP=1: keep the buckets and the scratch folder (with s3imgfs.log).
# Prints "ok N - ..." / "not ok N - ..." per check with the measured figures as "#" lines, and
# "N passed, M failed"; exit 1 on a failure.
set -euo pipefail

test_name=dur
needed_tools=(vips vipsheader getfattr findmnt cmp dd md5sum curl)
# shellcheck source=tests/integration/gateway_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway_setup.sh"
servers=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts/servers" && pwd)
rgw_state=${S3IMGFS_TEST_RGW_STATE:-}
outage_s=${S3IMGFS_DURTEST_OUTAGE:-60}
t_start=$(date +%s)

rgw_down=0    # radosgw stopped by this test and not started again yet
proxy_state="" # STATE_DIR of a fault proxy this test started
tmpfs_dir=""   # a tmpfs this test mounted

set_secret() { sed -i "s/^secret_access_key = .*/secret_access_key = $1/" "$conf"; }

cleanup() {
  set +e
  cd /
  kill_fs
  # radosgw must be up again whatever happened: the tests after this one use it.
  if [ "$rgw_down" = 1 ]; then
    "$servers/rgw-outage.sh" "$rgw_state" start >&2 && rgw_down=0
  fi
  [ -z "$proxy_state" ] || "$servers/faultproxy-stop.sh" "$proxy_state" >/dev/null
  if [ -n "$tmpfs_dir" ] && mountpoint -q "$tmpfs_dir"; then
    umount "$tmpfs_dir" || echo "# could not unmount the tmpfs $tmpfs_dir" >&2
  fi
  remove_test_data
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_case FUNCTION: each case mounts what it needs (its own cache_dir and options) and leaves
# nothing mounted; on a failure, the new lines of s3imgfs's log are shown.
run_case() {
  log_seen=$(wc -l <"$log")
  local rc=0
  "$@" || rc=1
  [ "$rc" = 0 ] || log_tail
  if is_mounted || { [ -n "$fs_pid" ] && alive "$fs_pid"; }; then
    unmount_fs || { kill_fs; rc=1; }
  fi
  mount_extra=()
  return $rc
}

# A case checked by several lines: its part 1 runs the scenario and records the facts (below),
# its other parts only judge them, so that each requirement passes or fails on its own line.
declare -A fact=()
# judge NAME: the recorded verdict of NAME ("ok", or the diag lines of the failure).
judge() {
  local v=${fact[$1]:-the scenario did not get this far} line
  [ "$v" = ok ] && return 0
  while IFS= read -r line; do diag "$line"; done <<<"$v"
  return 1
}
# judge_and NAME COMMAND...: the verdict of NAME, and COMMAND (an independent check) run as well
# whenever the scenario got that far, so that one failure does not hide what the check finds.
judge_and() {
  local name=$1 rc=0
  shift
  [ -n "${fact[$name]:-}" ] || { diag "the scenario did not get this far"; return 1; }
  judge "$name" || rc=1
  "$@" || rc=1
  return $rc
}

# ---- buckets, configuration, data ----------------------------------------------------------

awsc s3api create-bucket --bucket "$src" >/dev/null
awsc s3api create-bucket --bucket "$dst" >/dev/null
awsc s3api put-bucket-versioning --bucket "$src" --versioning-configuration Status=Enabled

cat >"$conf" <<EOF
; written by test_durability.sh
[s3]
endpoint = $endpoint
region = $region
path_style = true
source_bucket = $src
destination_bucket = $dst
access_key_id = $access_key
secret_access_key = $secret_key
[resize]
sizes = thumbnail:64x64:cover, small:200x200
[gateway]
cache_dir = $tmp/cache
EOF
chmod 600 "$conf"

data=$tmp/data
mkdir -p "$data/photos" "$data/outage" "$data/faults" "$data/full"
# 20 small JPEGs (400x300 noise photos, each different), used by cases 1 and 2.
for i in $(seq -w 1 20); do make_photo "$data/photos/p$i.jpg" 400 300; done
# Case 1: 185 random files of 10 to 300 KiB and 10 of the small JPEGs, mixed, and 5 photos of
# 2000x1500 (1-2 MB) copied last before radosgw stops, so that the outage begins while they are
# being uploaded and resized.
outage_files=()
for i in $(seq -w 1 185); do
  head -c $(((10 + 10#$i * 37 % 291) * 1024)) /dev/urandom >"$data/outage/f$i.bin"
  outage_files+=("f$i.bin")
  if [ $((10#$i % 18)) = 0 ]; then
    j=$(printf '%02d' $((10#$i / 18)))
    cp "$data/photos/p$j.jpg" "$data/outage/p$j.jpg"
    outage_files+=("p$j.jpg")
  fi
  if [ "$i" = 033 ]; then
    for j in 1 2 3 4 5; do
      make_photo "$data/outage/b$j.jpg" 2000 1500
      outage_files+=("b$j.jpg")
    done
  fi
done
# Case 2: 480 small random files (1 to 20 KiB) and the 20 JPEGs.
fault_files=()
for i in $(seq -w 1 480); do
  head -c $(((1 + 10#$i * 7 % 20) * 1024)) /dev/urandom >"$data/faults/f$i.bin"
  fault_files+=("f$i.bin")
  if [ $((10#$i % 24)) = 0 ]; then
    j=$(printf '%02d' $((10#$i / 24)))
    cp "$data/photos/p$j.jpg" "$data/faults/p$j.jpg"
    fault_files+=("p$j.jpg")
  fi
done
# Case 3: 100 different 1 MiB files.
for i in $(seq -w 1 100); do head -c $((1024 * 1024)) /dev/urandom >"$data/full/m$i.bin"; done

# jpegs_of NAME...: the .jpg names among them.
jpegs_of() { printf '%s\n' "$@" | grep '\.jpg$' || true; }

# renditions_made PREFIX NAME...: thumbnail/ and small/ renditions of each JPEG among the names
# exist in the destination bucket (one listing), and one of them has the right dimensions.
renditions_made() {
  local prefix=$1 keys=() j first=""
  shift
  for j in $(jpegs_of "$@"); do
    keys+=("thumbnail/$prefix$j" "small/$prefix$j")
    [ -n "$first" ] || first=$j
  done
  [ "${#keys[@]}" -gt 0 ] || { diag "no JPEG among the files"; return 1; }
  has_keys "$dst" "${keys[@]}" || return 1
  rendition_is "small/$prefix$first" 200 150 && rendition_is "thumbnail/$prefix$first" 64 64
}

bytes_of() { # DIR NAME...: their total size
  local dir=$1
  shift
  [ $# -gt 0 ] || { echo 0; return; }
  (cd "$dir" && cat -- "$@" | wc -c)
}
fail_with() { diag "$1"; return 1; }

# ---- case 1: radosgw outage ------------------------------------------------------------------

o_desc=("outage: ${outage_s} s without radosgw during a copy of ${#outage_files[@]} files: every cp succeeds (writes stay local)"
  "outage: .s3imgfs/status shows the backlog while radosgw is down (pending/uploading > 0, bytes_pending > 0)"
  "outage: the backlog drains once radosgw is back; every copied file is in S3 byte-identical, JPEGs have renditions")

# The scenario; its verdicts go to fact[o_cp], fact[o_backlog], fact[o_drain].
t_outage() {
  mount_extra=(-o "gateway.cache_dir=$tmp/cache-outage")
  mount_fs || return 1
  mkdir "$mnt/out" || { diag "mkdir out (radosgw up) failed"; return 1; }
  local total=${#outage_files[@]} before=40 i name t_down t_up deadline slot
  local copied=() cp_fail=() max_p=0 max_b=0 st p u b first_fail=""
  for ((i = 0; i < before; i++)); do
    name=${outage_files[i]}
    if cp "$data/outage/$name" "$mnt/out/$name" 2>>"$tmp/cp-outage.err"; then
      copied+=("$name")
    else
      cp_fail+=("$name (radosgw up)")
    fi
  done
  "$servers/rgw-outage.sh" "$rgw_state" stop >"$tmp/outage.out" 2>&1 ||
    { diag "rgw-outage.sh stop failed: $(cat "$tmp/outage.out")"; return 1; }
  rgw_down=1
  t_down=$(now_ms)
  # The rest, spread over the outage but its last 10 s, and the queue looked at as it goes.
  slot=$(((outage_s - 10) * 1000 / (total - before)))
  for ((i = before; i < total; i++)); do
    name=${outage_files[i]}
    if cp "$data/outage/$name" "$mnt/out/$name" 2>>"$tmp/cp-outage.err"; then
      copied+=("$name")
    else
      cp_fail+=("$name (after $((($(now_ms) - t_down) / 1000)) s)")
      [ -n "$first_fail" ] || first_fail=$((($(now_ms) - t_down) / 1000))
    fi
    if st=$(gw_status files.pending files.uploading bytes_pending 2>/dev/null); then
      read -r p u b <<<"$st"
      [ $((p + u)) -le "$max_p" ] || max_p=$((p + u))
      [ "$b" -le "$max_b" ] || max_b=$b
    fi
    deadline=$((t_down + (i - before + 1) * slot))
    while [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
  done
  # The state at the end of the outage.
  st=$(gw_status files.pending files.uploading bytes_pending retries 2>&1) || st="(unreadable: $st)"
  while [ "$(now_ms)" -lt $((t_down + outage_s * 1000)) ]; do sleep 0.2; done
  if ! alive "$fs_pid" || ! is_mounted; then diag "s3imgfs died during the outage"; return 1; fi
  "$servers/rgw-outage.sh" "$rgw_state" start >"$tmp/outage.out" 2>&1 ||
    { diag "rgw-outage.sh start failed: $(cat "$tmp/outage.out")"; return 1; }
  rgw_down=0
  t_up=$(now_ms)
  diag "radosgw down for $(((t_up - t_down) / 1000)) s; at its end the status showed (pending uploading bytes_pending retries): $st"

  if [ "${#cp_fail[@]}" = 0 ]; then
    fact[o_cp]=ok
  else
    fact[o_cp]="${#cp_fail[@]} of $total cp failed (expected 0), the first $first_fail s into the outage: ${cp_fail[*]:0:5} ...
cp said: $(sort "$tmp/cp-outage.err" | uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' ';')"
  fi
  if [ "$max_p" -gt 0 ] && [ "$max_b" -gt 0 ]; then
    fact[o_backlog]=ok
    diag "largest backlog seen during the outage: $max_p files, $max_b bytes pending"
  else
    fact[o_backlog]="during the outage files.pending+uploading peaked at $max_p, bytes_pending at $max_b (expected both > 0)"
  fi

  local n_img drained_ms=-1 stats
  n_img=$(jpegs_of "${copied[@]}" | count_lines)
  if wait_drained 180 "$n_img"; then
    drained_ms=$(($(now_ms) - t_up))
  fi
  stats=$(gw_status uploads_done bytes_uploaded retries request_retries files.failed 2>&1) || true
  diag "files copied: ${#copied[@]} ($(bytes_of "$data/outage" "${copied[@]}") bytes, $n_img JPEGs)" \
    "time to drain after radosgw came back: $( [ "$drained_ms" -ge 0 ] && echo "$((drained_ms / 1000)).$((drained_ms % 1000 / 100)) s" || echo 'did not drain in 180 s')" \
    "status after the drain (uploads_done bytes_uploaded retries request_retries files.failed): $stats"
  local why=""
  [ "$drained_ms" -ge 0 ] || why="the queue did not drain within 180 s after radosgw came back"
  # waiting files are retried once a probe (every 5 s) finds S3 back, not at their next backoff
  # step (up to 64 s): docs/semantics.md
  [ "$drained_ms" -lt 0 ] || [ "$drained_ms" -le 20000 ] ||
    why="the queue took $((drained_ms / 1000)) s to drain after radosgw came back (expected at most 20 s)"
  if [ "$(cut -d' ' -f5 <<<"$stats")" != 0 ]; then
    why="${why:+$why; }files.failed is $(cut -d' ' -f5 <<<"$stats") after the drain (expected 0): $(gw_status last_failures 2>&1 | tr -d '\n' | head -c 400)"
  fi
  fact[o_drain]=${why:-ok}
  outage_copied=("${copied[@]}")
  return 0
}
outage_copied=()
t_outage_cp() { run_case t_outage || fact[o_cp]=${fact[o_cp]:-the scenario failed: see above}; judge o_cp; }
t_outage_backlog() { judge o_backlog; }
outage_data() {
  same_tree "$src" out/ "$data/outage" "${outage_copied[@]}" && renditions_made out/ "${outage_copied[@]}"
}
t_outage_drain() { judge_and o_drain outage_data; }

# ---- case 2: a faulty network ---------------------------------------------------------------

f_desc=("faults: cp of ${#fault_files[@]} files through haproxy injecting 503 SlowDown, dropped connections and 200 ms latency succeeds"
  "faults: all ${#fault_files[@]} files arrive byte-identical (aws CLI straight to radosgw), JPEGs have renditions")

t_faults() {
  local up_port port
  up_port=$(sed -n 's|^http://127\.0\.0\.1:\([0-9]*\)/*$|\1|p' <<<"$endpoint")
  [ -n "$up_port" ] || { fact[f_cp]="the endpoint $endpoint is not http://127.0.0.1:PORT"; return 1; }
  port=$(free_port)
  proxy_state=$tmp/faultproxy
  FAULTPROXY_DELAY_MS=200 FAULTPROXY_SLOWDOWN_PCT=20 FAULTPROXY_DROP_REQUEST_PCT=3 \
    FAULTPROXY_DROP_RESPONSE_PCT=2 "$servers/faultproxy-start.sh" "$proxy_state" "$port" "$up_port" \
    >"$tmp/faultproxy.out" 2>&1 || { fact[f_cp]="faultproxy-start.sh failed: $(tail -5 "$tmp/faultproxy.out")"; return 1; }
  diag "$(tail -1 "$tmp/faultproxy.out")"
  mount_extra=(-o "gateway.cache_dir=$tmp/cache-faults" -o "s3.endpoint=http://127.0.0.1:$port")
  if ! mount_fs; then
    fact[f_cp]="s3imgfs did not mount through the fault proxy"
    return 1
  fi
  # mkdir itself goes through the proxy: tried until it succeeds (the cp is what is measured).
  local tries=0
  until mkdir -p "$mnt/fp" 2>>"$tmp/mkdir-fp.err"; do
    tries=$((tries + 1))
    [ "$tries" -lt 10 ] || { fact[f_cp]="mkdir fp failed 10 times: $(tail -1 "$tmp/mkdir-fp.err")"; return 1; }
  done
  [ "$tries" = 0 ] || diag "mkdir fp through the proxy failed $tries time(s) first: $(tail -1 "$tmp/mkdir-fp.err")"
  local name copied=() cp_fail=() t0 t1 t2
  t0=$(now_ms)
  for name in "${fault_files[@]}"; do
    if cp "$data/faults/$name" "$mnt/fp/$name" 2>>"$tmp/cp-faults.err"; then
      copied+=("$name")
    else
      cp_fail+=("$name")
    fi
  done
  t1=$(now_ms)
  if [ "${#cp_fail[@]}" = 0 ]; then
    fact[f_cp]=ok
  else
    fact[f_cp]="${#cp_fail[@]} of ${#fault_files[@]} cp failed (expected 0): ${cp_fail[*]:0:5} ...
cp said: $(sort "$tmp/cp-faults.err" | uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' ';')"
  fi
  local n_img stats faults
  n_img=$(jpegs_of "${copied[@]}" | count_lines)
  wait_drained 240 "$n_img" || fact[f_data]="the queue did not drain within 240 s"
  t2=$(now_ms)
  stats=$(gw_status uploads_done bytes_uploaded retries request_retries files.failed 2>&1) || true
  faults=$(curl -s -m 5 "http://127.0.0.1:$port/.faultproxy/stats" || echo '(no answer)')
  diag "files copied: ${#copied[@]} ($(bytes_of "$data/faults" "${copied[@]}") bytes, $n_img JPEGs) in $(((t1 - t0) / 1000)) s; all uploaded and resized $(((t2 - t1) / 1000)) s later" \
    "status (uploads_done bytes_uploaded retries request_retries files.failed): $stats" \
    "haproxy's injected faults: $faults"
  if [ "$(cut -d' ' -f5 <<<"$stats")" != 0 ]; then
    fact[f_data]="${fact[f_data]:+${fact[f_data]}; }files.failed is $(cut -d' ' -f5 <<<"$stats") (expected 0): $(gw_status last_failures 2>&1 | tr -d '\n' | head -c 400)"
  fi
  fact[f_data]=${fact[f_data]:-ok}
  fault_copied=("${copied[@]}")
  return 0
}
fault_copied=()
t_faults_cp() {
  run_case t_faults || fact[f_cp]=${fact[f_cp]:-the scenario failed: see above}
  [ -z "$proxy_state" ] || { "$servers/faultproxy-stop.sh" "$proxy_state" >/dev/null 2>&1 && proxy_state=""; }
  judge f_cp
}
faults_data() {
  [ "${#fault_copied[@]}" = "${#fault_files[@]}" ] ||
    diag "checking the ${#fault_copied[@]} files whose cp succeeded"
  local puts
  # A PUT whose answer was dropped is sent again: more versions than files is allowed.
  puts=$(aws_put_history "$src" fp/ | files_only | count_lines) &&
    diag "versions written under fp/: $puts for ${#fault_copied[@]} files"
  same_tree "$src" fp/ "$data/faults" "${fault_copied[@]}" && renditions_made fp/ "${fault_copied[@]}"
}
t_faults_data() { judge_and f_data faults_data; }

# ---- case 3: the cache file system is full --------------------------------------------------

c_desc=("cache full: 1 MiB files into a spool on a 64 MiB tmpfs (uploads held back) until one fails with ENOSPC; s3imgfs stays up, what was written reads back intact"
  "cache full: once uploads can drain (right key, remount), new writes succeed and every file closed without error is in S3 byte-identical"
  "cache full: a 100 MiB dd fails with ENOSPC and leaves nothing behind in the spool; later writes work")

spool_data() { find "$tmpfs_dir/cache/spool" -name '*.data' 2>/dev/null | count_lines; }
tmpfs_used_kib() { df -k --output=used "$tmpfs_dir" | tail -1 | tr -d ' '; }
full_ok=()

# write_after_drain FROM TO: cp, tried for up to 5 s: the gateway measures its spool once a
# second, so right after a drain it may still refuse a write. Says how long it refused.
write_after_drain() {
  local t0 refusals=0 said=""
  t0=$(now_ms)
  until cp "$1" "$2" 2>"$tmp/full.err"; do
    refusals=$((refusals + 1))
    said=$(cat "$tmp/full.err")
    [ "$(now_ms)" -le $((t0 + 5000)) ] || return 1
    sleep 0.1
  done
  [ "$refusals" = 0 ] ||
    diag "the write of ${2##*/} right after a drain was refused $refusals time(s) for $(($(now_ms) - t0)) ms: $said"
}

t_full() {
  tmpfs_dir=$tmp/tmpfs
  mkdir -p "$tmpfs_dir"
  if ! mount -t tmpfs -o size=64m,mode=0700 tmpfs "$tmpfs_dir" 2>"$tmp/tmpfs.err"; then
    tmpfs_dir=""
    fact[c_fill]="cannot mount a 64 MiB tmpfs: $(cat "$tmp/tmpfs.err")"
    return 1
  fi
  mount_extra=(-o "gateway.cache_dir=$tmpfs_dir/cache")
  mount_fs || return 1
  mkdir "$mnt/full" || return 1
  # From here every upload fails (a wrong key: the gateway rereads the file when it changes).
  set_secret "wrong-$RANDOM-secret"
  local i name err="" refused=""
  for i in $(seq -w 1 100); do
    name=m$i.bin
    if cp "$data/full/$name" "$mnt/full/$name" 2>"$tmp/full.err"; then
      full_ok+=("$name")
    else
      err=$(cat "$tmp/full.err")
      refused=$name
      break
    fi
  done
  diag "written before the refusal: ${#full_ok[@]} files of 1 MiB; refused: ${refused:-none}: $err" \
    "tmpfs used: $(tmpfs_used_kib) KiB; spool data files: $(spool_data)"
  local why=""
  if [ -z "$refused" ]; then
    why="100 MiB written into a 64 MiB tmpfs without an error"
  elif ! grep -q "No space left on device" <<<"$err"; then
    why="the refused write said '$err', expected 'No space left on device'"
  fi
  if ! alive "$fs_pid" || ! is_mounted; then
    why="${why:+$why; }s3imgfs is no longer running or mounted after the refusal"
    fact[c_fill]=$why
    return 1
  fi
  # Read back through the mount (from the spool: nothing is in S3).
  local bad=0
  for name in "${full_ok[@]}"; do
    cmp -s "$mnt/full/$name" "$data/full/$name" || { bad=$((bad + 1)); [ "$bad" -gt 5 ] || why="${why:+$why; }$name reads back different"; }
  done
  [ "$bad" = 0 ] || why="$why ($bad files differ)"
  gw_status files.failed >/dev/null 2>&1 || why="${why:+$why; }the status file cannot be read"
  fact[c_fill]=${why:-ok}
  [ -z "$refused" ] || [ ! -e "$mnt/full/$refused" ] ||
    diag "the refused $refused shows in the mount ($(stat -c %s "$mnt/full/$refused") bytes)"

  # Free space: the right key again. Failed uploads are retried at the next mount only
  # (docs/semantics.md); look whether anything drains without one.
  set_secret "$secret_key"
  local st0 st1
  st0=$(gw_status files.failed files.pending bytes_pending 2>&1)
  sleep 5
  st1=$(gw_status files.failed files.pending bytes_pending 2>&1)
  diag "right key again, no remount: (failed pending bytes_pending) $st0 -> 5 s later $st1"
  # The refused file is a partial one (cp left it): removed as a user would.
  if [ -n "$refused" ] && [ -e "$mnt/full/$refused" ]; then
    rm -f "$mnt/full/$refused" || diag "rm of the refused $refused failed"
  fi
  why=""
  unmount_fs || { fact[c_drain]="unmount failed"; return 1; }
  if ! mount_fs; then
    fact[c_drain]="s3imgfs does not mount again on the full spool (tmpfs used $(tmpfs_used_kib) KiB)"
    return 1
  fi
  wait_drained 120 0 || why="the spool did not drain after the remount"
  diag "after the remount and the drain: tmpfs used $(tmpfs_used_kib) KiB, spool data files $(spool_data);" \
    "status (uploads_done retries files.failed): $(gw_status uploads_done retries files.failed 2>&1)"
  local extra=()
  if write_after_drain "$data/full/m091.bin" "$mnt/full/new1.bin"; then
    extra+=(new1.bin)
    for i in 2 3; do
      if cp "$data/full/m09$i.bin" "$mnt/full/new$i.bin" 2>"$tmp/full.err"; then
        extra+=("new$i.bin")
      else
        why="${why:+$why; }a new write after the drain failed: $(cat "$tmp/full.err")"
        break
      fi
    done
  else
    why="${why:+$why; }writes still refused 5 s after the drain: $(cat "$tmp/full.err")"
  fi
  for i in "${extra[@]}"; do cp "$data/full/m09${i:3:1}.bin" "$data/full/$i"; done
  wait_drained 60 0 || why="${why:+$why; }the new files did not drain"
  full_ok+=("${extra[@]}")
  fact[c_drain]=${why:-ok}

  # One write larger than the whole tmpfs.
  local used0 used1 data0 data1 rc=0 dd_err st
  used0=$(tmpfs_used_kib)
  data0=$(spool_data)
  dd if=/dev/urandom of="$mnt/full/big.bin" bs=1M count=100 2>"$tmp/dd.err" || rc=$?
  dd_err=$(grep -v 'records\|copied' "$tmp/dd.err" | head -3 | tr '\n' ' ')
  local dd_bytes
  dd_bytes=$(sed -n 's/^\([0-9]*\) bytes.*copied.*/\1/p' "$tmp/dd.err")
  why=""
  if [ "$rc" = 0 ]; then
    why="dd of 100 MiB into the mount succeeded (64 MiB tmpfs)"
  elif ! grep -q "No space left on device" <<<"$dd_err"; then
    why="dd failed ($rc) but does not say 'No space left on device': $dd_err"
  elif [ "${dd_bytes:-0}" -lt $((16 << 20)) ]; then
    why="dd was refused after ${dd_bytes:-0} bytes, with the spool empty and ${used0} KiB of 64 MiB used: $dd_err"
  fi
  if ! alive "$fs_pid" || ! is_mounted; then
    fact[c_big]="${why:+$why; }s3imgfs died or was unmounted by the dd"
    return 1
  fi
  st=$(status_of "$mnt/full/big.bin")
  diag "dd: rc $rc, '$dd_err'; big.bin in the mount: $(stat -c %s "$mnt/full/big.bin" 2>&1) bytes, status '$st';" \
    "tmpfs used $(tmpfs_used_kib) KiB (before: $used0), spool data files $(spool_data) (before: $data0)"
  # Give the gateway time to do whatever it does with the half-written file (drop or upload).
  wait_drained 120 0 || why="${why:+$why; }the queue did not drain after the dd"
  # The failed version's spool file goes with the last reference to it: a part of it still
  # being sent (parts of a big file go up while it is written) holds one until it is done, and
  # the queue's drain does not wait for that. Seen once under ASan (the check came within about
  # 1.5 s of the dd's end, around the upload's abort); allowed 10 s.
  local spool_deadline=$(($(now_ms) + 10000))
  while [ "$(spool_data)" -gt "$data0" ] && [ "$(now_ms)" -le "$spool_deadline" ]; do sleep 0.2; done
  used1=$(tmpfs_used_kib)
  data1=$(spool_data)
  diag "after the drain: big.bin in the mount: $(stat -c %s "$mnt/full/big.bin" 2>&1) bytes;" \
    "in S3: $(aws_objects "$src" full/big.bin | cut -f2 | tr '\n' ' ') bytes; tmpfs used $used1 KiB, spool data files $data1"
  # a version whose write failed is not uploaded (it would replace a good object with a cut one)
  [ -z "$(aws_objects "$src" full/big.bin)" ] || why="${why:+$why; }the cut big.bin was uploaded"
  "$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(not any(f["key"] == "full/big.bin" and f["reason"].startswith("a write failed")
                 for f in s["last_failures"]))' "$mnt/.s3imgfs/status" ||
    why="${why:+$why; }the status file's last_failures do not list full/big.bin's failed write"
  [ "$data1" -le "$data0" ] || why="${why:+$why; }$data1 spool data files remain after the failed dd (before: $data0)"
  [ "$used1" -le $((used0 + 1024)) ] || why="${why:+$why; }the tmpfs holds $used1 KiB after the failed dd (before: $used0)"
  rm -f "$mnt/full/big.bin" 2>/dev/null || true
  if write_after_drain "$data/full/m099.bin" "$mnt/full/after.bin"; then
    cp "$data/full/m099.bin" "$data/full/after.bin"
    wait_status "$mnt/full/after.bin" uploaded 60 || why="${why:+$why; }after.bin was not uploaded"
    full_ok+=(after.bin)
  else
    why="${why:+$why; }a 1 MiB write was still refused 5 s after the drain that followed the failed dd: $(cat "$tmp/full.err")"
  fi
  fact[c_big]=${why:-ok}
  return 0
}
t_full_fill() {
  run_case t_full || fact[c_fill]=${fact[c_fill]:-the scenario failed: see above}
  set_secret "$secret_key"
  if [ -n "$tmpfs_dir" ] && mountpoint -q "$tmpfs_dir"; then
    umount "$tmpfs_dir" && tmpfs_dir=""
  fi
  judge c_fill
}
full_data() { same_tree "$src" full/ "$data/full" "${full_ok[@]}"; }
t_full_drain() { judge_and c_drain full_data; }
t_full_big() { judge c_big; }

# ---- run ----------------------------------------------------------------------------------------

if [ -n "$rgw_state" ] && [ -x "$servers/rgw-outage.sh" ] &&
  "$servers/rgw-outage.sh" "$rgw_state" status >/dev/null 2>&1; then
  case_ "${o_desc[0]}" t_outage_cp
  case_ "${o_desc[1]}" t_outage_backlog
  case_ "${o_desc[2]}" t_outage_drain
elif [ "${S3IMGFS_REQUIRE_SERVERS:-0}" = 1 ]; then
  why="S3IMGFS_TEST_RGW_STATE does not name a running cluster of rgw-start.sh ('$rgw_state')"
  for d in "${o_desc[@]}"; do case_ "$d" fail_with "$why"; done
else
  for d in "${o_desc[@]}"; do skip_case "$d" "S3IMGFS_TEST_RGW_STATE is not set (radosgw not from rgw-start.sh)"; done
fi

if command -v haproxy >/dev/null 2>&1; then
  case_ "${f_desc[0]}" t_faults_cp
  case_ "${f_desc[1]}" t_faults_data
elif [ "${S3IMGFS_REQUIRE_SERVERS:-0}" = 1 ]; then
  for d in "${f_desc[@]}"; do case_ "$d" fail_with "haproxy is missing (scripts/install-deps.sh)"; done
else
  for d in "${f_desc[@]}"; do skip_case "$d" "haproxy is missing"; done
fi

# Case 3 needs a tmpfs mount (root): tried first on a small one.
probe=$tmp/tmpfs-probe
mkdir -p "$probe"
if mount -t tmpfs -o size=1m tmpfs "$probe" 2>"$tmp/tmpfs.err"; then
  umount "$probe"
  case_ "${c_desc[0]}" t_full_fill
  case_ "${c_desc[1]}" t_full_drain
  case_ "${c_desc[2]}" t_full_big
elif [ "${S3IMGFS_REQUIRE_SERVERS:-0}" = 1 ]; then
  for d in "${c_desc[@]}"; do case_ "$d" fail_with "cannot mount a tmpfs: $(cat "$tmp/tmpfs.err")"; done
else
  for d in "${c_desc[@]}"; do skip_case "$d" "cannot mount a tmpfs: $(head -1 "$tmp/tmpfs.err")"; done
fi
rmdir "$probe"

case_ "no sanitizer report from the gateway (ASan/UBSan builds)" no_sanitizer_report
if [ "$failed" != 0 ] && [ -s "$log" ]; then
  diag "last lines of the s3imgfs log ($log):"
  tail -n 30 "$log" | sed 's/^/#   | /'
fi
diag "run time: $(($(date +%s) - t_start)) s"
finish
