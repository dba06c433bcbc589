#!/usr/bin/env bash
# shellcheck disable=SC2012 # ls is what is tested here (its listing of the mount)
# The s3imgfs FUSE gateway, mounted on a pair of fresh buckets of the local radosgw, driven with
# plain shell tools (cp, mv, rm, mkdir, rsync, truncate, dd, ls, df) and every result checked
# with independent clients: the aws CLI (listings, object versions, downloads) and vipsheader
# (rendition dimensions). The source bucket is versioned, so a listing of its versions is the
# history of every PUT: it shows that a file was uploaded exactly once, and that temporary names
# (rsync's, an editor's) were never uploaded at all.
#
# Usage: tests/integration/test_gateway.sh PATH/TO/s3imgfs
# Env: S3IMGFS_TEST_ENDPOINT, S3IMGFS_TEST_ACCESS_KEY, S3IMGFS_TEST_SECRET_KEY,
#      S3IMGFS_TEST_REGION (from scripts/servers/rgw-start.sh's env.sh). Without the endpoint, or
#      without FUSE (/dev/fuse, fusermount3), the test is skipped (exit 77), or fails when
#      S3IMGFS_REQUIRE_SERVERS=1.
#      S3IMGFS_GWTEST_TIMEOUT (60): seconds any single wait may take.
#      S3IMGFS_GWTEST_DEBUG=1: mount with -d (FUSE debug output into the log).
#      S3IMGFS_GWTEST_KEEP=1: keep the buckets and the scratch folder (with s3imgfs.log).
#      S3IMGFS_GWTEST_ONLY=REGEX: run only the cases whose function matches (t_photo|t_rm);
#      the others are reported as skipped. For development, never in the suite.
# Prints "ok N - ..." / "not ok N - ..." per case and "N passed, M failed"; exit 1 on a failure.
set -euo pipefail

test_name=gw
needed_tools=(vips vipsheader getfattr rsync findmnt cmp truncate dd md5sum)
# shellcheck source=tests/integration/gateway_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway_setup.sh"

cleanup() {
  set +e
  cd /
  kill_fs
  remove_test_data
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_case FUNCTION: the case, with the new lines of s3imgfs's log when it fails. A gateway that
# died in an earlier case is mounted again first, so that one crash does not fail every case.
# S3IMGFS_GWTEST_ONLY: the other cases are skipped.
if [ -n "${S3IMGFS_GWTEST_ONLY:-}" ]; then
  eval "$(declare -f case_ | sed '1s/case_/harness_case_/')"
  case_() {
    if [[ ${3:-$2} =~ ^(${S3IMGFS_GWTEST_ONLY})$ ]]; then harness_case_ "$@"; else skip_case "$1" "S3IMGFS_GWTEST_ONLY"; fi
  }
fi

run_case() {
  if ! is_mounted || { [ -n "$fs_pid" ] && ! alive "$fs_pid"; }; then
    diag "s3imgfs was not mounted (died in an earlier case?): mounting again"
    log_tail
    kill_fs
    mount_fs || return 1
  fi
  log_seen=$(wc -l <"$log")
  if "$@"; then
    return 0
  fi
  log_tail
  return 1
}

# ---- buckets, configuration, data ----------------------------------------------------------

awsc s3api create-bucket --bucket "$src" >/dev/null
awsc s3api create-bucket --bucket "$dst" >/dev/null
awsc s3api put-bucket-versioning --bucket "$src" --versioning-configuration Status=Enabled

sizes='thumbnail:150x150:cover, medium:640x640, large:1280x1280'
cat >"$conf" <<EOF
; written by test_gateway.sh
[s3]
endpoint = $endpoint
region = $region
path_style = true
source_bucket = $src
destination_bucket = $dst
access_key_id = $access_key
secret_access_key = $secret_key
[resize]
sizes = $sizes
[gateway]
cache_dir = $tmp/cache
EOF
chmod 600 "$conf"

# Objects that exist before the mount (put by the aws CLI, not by s3imgfs): 3,000 small files
# for the big listing and a key whose folders exist only as a prefix. Uploaded in the background
# while the images are made.
seed=$tmp/seed
mkdir -p "$seed/c7" "$seed/c6p/a/b"
for i in $(seq -w 1 3000); do head -c $((10#$i * 7 % 101)) /dev/zero >"$seed/c7/f$i"; done
printf 'only a prefix\n' >"$seed/c6p/a/b/c.txt"
awsc s3 cp --quiet --recursive "$seed" "s3://$src/" >"$tmp/seed.log" 2>&1 &
seed_pid=$!

data=$tmp/data
mkdir -p "$data"
make_photo "$data/photo-a.jpg" 2000 1500 # 4:3 landscape
make_photo "$data/photo-b.jpg" 1500 2000 # 3:4 portrait, for the overwrite
make_photo "$data/tiny.jpg" 64 48
head -c 2000 "$data/photo-a.jpg" >"$data/truncated.jpg"
head -c $((50 * 1024 * 1024)) /dev/urandom >"$data/big50.bin"
# Random bytes for edits in place (not image data: s3imgfs recognises images by their content).
head -c 4096 /dev/urandom >"$data/patch.bin"

# A tree of 200 files in 4 x 5 nested folders: 180 texts of various sizes and 20 tiny JPEGs.
for d in 1 2 3 4; do
  for s in 1 2 3 4 5; do
    mkdir -p "$data/tree/d$d/s$s"
    for f in 1 2 3 4 5 6 7 8 9; do
      head -c $(((d * 100 + s * 10 + f) * 13)) /dev/urandom >"$data/tree/d$d/s$s/f$f.txt"
    done
    cp "$data/tiny.jpg" "$data/tree/d$d/s$s/img.jpg"
  done
done
# rsync's input: 16 texts and 4 tiny JPEGs.
mkdir -p "$data/rs"
for i in $(seq -w 1 16); do head -c $((10#$i * 301)) /dev/urandom >"$data/rs/note$i.txt"; done
for i in 1 2 3 4; do cp "$data/tiny.jpg" "$data/rs/pic$i.jpg"; done

if ! wait "$seed_pid"; then
  echo "aws s3 cp of the seed objects failed:" >&2
  tail -5 "$tmp/seed.log" >&2
  exit 1
fi

if ! mount_fs; then
  echo "not ok 1 - mount s3imgfs"
  exit 1
fi

# ---- cases ----------------------------------------------------------------------------------

t_photo() {
  mkdir "$mnt/c1" && cp "$data/photo-a.jpg" "$mnt/c1/photo.jpg" || return 1
  wait_status "$mnt/c1/photo.jpg" 'done' || return 1
  same_object "$src" c1/photo.jpg "$data/photo-a.jpg" || return 1
  rendition_is thumbnail/c1/photo.jpg 150 150 &&
    rendition_is medium/c1/photo.jpg 640 480 &&
    rendition_is large/c1/photo.jpg 1280 960 || return 1
  renditions_xattr_is "$mnt/c1/photo.jpg" thumbnail/c1/photo.jpg medium/c1/photo.jpg \
    large/c1/photo.jpg || return 1
  local sizes_seen
  sizes_seen=$(ls "$mnt/resized" | tr '\n' ' ')
  expect "ls resized/" "large medium thumbnail " "$sizes_seen" || return 1
  local seen
  seen=$(ls "$mnt/resized/thumbnail/")
  grep -qxF c1 <<<"$seen" || { diag "ls resized/thumbnail/ lacks c1: $(head -5 <<<"$seen" | tr '\n' ' ')"; return 1; }
  seen=$(ls "$mnt/resized/thumbnail/c1/")
  grep -qxF photo.jpg <<<"$seen" || { diag "ls resized/thumbnail/c1/ lacks photo.jpg: $(tr '\n' ' ' <<<"$seen")"; return 1; }
  aws_keys "$src" resized >"$tmp/keys" || return 1
  [ ! -s "$tmp/keys" ] || { diag "resized/ appears in the source bucket: $(head -3 "$tmp/keys")"; return 1; }
}

t_one_put() {
  local f=$mnt/c2/open.txt hist
  mkdir "$mnt/c2" || return 1
  exec 3>"$f" || return 1
  printf '%01000d' 0 >&3
  sleep 1
  hist=$(aws_put_history "$src" c2/ | files_only | tr '\t\n' ': ')
  if [ -n "$hist" ]; then
    exec 3>&-
    diag "while the file was still open, the source bucket already had (key:size): $hist"
    return 1
  fi
  exec 3>&-
  : >"$mnt/c2/empty.txt"
  wait_final "$f" "$mnt/c2/empty.txt" || return 1
  hist=$(aws_put_history "$src" c2/ | files_only | tr '\t\n' ': ') || return 1
  expect "versions written under c2/ (key:size)" "c2/empty.txt:0 c2/open.txt:1000 " "$hist"
}

t_tree() {
  cp -r "$data/tree" "$mnt/tree" || return 1
  local want got n
  local -a files
  mapfile -t files < <(cd "$data" && find tree -type f | LC_ALL=C sort)
  wait_final "${files[@]/#/$mnt/}" || return 1
  want=$(cd "$data" && find tree -type f -printf '%p\t%s\n' | LC_ALL=C sort)
  got=$(aws_objects "$src" tree/ | files_only) || return 1
  if [ "$want" != "$got" ]; then
    diag "source objects under tree/ (key, size) differ from the local tree:"
    diff <(echo "$want") <(echo "$got") | head -10 | sed 's/^/#     /'
    return 1
  fi
  n=$(aws_put_history "$src" tree/ | files_only | count_lines) || return 1
  expect "versions written under tree/ (one PUT per file)" 200 "$n" || return 1
  n=$(find "$mnt/tree" -type f | wc -l)
  expect "find MOUNTPOINT/tree -type f | wc -l" 200 "$n"
}

t_mv_in() {
  mkdir "$mnt/c4" && cp "$data/photo-a.jpg" "$tmp/moving.jpg" || return 1
  mv "$tmp/moving.jpg" "$mnt/c4/in.jpg" || return 1
  [ ! -e "$tmp/moving.jpg" ] || { diag "the local file is still there after mv"; return 1; }
  wait_status "$mnt/c4/in.jpg" 'done' && same_object "$src" c4/in.jpg "$data/photo-a.jpg"
}

renamed_in_buckets() { # OLD NEW (source keys): moved in the source bucket, renditions too
  has_keys "$src" "$2" && lacks_keys "$src" "$1" &&
    has_keys "$dst" {thumbnail,medium,large}/"$2" && lacks_keys "$dst" {thumbnail,medium,large}/"$1"
}
t_mv_rename() {
  [ "$(status_of "$mnt/c4/in.jpg")" = "done" ] || { diag "needs c4/in.jpg from the previous case"; return 1; }
  mv "$mnt/c4/in.jpg" "$mnt/c4/renamed.jpg" || return 1
  [ ! -e "$mnt/c4/in.jpg" ] || { diag "c4/in.jpg still shows after the mv"; return 1; }
  wait_until "c4/in.jpg and its renditions renamed to c4/renamed.jpg" \
    renamed_in_buckets c4/in.jpg c4/renamed.jpg || return 1
  same_object "$src" c4/renamed.jpg "$data/photo-a.jpg" &&
    rendition_is medium/c4/renamed.jpg 640 480 &&
    renditions_xattr_is "$mnt/c4/renamed.jpg" {thumbnail,medium,large}/c4/renamed.jpg || return 1
  # The renditions are in place: the status must say so (within a few seconds at most).
  wait_status "$mnt/c4/renamed.jpg" 'done' 5
}

dir_moved() {
  local keys
  keys=$(aws_keys "$src" c4/d) || return 1
  expect "source keys under c4/d" "c4/dir2/a.txt c4/dir2/b.txt c4/dir2/p.jpg " \
    "$(grep -v '/$' <<<"$keys" | tr '\n' ' ')" || return 1
  ! grep -q '^c4/dir/' <<<"$keys" || { diag "c4/dir/ still has: $(grep '^c4/dir/' <<<"$keys" | tr '\n' ' ')"; return 1; }
  has_keys "$dst" {thumbnail,medium,large}/c4/dir2/p.jpg &&
    lacks_keys "$dst" {thumbnail,medium,large}/c4/dir/p.jpg
}
t_mv_dir() {
  mkdir "$mnt/c4/dir" && echo alpha >"$mnt/c4/dir/a.txt" && echo beta >"$mnt/c4/dir/b.txt" &&
    cp "$data/tiny.jpg" "$mnt/c4/dir/p.jpg" || return 1
  wait_final "$mnt/c4/dir/a.txt" "$mnt/c4/dir/b.txt" "$mnt/c4/dir/p.jpg" || return 1
  mv "$mnt/c4/dir" "$mnt/c4/dir2" || return 1
  [ ! -e "$mnt/c4/dir" ] || { diag "c4/dir still shows after the mv"; return 1; }
  expect "ls c4/dir2" "a.txt b.txt p.jpg " "$(ls "$mnt/c4/dir2" | tr '\n' ' ')" || return 1
  wait_until "c4/dir renamed to c4/dir2 in both buckets" dir_moved || return 1
  expect "cat c4/dir2/b.txt" beta "$(cat "$mnt/c4/dir2/b.txt")"
}

deleted_with_renditions() { lacks_keys "$src" "$1" && lacks_keys "$dst" {thumbnail,medium,large}/"$1"; }
t_rm() {
  mkdir "$mnt/c5" && cp "$data/photo-a.jpg" "$mnt/c5/a.jpg" && cp "$data/photo-a.jpg" "$mnt/c5/b.jpg" ||
    return 1
  wait_final "$mnt/c5/a.jpg" "$mnt/c5/b.jpg" || return 1
  has_keys "$dst" {thumbnail,medium,large}/c5/a.jpg || return 1
  rm "$mnt/c5/a.jpg" || return 1
  [ ! -e "$mnt/c5/a.jpg" ] || { diag "c5/a.jpg still shows after rm"; return 1; }
  wait_until "c5/a.jpg and its renditions deleted" deleted_with_renditions c5/a.jpg || return 1
  has_keys "$src" c5/b.jpg && has_keys "$dst" {thumbnail,medium,large}/c5/b.jpg
}

t_rm_rendition() {
  [ -e "$mnt/resized/thumbnail/c5/b.jpg" ] ||
    { diag "resized/thumbnail/c5/b.jpg does not show (needs c5/b.jpg from the previous case)"; return 1; }
  rm "$mnt/resized/thumbnail/c5/b.jpg" || return 1
  wait_until "s3://$dst/thumbnail/c5/b.jpg deleted" lacks_keys "$dst" thumbnail/c5/b.jpg || return 1
  [ ! -e "$mnt/resized/thumbnail/c5/b.jpg" ] || { diag "resized/thumbnail/c5/b.jpg still shows"; return 1; }
  has_keys "$src" c5/b.jpg && has_keys "$dst" medium/c5/b.jpg large/c5/b.jpg
}

t_resized_read_only() {
  local r=$mnt/resized
  fails_with "Read-only file system" cp "$data/tiny.jpg" "$r/medium/c5/new.jpg" &&
    fails_with "Read-only file system" sh -c "echo x >'$r/medium/c5/b.jpg'" &&
    fails_with "Read-only file system" mkdir "$r/medium/newdir" &&
    fails_with "Read-only file system" mv "$r/medium/c5/b.jpg" "$r/medium/c5/moved.jpg" &&
    fails_with "Read-only file system" touch "$r/new-at-top" || return 1
  has_keys "$dst" medium/c5/b.jpg && lacks_keys "$dst" medium/c5/new.jpg medium/c5/moved.jpg
}

t_mkdir_rmdir() {
  mkdir -p "$mnt/c6/d" || return 1
  wait_until "the marker c6/d/" has_key "$src" c6/d/ || return 1
  rmdir "$mnt/c6/d" || return 1
  [ ! -e "$mnt/c6/d" ] || { diag "c6/d still shows after rmdir"; return 1; }
  wait_until "the marker c6/d/ deleted" lacks_key "$src" c6/d/
}

t_rmdir_not_empty() {
  mkdir -p "$mnt/c6/full" && echo x >"$mnt/c6/full/x.txt" || return 1
  wait_final "$mnt/c6/full/x.txt" || return 1
  fails_with "Directory not empty" rmdir "$mnt/c6/full" || return 1
  [ -f "$mnt/c6/full/x.txt" ] && has_key "$src" c6/full/x.txt
}

t_prefix_dir() {
  # c6p/a/b/c.txt was put by the aws CLI before the mount: no marker objects.
  expect "ls c6p/a" b "$(ls "$mnt/c6p/a")" &&
    expect "file type of c6p/a/b" directory "$(stat -c %F "$mnt/c6p/a/b")" &&
    expect "cd c6p/a/b; cat c.txt" "only a prefix" "$(cd "$mnt/c6p/a/b" && cat c.txt)"
}

t_ls_many() {
  local n want got
  n=$(ls "$mnt/c7" | wc -l)
  expect "ls c7 | wc -l" 3000 "$n" || return 1
  got=$(ls -l --time-style=+%s "$mnt/c7" | awk 'NR > 1 { print "c7/" $7 "\t" $5 }' | LC_ALL=C sort)
  want=$(aws_objects "$src" c7/) || return 1
  [ "$(wc -l <<<"$want")" = 3000 ] || { diag "aws lists $(wc -l <<<"$want") keys under c7/"; return 1; }
  if [ "$want" != "$got" ]; then
    diag "ls -l (name, size) differs from the aws listing:"
    diff <(echo "$want") <(echo "$got") | head -10 | sed 's/^/#     /'
    return 1
  fi
}

t_rsync() {
  local out rc=0 hist want
  local -a names
  out=$(rsync -a "$data/rs/" "$mnt/c8/" 2>&1) || rc=$?
  [ "$rc" = 0 ] || { diag "rsync -a exited $rc: ${out:0:500}"; return 1; }
  mapfile -t names < <(ls "$data/rs")
  wait_final "${names[@]/#/$mnt/c8/}" || return 1
  want=$(cd "$data/rs" && find . -type f -printf 'c8/%P\t%s\n' | LC_ALL=C sort)
  hist=$(aws_put_history "$src" c8/ | files_only) || return 1
  if [ "$want" != "$hist" ]; then
    diag "versions ever written under c8/ (key, size) should be the 20 files once each:"
    diff <(echo "$want") <(echo "$hist") | head -10 | sed 's/^/#     /'
    return 1
  fi
}

note_is_v2() {
  local got=$tmp/note.got
  aws_get "$src" c8e/note.txt "$got" && expect "content of s3://$src/c8e/note.txt" "version 2" "$(cat "$got")"
}
t_editor_save() {
  mkdir "$mnt/c8e" && printf 'version 1' >"$mnt/c8e/note.txt" || return 1
  wait_final "$mnt/c8e/note.txt" || return 1
  printf 'version 2' >"$mnt/c8e/.goutputstream-4XQ2B1" &&
    mv -f "$mnt/c8e/.goutputstream-4XQ2B1" "$mnt/c8e/note.txt" || return 1
  expect "cat note.txt" "version 2" "$(cat "$mnt/c8e/note.txt")" || return 1
  wait_until "s3://$src/c8e/note.txt has the new content" note_is_v2 || return 1
  wait_final "$mnt/c8e/note.txt" || return 1
  local hist
  hist=$(aws_put_history "$src" c8e/ | files_only | tr '\t\n' ': ') || return 1
  expect "versions ever written under c8e/ (key:size)" "c8e/note.txt:9 c8e/note.txt:9 " "$hist"
}

overwritten() {
  same_object "$src" c9/p.jpg "$data/photo-b.jpg" && rendition_is thumbnail/c9/p.jpg 150 150 &&
    rendition_is medium/c9/p.jpg 480 640 && rendition_is large/c9/p.jpg 960 1280
}
t_overwrite() {
  mkdir "$mnt/c9" && cp "$data/photo-a.jpg" "$mnt/c9/p.jpg" || return 1
  wait_status "$mnt/c9/p.jpg" 'done' && rendition_is medium/c9/p.jpg 640 480 || return 1
  cp "$data/photo-b.jpg" "$mnt/c9/p.jpg" || return 1
  cmp -s "$mnt/c9/p.jpg" "$data/photo-b.jpg" || { diag "reading c9/p.jpg does not give the new bytes"; return 1; }
  wait_status "$mnt/c9/p.jpg" 'done' || return 1
  wait_until "c9/p.jpg and its renditions replaced by the portrait photo" overwritten
}

t_big_readback() {
  mkdir "$mnt/c10" && cp "$data/big50.bin" "$mnt/c10/big.bin" || return 1
  wait_final "$mnt/c10/big.bin" && same_object "$src" c10/big.bin "$data/big50.bin" || return 1
  unmount_fs && mount_fs || return 1
  cmp "$mnt/c10/big.bin" "$data/big50.bin" >"$tmp/cmp.out" 2>&1 ||
    { diag "after a remount, reading c10/big.bin back: $(cat "$tmp/cmp.out")"; return 1; }
}

t_read_rendition() {
  local got=$tmp/medium.jpg
  aws_get "$dst" medium/c1/photo.jpg "$got" || { diag "(made by the first case)"; return 1; }
  cmp "$mnt/resized/medium/c1/photo.jpg" "$got" >"$tmp/cmp.out" 2>&1 ||
    { diag "resized/medium/c1/photo.jpg differs from the object: $(cat "$tmp/cmp.out")"; return 1; }
  expect "size of resized/medium/c1/photo.jpg" "$(stat -c %s "$got")" \
    "$(stat -c %s "$mnt/resized/medium/c1/photo.jpg")"
}

# The same edits on a file in the mount and on a local copy must give the same bytes.
edit_ops() { # FILE
  truncate -s 150000 "$1" &&
    printf 'appended' >>"$1" &&
    dd if="$data/patch.bin" of="$1" bs=1024 seek=7 count=1 conv=notrunc status=none &&
    dd if="$data/patch.bin" of="$1" bs=1 seek=100003 count=37 conv=notrunc status=none &&
    truncate -s 300001 "$1"
}
# One open, several writes, truncations and seeks, one close (python: one file descriptor).
one_session() { # FILE
  "$PY" - "$1" "$data/patch.bin" <<'EOF'
import os, sys
patch = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, patch * 20)
os.ftruncate(fd, 50000)
os.pwrite(fd, b"beyond the end, after a hole", 70000)
os.lseek(fd, 0, os.SEEK_END)
os.write(fd, patch[:999])
os.pwrite(fd, b"rewritten", 10)
os.ftruncate(fd, 65000)
os.pwrite(fd, patch[:100], 64990)
os.close(fd)
EOF
}
same_as_local() { same_object "$src" "$1" "$2"; }
t_edits() {
  mkdir -p "$mnt/c11" && head -c 204800 /dev/urandom >"$tmp/ops.bin" && cp "$tmp/ops.bin" "$mnt/c11/ops.bin" ||
    return 1
  wait_final "$mnt/c11/ops.bin" || return 1
  # Five opens and closes in a row: each close must lead to an upload of what is there by then,
  # the last one included (no matter whether an earlier upload is still running).
  edit_ops "$tmp/ops.bin" && edit_ops "$mnt/c11/ops.bin" || return 1
  cmp "$tmp/ops.bin" "$mnt/c11/ops.bin" >"$tmp/cmp.out" 2>&1 ||
    { diag "truncate/>>/dd conv=notrunc: the mount and a local file differ: $(cat "$tmp/cmp.out")"; return 1; }
  wait_until "s3://$src/c11/ops.bin equals the locally edited file" same_as_local c11/ops.bin "$tmp/ops.bin" ||
    { diag "status of c11/ops.bin: '$(status_of "$mnt/c11/ops.bin")'"; return 1; }
  wait_final "$mnt/c11/ops.bin"
}

t_one_open_edits() {
  mkdir -p "$mnt/c11" || return 1
  one_session "$tmp/session.bin" && one_session "$mnt/c11/session.bin" || return 1
  cmp "$tmp/session.bin" "$mnt/c11/session.bin" >"$tmp/cmp.out" 2>&1 ||
    { diag "one open with writes/ftruncate/pwrite: the mount and a local file differ: $(cat "$tmp/cmp.out")"; return 1; }
  wait_final "$mnt/c11/session.bin" && same_object "$src" c11/session.bin "$tmp/session.bin" || return 1
  local n
  n=$(aws_put_history "$src" c11/session.bin | count_lines) || return 1
  expect "versions of c11/session.bin (one PUT for one open-to-close)" 1 "$n"
}

t_ds_store() {
  mkdir "$mnt/c12" || return 1
  # Whether creating it succeeds or is refused is up to s3imgfs; it must never reach the bucket.
  { printf 'Bud1 junk' >"$mnt/c12/.DS_Store"; } 2>/dev/null || true
  echo keep >"$mnt/c12/keep.txt" || return 1
  wait_final "$mnt/c12/keep.txt" || return 1
  sleep 1 # the workers have no order: give a queued .DS_Store a moment more
  local hist
  hist=$(aws_put_history "$src" c12/ | files_only | cut -f1 | tr '\n' ' ') || return 1
  expect "keys ever written under c12/" "c12/keep.txt " "$hist"
}

t_text() {
  mkdir "$mnt/c13" && printf 'plain text, not an image\n' >"$mnt/c13/readme.txt" || return 1
  wait_status "$mnt/c13/readme.txt" uploaded || return 1
  has_key "$src" c13/readme.txt || return 1
  local r
  r=$(xattr "$mnt/c13/readme.txt" renditions || true)
  [ -z "$r" ] || { diag "user.s3imgfs.renditions of a text file: '$r' (expected none)"; return 1; }
  aws_keys "$dst" >"$tmp/keys" || return 1
  ! grep -q '/c13/' "$tmp/keys" || { diag "renditions of c13/: $(grep '/c13/' "$tmp/keys" | tr '\n' ' ')"; return 1; }
}

t_corrupt() {
  mkdir "$mnt/c14" && cp "$data/truncated.jpg" "$mnt/c14/bad.jpg" || return 1
  wait_status "$mnt/c14/bad.jpg" failed || return 1
  local st
  st=$(status_of "$mnt/c14/bad.jpg")
  grep -qiE 'truncat|corrupt|premature' <<<"$st" ||
    { diag "status '$st' does not say the image is truncated or corrupt"; return 1; }
  same_object "$src" c14/bad.jpg "$data/truncated.jpg" || return 1
  aws_keys "$dst" >"$tmp/keys" || return 1
  ! grep -q '/c14/bad.jpg$' "$tmp/keys" || { diag "renditions of a truncated JPEG exist"; return 1; }
  cp "$data/photo-a.jpg" "$mnt/c14/good.jpg" && wait_status "$mnt/c14/good.jpg" 'done' &&
    has_keys "$dst" {thumbnail,medium,large}/c14/good.jpg
}

t_statfs() {
  df "$mnt" >"$tmp/df.out" 2>&1 || { diag "df $mnt failed: $(cat "$tmp/df.out")"; return 1; }
  grep -qF "$mnt" "$tmp/df.out" || { diag "df does not show $mnt: $(cat "$tmp/df.out")"; return 1; }
  stat -f "$mnt" >/dev/null || { diag "stat -f $mnt failed"; return 1; }
  expect "stat -c %s c13/readme.txt" 25 "$(stat -c %s "$mnt/c13/readme.txt")" &&
    expect "stat -c %F c13/readme.txt" "regular file" "$(stat -c %F "$mnt/c13/readme.txt")" &&
    expect "stat -c %F c13" directory "$(stat -c %F "$mnt/c13")" || return 1
  # chmod may succeed or fail (EPERM/ENOTSUP, as documented); it must not hang or kill the mount.
  chmod 640 "$mnt/c13/readme.txt" 2>/dev/null || true
  stat "$mnt/c13/readme.txt" >/dev/null
}

# Limits of names and renames, and one gateway per cache_dir.
t_limits() {
  local d250
  d250=$(printf 'd%.0s' $(seq 1 250))
  mkdir -p "$mnt/c21/$d250/$d250/$d250/$d250" || { diag "mkdir of a 1008-byte key failed"; return 1; }
  fails_with "File name too long" touch "$mnt/c21/$d250/$d250/$d250/$d250/x$d250" || return 1
  mkdir "$mnt/c21/full" "$mnt/c21/d2" && echo x >"$mnt/c21/full/x" && echo y >"$mnt/c21/d2/y" &&
    echo f >"$mnt/c21/f" || return 1
  wait_final "$mnt/c21/full/x" "$mnt/c21/d2/y" "$mnt/c21/f" || return 1
  fails_with "Directory not empty" mv -T "$mnt/c21/d2" "$mnt/c21/full" || return 1
  # rename(2) itself (mv refuses this case before calling it)
  fails_with "Is a directory" "$PY" -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' \
    "$mnt/c21/f" "$mnt/c21/full" || return 1
  mkdir -p "$tmp/mnt2"
  fails_with "in use by another s3imgfs" "$fs" -f -o "config=$conf" "$tmp/mnt2"
}

# A file being written that also exists in S3 is listed once, also on the first listing of its
# folder (S3 answers subfolders and objects apart; the merge must see them sorted).
t_listing_merge() {
  printf 'remote\n' >"$tmp/remote.txt"
  awsc s3 cp --quiet "$tmp/remote.txt" "s3://$src/c22/a.txt" &&
    awsc s3 cp --quiet "$tmp/remote.txt" "s3://$src/c22/m/b.txt" &&
    awsc s3 cp --quiet "$tmp/remote.txt" "s3://$src/c22/zz/b.txt" || return 1
  exec 7>>"$mnt/c22/a.txt" || return 1 # open for writing: local data shadows the object
  local names
  names=$(ls "$mnt/c22" | tr '\n' ' ')
  exec 7>&-
  expect "ls c22 while a.txt is open for writing" "a.txt m zz " "$names"
}

t_other_calls() {
  mkdir "$mnt/c15" && echo x >"$mnt/c15/f.txt" || return 1
  fails_with "Operation not supported" ln -s f.txt "$mnt/c15/link" || return 1
  fails_with "Operation not supported" ln "$mnt/c15/f.txt" "$mnt/c15/hard" || return 1
  chmod 600 "$mnt/c15/f.txt" || { diag "chmod failed (documented: succeeds, changes nothing)"; return 1; }
  expect "mode after chmod (not kept)" 644 "$(stat -c %a "$mnt/c15/f.txt")" || return 1
  chown "$(id -u):$(id -g)" "$mnt/c15/f.txt" || { diag "chown to the mounting user failed"; return 1; }
  fails_with "Operation not permitted" chown 12345 "$mnt/c15/f.txt" || return 1
  fails_with "Operation not supported" setfattr -n user.other -v 1 "$mnt/c15/f.txt" || return 1
  fails_with "No such attribute" getfattr -n user.other "$mnt/c15/f.txt" || return 1
  getfattr -d "$mnt/c15/f.txt" >"$tmp/attrs" 2>&1 || { diag "getfattr -d: $(cat "$tmp/attrs")"; return 1; }
  grep -q '^user.s3imgfs.status=' "$tmp/attrs" || { diag "getfattr -d lists: $(cat "$tmp/attrs")"; return 1; }
}

t_mtime_kept() {
  mkdir -p "$mnt/c16" && printf 'old file\n' >"$tmp/old.txt" &&
    touch -d '2001-02-03 04:05:06 UTC' "$tmp/old.txt" || return 1
  cp -p "$tmp/old.txt" "$mnt/c16/old.txt" && wait_status "$mnt/c16/old.txt" uploaded || return 1
  local meta
  meta=$(awsc s3api head-object --bucket "$src" --key c16/old.txt --query Metadata.mtime --output text) ||
    return 1
  expect "x-amz-meta-mtime of a cp -p copy" 981173106 "${meta%%.*}" &&
    expect "stat -c %Y in the mount" 981173106 "$(stat -c %Y "$mnt/c16/old.txt")"
}

t_status_file() {
  local json=$tmp/status.json
  cat "$mnt/.s3imgfs/status" >"$json" || { diag "cannot read .s3imgfs/status"; return 1; }
  "$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
for k in ("pending", "uploading", "uploaded", "resizing", "done", "failed"):
    assert isinstance(s["files"][k], int), k
assert s["files"]["done"] >= 1, s["files"]
assert s["uploads_done"] >= 1, s["uploads_done"]  # since the last mount (case 17 remounts)
assert s["renditions_done"] >= 1
assert any(f["key"] == "c14/bad.jpg" for f in s["last_failures"]), s["last_failures"]
' "$json" || { diag "unexpected status: $(head -c 600 "$json")"; return 1; }
  fails_with "Permission denied" sh -c "echo x >'$mnt/.s3imgfs/status'" || return 1
  ! has_key "$src" .s3imgfs/status 2>/dev/null || { diag ".s3imgfs appears in the bucket"; return 1; }
}

# kill -9 with files closed but not uploaded (wrong credentials make every upload fail and keep
# the files), then a remount with the right ones: every file arrives, byte-identical.
t_kill9() {
  mkdir -p "$mnt/c17" "$tmp/k9" || return 1
  for i in $(seq 1 60); do head -c $((i * 997)) /dev/urandom >"$tmp/k9/f$i.bin"; done
  sed -i "s/^secret_access_key = .*/secret_access_key = wrong-$RANDOM-secret/" "$conf"
  cp "$tmp/k9"/* "$mnt/c17/" || return 1
  wait_status "$mnt/c17/f60.bin" failed 30 || return 1
  local keys
  keys=$(aws_keys "$src" c17/) || return 1
  expect "objects under c17/ while the key is wrong" "" "$(grep -v '/$' <<<"$keys")" || return 1
  kill -9 "$fs_pid" && wait "$fs_pid" 2>/dev/null
  fs_pid=""
  fusermount3 -uz "$mnt" 2>/dev/null
  sed -i "s/^secret_access_key = .*/secret_access_key = $secret_key/" "$conf"
  mount_fs || return 1
  for i in $(seq 1 60); do
    wait_status "$mnt/c17/f$i.bin" uploaded || return 1
    same_object "$src" "c17/f$i.bin" "$tmp/k9/f$i.bin" || return 1
  done
}

# kill -9 while 300 photos are being copied in (one cp each): after the remount every file whose
# cp returned is in S3 byte-identical with its 3 renditions; nothing was uploaded twice; no
# object under the folder differs from its source (a file cut by the kill is not uploaded).
t_kill9_copy() {
  local dir=$tmp/p300 i f
  mkdir -p "$mnt/c24" "$dir" "$tmp/p300.got" || return 1
  make_photo "$tmp/p300.base.jpg" 800 600 || return 1
  # distinct bytes per file: a JPEG decoder ignores what follows its end marker
  for i in $(seq -w 1 300); do { cat "$tmp/p300.base.jpg"; printf 'copy %s' "$i"; } >"$dir/p$i.jpg"; done
  : >"$tmp/p300.done"
  (for f in "$dir"/p*.jpg; do cp "$f" "$mnt/c24/" 2>/dev/null && echo "${f##*/}" >>"$tmp/p300.done"; done) &
  local copier=$! deadline=$(($(now_ms) + gw_timeout * 1000))
  until [ "$(wc -l <"$tmp/p300.done")" -ge 120 ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "fewer than 120 photos copied in ${gw_timeout} s"; kill "$copier"; return 1; }
    sleep 0.05
  done
  # The copy is frozen (a cp may be stopped halfway through a file, or between its close() and
  # the release the kernel sends just after) and the gateway killed at once.
  pkill -STOP -P "$copier"
  kill -STOP "$copier"
  kill -9 "$fs_pid" && wait "$fs_pid" 2>/dev/null
  fs_pid=""
  pkill -CONT -P "$copier"
  kill -CONT "$copier"
  wait "$copier" # its cp calls fail from the kill on: the mount is gone
  fusermount3 -uz "$mnt" 2>/dev/null
  local finished
  finished=$(wc -l <"$tmp/p300.done")
  diag "killed with $finished of 300 photos copied"
  [ "$finished" -lt 300 ] || { diag "the kill came after the whole copy: nothing was cut"; return 1; }
  mount_fs || return 1
  # files finished before the kill say "uploaded" now (the journal forgets finished files):
  # wait for the queue instead
  timeout "$gw_timeout" "$fs" status -w "$mnt" >/dev/null || { diag "the queue did not drain without failures in ${gw_timeout} s: $("$fs" status "$mnt" 2>&1 | head -5)"; return 1; }
  awsc s3 sync --quiet "s3://$src/c24/" "$tmp/p300.got/" || { diag "aws s3 sync of c24/ failed"; return 1; }
  while read -r f; do
    cmp -s "$dir/$f" "$tmp/p300.got/$f" || { diag "c24/$f (cp returned) is missing or differs in S3"; return 1; }
  done <"$tmp/p300.done"
  for f in "$tmp"/p300.got/*; do
    cmp -s "$f" "$dir/${f##*/}" || { diag "s3://$src/c24/${f##*/} differs from its source: a cut file was uploaded"; return 1; }
  done
  local history dups renditions missing
  history=$(aws_put_history "$src" c24/) || return 1
  dups=$(cut -f1 <<<"$history" | sort | uniq -d)
  expect "keys under c24/ uploaded more than once" "" "$dups" || return 1
  renditions=$(aws_keys "$dst") || return 1
  missing=$(while read -r f; do
    for s in thumbnail medium large; do grep -qxF "$s/c24/$f" <<<"$renditions" || echo "$s/c24/$f"; done
  done <"$tmp/p300.done" | head -5)
  expect "renditions missing for photos whose cp returned" "" "$missing"
}

# A close() of one descriptor while another stays open: the kernel reports the file closed
# (FUSE's release) only when the last one goes. Killed in between, the gateway uploads at the
# next mount the version as it was at that close, unless it was written to afterwards.
t_kill9_flushed() {
  mkdir -p "$mnt/c30" || return 1
  # One process holds both files (a child exiting would close inherited descriptors too): it
  # writes closed.txt and closes a duplicate of its descriptor (a flush), writes after.txt,
  # closes a duplicate, writes again, then waits with both open.
  "$PY" - "$mnt/c30" "$tmp/kill9-flushed.ready" <<'EOF' &
import os, sys, time
d, ready = sys.argv[1:]
a = os.open(d + "/closed.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(a, b"closed content\n")
os.close(os.dup(a))
b = os.open(d + "/after.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(b, b"first\n")
os.close(os.dup(b))
os.write(b, b"written after the close\n")
open(ready, "w").close()
time.sleep(120)
EOF
  local writer=$! deadline=$(($(now_ms) + 20000))
  until [ -e "$tmp/kill9-flushed.ready" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "the writer did not get ready"; kill "$writer"; return 1; }
    sleep 0.1
  done
  kill -9 "$fs_pid" && wait "$fs_pid" 2>/dev/null
  fs_pid=""
  kill "$writer" 2>/dev/null
  wait "$writer" 2>/dev/null
  fusermount3 -uz "$mnt" 2>/dev/null
  mount_fs || return 1
  timeout "$gw_timeout" "$fs" status -w "$mnt" >/dev/null || { diag "the queue did not drain"; return 1; }
  printf 'closed content\n' >"$tmp/closed.txt"
  same_object "$src" c30/closed.txt "$tmp/closed.txt" || return 1
  lacks_key "$src" c30/after.txt
}

# A crash (a SIGSEGV, sent here as a bug would raise it): the log says so with the stack of the
# thread, the core (where the kernel writes cores in the working directory) is in cache_dir, and
# the next mount uploads what was closed before. Not in sanitizer builds: their own handler
# reports the signal instead (and no_sanitizer_report would take it for a bug).
t_crash_report() {
  crashes_caught_by_sanitizer && return 0
  mkdir -p "$mnt/c31" || return 1
  cp "$data/photo-b.jpg" "$mnt/c31/closed-before.jpg" || return 1
  local rc=0
  signal_main_thread 11 "$fs_pid" || return 1 # SIGSEGV
  wait "$fs_pid" 2>/dev/null || rc=$?
  fs_pid=""
  fusermount3 -uz "$mnt" 2>/dev/null
  expect "exit status of the crashed gateway (128 + SIGSEGV)" 139 "$rc" || return 1
  local report frames
  report=$(tail -n +"$((log_seen + 1))" "$log" | grep -A64 '^fatal: crashed on SIGSEGV') ||
    { diag "no 'fatal: crashed on SIGSEGV' line in the log"; return 1; }
  grep -q 'in thread [0-9]* (s3imgfs) of process' <<<"$report" || { diag "the report names no thread: $(head -1 <<<"$report")"; return 1; }
  grep -q 'kept in the spool and go up at the next mount' <<<"$report" || { diag "the report does not say what is kept"; return 1; }
  frames=$(grep -c '^/.*\[0x[0-9a-f]*\]$' <<<"$report" || true)
  grep -q 's3imgfs(main+0x' <<<"$report" || { diag "no frame names main (export_dynamic?): $report"; return 1; }
  [ "$frames" -ge 3 ] || { diag "only $frames stack frames after the fatal line"; return 1; }
  local pattern cores
  pattern=$(cat /proc/sys/kernel/core_pattern)
  if [[ $pattern == \|* || $pattern == /* ]] || [ "$(ulimit -H -c)" = 0 ]; then
    diag "core_pattern '$pattern', hard core limit $(ulimit -H -c): no core to look for in cache_dir"
  else
    cores=$(core_files "$tmp/cache" 1)
    [ -n "$cores" ] || { diag "no core in cache_dir $tmp/cache (core_pattern '$pattern')"; return 1; }
    xargs rm -f <<<"$cores"
  fi
  mount_fs || return 1
  timeout "$gw_timeout" "$fs" status -w "$mnt" >/dev/null || { diag "the queue did not drain"; return 1; }
  same_object "$src" c31/closed-before.jpg "$data/photo-b.jpg"
}

# log_since_has LINE PATTERN: the log from line LINE on has a line matching PATTERN (grep).
log_since_has() { tail -n +"$1" "$log" | grep -q "$2"; }

# In daemon mode without [log] file the log goes to syslog, which a crashing process cannot use:
# the report goes to cache_dir/crash.log (mode 600). The next mount logs an error naming it and
# keeps it as crash.log.1; what was closed before the crash is uploaded.
t_crash_daemon() {
  crashes_caught_by_sanitizer && return 0
  unmount_fs && mount_fs daemon || return 1
  mkdir -p "$mnt/c32" && cp "$data/photo-a.jpg" "$mnt/c32/closed-before.jpg" || return 1
  local pid=$fs_pid deadline
  signal_main_thread 11 "$pid" || return 1 # SIGSEGV
  deadline=$(($(now_ms) + 15000))
  while alive "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
  ! alive "$pid" || { diag "the gateway did not die of SIGSEGV within 15 s"; return 1; }
  fs_pid=""
  fusermount3 -uz "$mnt" 2>/dev/null
  local report=$tmp/cache/crash.log
  [ -f "$report" ] || { diag "no $report after a crash in daemon mode"; return 1; }
  expect "mode of crash.log" 600 "$(stat -c %a "$report")" || return 1
  grep -q '^fatal: crashed on SIGSEGV .* in thread [0-9]* (s3imgfs) of process '"$pid"'\.' "$report" ||
    { diag "crash.log has no report of process $pid: $(head -c 300 "$report")"; return 1; }
  grep -q 's3imgfs(main+0x' "$report" || { diag "no frame names main in crash.log"; return 1; }
  mount_fs || return 1
  # the mount shows before the workers start, and the announcement comes after them
  wait_until "the next mount saying that the last run crashed" \
    log_since_has "$((log_seen + 1))" "error: the last run of s3imgfs on this cache_dir crashed (.*): its report is in $report.1" ||
    return 1
  [ ! -e "$report" ] && [ -f "$report.1" ] || { diag "crash.log was not kept aside as crash.log.1"; return 1; }
  timeout "$gw_timeout" "$fs" status -w "$mnt" >/dev/null || { diag "the queue did not drain"; return 1; }
  same_object "$src" c32/closed-before.jpg "$data/photo-a.jpg"
}

# sync_upload = true: close() returns once the object is in S3, and reports a failed upload.
t_sync_upload() {
  unmount_fs || return 1
  mount_extra=(-o gateway.sync_upload=true)
  mount_fs || { mount_extra=(); return 1; }
  mkdir -p "$mnt/c18" && head -c 300000 /dev/urandom >"$tmp/sync.bin" || return 1
  cp "$tmp/sync.bin" "$mnt/c18/sync.bin" || { diag "cp with sync_upload failed"; return 1; }
  # no waiting: the object must be there when cp returns
  same_object "$src" c18/sync.bin "$tmp/sync.bin" || return 1
  sed -i "s/^secret_access_key = .*/secret_access_key = wrong-$RANDOM-secret/" "$conf"
  fails_with "Input/output error" cp "$tmp/sync.bin" "$mnt/c18/refused.bin"
  local rc=$?
  sed -i "s/^secret_access_key = .*/secret_access_key = $secret_key/" "$conf"
  [ "$rc" = 0 ] || return 1
  expect "status after the refused upload" failed "$(status_of "$mnt/c18/refused.bin" | cut -d: -f1)" ||
    return 1
  unmount_fs && mount_extra=() && mount_fs || return 1
  # kept in the spool, retried at the next mount
  wait_status "$mnt/c18/refused.bin" uploaded && same_object "$src" c18/refused.bin "$tmp/sync.bin"
}

# A wrong key makes uploads fail for good: the files are kept, `s3imgfs status` says why; once
# the key is fixed, `touch` retries one file, `s3imgfs retry` the rest (a folder, then all).
t_retry() {
  mkdir -p "$mnt/c20/sub" "$tmp/rt" || return 1
  local i
  for i in 1 2 3 4 5; do head -c $((i * 70001)) /dev/urandom >"$tmp/rt/f$i.bin"; done
  sed -i "s/^secret_access_key = .*/secret_access_key = wrong-$RANDOM-secret/" "$conf"
  cp "$tmp/rt/f1.bin" "$tmp/rt/f2.bin" "$mnt/c20/" && cp "$tmp/rt/f3.bin" "$tmp/rt/f4.bin" "$tmp/rt/f5.bin" "$mnt/c20/sub/" ||
    { sed -i "s/^secret_access_key = .*/secret_access_key = $secret_key/" "$conf"; return 1; }
  for f in c20/f1.bin c20/f2.bin c20/sub/f3.bin c20/sub/f4.bin c20/sub/f5.bin; do
    wait_status "$mnt/$f" failed 30 || { sed -i "s/^secret_access_key = .*/secret_access_key = $secret_key/" "$conf"; return 1; }
  done
  "$fs" status "$mnt" >"$tmp/status.txt" 2>&1 || { diag "s3imgfs status failed: $(cat "$tmp/status.txt")"; return 1; }
  sed -i "s/^secret_access_key = .*/secret_access_key = $secret_key/" "$conf"
  grep -qE '^  failed +[0-9]+ files, kept in the spool' "$tmp/status.txt" &&
    grep -q 'c20/sub/f5.bin: .*SignatureDoesNotMatch' "$tmp/status.txt" ||
    { diag "s3imgfs status does not show the failures:"; sed 's/^/#     /' "$tmp/status.txt" | head -12; return 1; }
  # nothing is retried by itself (a permanent failure waits for the user)
  sleep 3
  expect "c20/f2.bin 3 s after the key was fixed" failed "$(status_of "$mnt/c20/f2.bin" | cut -d: -f1)" || return 1
  touch "$mnt/c20/f1.bin" && wait_status "$mnt/c20/f1.bin" uploaded || return 1
  expect "c20/f2.bin after a touch of f1.bin" failed "$(status_of "$mnt/c20/f2.bin" | cut -d: -f1)" || return 1
  local out
  out=$("$fs" retry "$mnt" "$mnt/c20/sub" 2>&1) || { diag "s3imgfs retry of a folder failed: $out"; return 1; }
  expect "s3imgfs retry $mnt/c20/sub" "3 files queued again" "${out%%;*}" || return 1
  for i in 3 4 5; do wait_status "$mnt/c20/sub/f$i.bin" uploaded || return 1; done
  expect "c20/f2.bin after retrying c20/sub" failed "$(status_of "$mnt/c20/f2.bin" | cut -d: -f1)" || return 1
  out=$(cd "$mnt" && "$fs" retry .) || return 1
  expect "s3imgfs retry . (everything)" "1 file queued again" "${out%%;*}" || return 1
  "$fs" status -w "$mnt" >/dev/null || { diag "s3imgfs status -w: exit $? (failed files left?)"; return 1; }
  for i in 1 2; do same_object "$src" "c20/f$i.bin" "$tmp/rt/f$i.bin" || return 1; done
  for i in 3 4 5; do same_object "$src" "c20/sub/f$i.bin" "$tmp/rt/f$i.bin" || return 1; done
  fails_with "not inside the mount" "$fs" retry "$mnt" /tmp || return 1
  fails_with "not an s3imgfs mount" "$fs" status /tmp
}

# Bytes of KEY sent so far (its in-flight upload in the status file), 0 when not uploading.
sent_of() {
  "$PY" -c '
import json, sys
s = json.load(open(sys.argv[1] + "/.s3imgfs/status"))
print(sum(t["sent"] for t in s["in_flight"] if t["key"] == sys.argv[2]))' "$mnt" "$1"
}

# wait_sent KEY BYTES: until the in-flight upload of KEY has sent BYTES.
wait_sent() {
  local deadline=$(($(now_ms) + gw_timeout * 1000)) got=0
  until [ "$got" -ge "$2" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "$1: $got bytes sent after ${gw_timeout} s, waiting for $2"; return 1; }
    sleep 0.2
    got=$(sent_of "$1") || return 1
  done
}

# The multipart uploads in progress under PREFIX of the source bucket (keys, one per line).
open_uploads() {
  awsc s3api list-multipart-uploads --bucket "$src" --prefix "$1" --query 'Uploads[].Key' --output text |
    tr '\t' '\n' | grep -v '^None$' || true
}

# Uploads slowed to 4 MiB/s in 5 MiB parts, one at a time: a 30 MiB file takes ~8 s.
# shellcheck disable=SC2054 # one -o value: its options are comma-separated
slow_multipart=(-o gateway.upload_kbps=4096,gateway.part_size_mb=5,gateway.multipart_threshold_mb=5,gateway.part_parallel=1)

# kill -9 in the middle of a multipart upload: the next mount continues it, reusing the parts
# already in S3 (the journal keeps the upload id; ListParts says which parts are whole).
t_multipart_resume() {
  unmount_fs || return 1
  mount_extra=("${slow_multipart[@]}")
  mount_fs || { mount_extra=(); return 1; }
  mount_extra=()
  mkdir -p "$mnt/c21" && head -c $((30 * 1024 * 1024)) /dev/urandom >"$tmp/mp30.bin" || return 1
  cp "$tmp/mp30.bin" "$mnt/c21/mp30.bin" || return 1
  wait_sent c21/mp30.bin $((12 * 1024 * 1024)) || return 1
  kill -9 "$fs_pid" && wait "$fs_pid" 2>/dev/null
  fs_pid=""
  fusermount3 -uz "$mnt" 2>/dev/null
  expect "multipart uploads open after the kill" "c21/mp30.bin" "$(open_uploads c21/)" || return 1
  mount_fs || return 1
  wait_status "$mnt/c21/mp30.bin" uploaded || return 1
  local reused
  reused=$(grep -o 'c21/mp30.bin: resumed a multipart upload, [0-9]* parts' "$log" | tail -1 | grep -o '[0-9]* parts' | cut -d' ' -f1)
  [ "${reused:-0}" -ge 2 ] || { diag "the upload was not resumed with at least 2 parts (log says: '${reused:-nothing}')"; return 1; }
  diag "resumed after kill -9 with $reused of 6 parts already in S3"
  same_object "$src" c21/mp30.bin "$tmp/mp30.bin" &&
    expect "multipart uploads open at the end" "" "$(open_uploads c21/)"
}

# Multipart uploads that fail for good halfway (the key turns wrong) are kept: once the key is
# right, s3imgfs retry finishes one from where it stopped; the other file is removed instead,
# and its upload is aborted.
t_multipart_failed() {
  unmount_fs || return 1
  mount_extra=("${slow_multipart[@]}")
  mount_fs || { mount_extra=(); return 1; }
  mount_extra=()
  mkdir -p "$mnt/c22" || return 1
  cp "$tmp/mp30.bin" "$mnt/c22/a.bin" && cp "$tmp/mp30.bin" "$mnt/c22/b.bin" || return 1
  wait_sent c22/a.bin $((6 * 1024 * 1024)) && wait_sent c22/b.bin $((6 * 1024 * 1024)) || return 1
  sed -i "s/^secret_access_key = .*/secret_access_key = wrong-$RANDOM-secret/" "$conf"
  wait_status "$mnt/c22/a.bin" failed && wait_status "$mnt/c22/b.bin" failed
  local rc=$?
  sed -i "s/^secret_access_key = .*/secret_access_key = $secret_key/" "$conf"
  [ "$rc" = 0 ] || return 1
  expect "multipart uploads kept after the failures" "c22/a.bin c22/b.bin" "$(open_uploads c22/ | sort | tr '\n' ' ' | sed 's/ $//')" || return 1
  "$fs" retry "$mnt" "$mnt/c22/a.bin" >/dev/null || return 1
  wait_status "$mnt/c22/a.bin" uploaded || return 1
  grep -q 'c22/a.bin: resumed a multipart upload, [1-9][0-9]* parts' "$log" ||
    { diag "c22/a.bin was sent again from the start after the retry"; return 1; }
  same_object "$src" c22/a.bin "$tmp/mp30.bin" || return 1
  expect "c22/b.bin after retrying a.bin only" failed "$(status_of "$mnt/c22/b.bin" | cut -d: -f1)" || return 1
  rm "$mnt/c22/b.bin" || return 1
  local deadline=$(($(now_ms) + 20000))
  until [ -z "$(open_uploads c22/)" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "the upload of the removed c22/b.bin was not aborted within 20 s"; return 1; }
    sleep 0.5
  done
  unmount_fs || return 1
  local lines
  lines=$(wc -l <"$log")
  mount_fs || return 1
  ! tail -n +"$lines" "$log" | grep -q 'c22/a.bin: aborting' ||
    { diag "the mount after the retry aborts the completed upload of c22/a.bin"; return 1; }
}

# rm and mv of images while they are being resized: the gateway goes on (a change during a
# resize once deadlocked it) and the renditions follow (none left under the old names).
t_change_while_resizing() {
  mkdir -p "$mnt/c23" || return 1
  make_photo "$tmp/big.jpg" 4000 3000 && vips copy "$tmp/big.jpg" "$tmp/big.png" || return 1
  local f st deadline
  for f in rm mv; do
    cp "$tmp/big.png" "$mnt/c23/$f.png" || return 1
    deadline=$(($(now_ms) + gw_timeout * 1000))
    until [ "$(status_of "$mnt/c23/$f.png")" = resizing ]; do
      st=$(status_of "$mnt/c23/$f.png")
      [ "$st" != "done" ] || { diag "c23/$f.png was resized before it could be changed"; return 1; }
      [ "$(now_ms)" -lt "$deadline" ] || { diag "c23/$f.png: never seen resizing (last: $st)"; return 1; }
      sleep 0.02
    done
    if [ "$f" = rm ]; then rm "$mnt/c23/rm.png"; else mv "$mnt/c23/mv.png" "$mnt/c23/moved.png"; fi || return 1
  done
  timeout 20 ls "$mnt/c23" >/dev/null || { diag "ls of the mount hangs after changes during a resize"; return 1; }
  cp "$data/tiny.jpg" "$mnt/c23/after.jpg" && wait_status "$mnt/c23/after.jpg" "done" &&
    wait_status "$mnt/c23/moved.png" "done" || return 1
  deadline=$(($(now_ms) + 20000))
  local left
  while left=$(aws_keys "$dst" | grep -E '/c23/(rm|mv)\.png$'); [ -n "$left" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "renditions of the old names left: $(tr '\n' ' ' <<<"$left")"; return 1; }
    sleep 0.5
  done
  expect "renditions of c23/moved.png" 3 "$(aws_keys "$dst" | grep -c '/c23/moved\.png$')"
}

# Big files written in order go up while they are written: at close most parts are in S3
# already (the log says how many), the object is byte-identical and nothing is left open. A
# write behind the parts sent drops the streamed upload (the file goes up at close, intact);
# a file never closed (kill -9 while writing) leaves no upload behind after the next mount.
t_stream_write() {
  mkdir -p "$mnt/c25" && head -c $((100 * 1024 * 1024)) /dev/urandom >"$tmp/s100.bin" || return 1
  dd if="$tmp/s100.bin" of="$mnt/c25/seq.bin" bs=1M status=none || return 1
  wait_status "$mnt/c25/seq.bin" uploaded || return 1
  local sent
  sent=$(grep -o 'c25/seq.bin: uploaded .*; [0-9]* parts went up while it was written' "$log" | grep -o '[0-9]* parts' | cut -d' ' -f1)
  [ "${sent:-0}" -ge 1 ] || { diag "no part of c25/seq.bin went up before its close"; return 1; }
  diag "c25/seq.bin (100 MiB): $sent of 13 parts went up while it was written"
  same_object "$src" c25/seq.bin "$tmp/s100.bin" || return 1
  # 60 MiB in order, then 5,000 bytes into part 1 (long sent), then the rest
  "$PY" - "$tmp/s100.bin" "$mnt/c25/rewrite.bin" "$tmp/rewrite.expected" <<'PYEOF' || return 1
import os, sys
data = bytearray(open(sys.argv[1], "rb").read())
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
step, mid = 1 << 20, 60 << 20
for off in range(0, mid, step):
    os.pwrite(fd, data[off:off + step], off)
os.pwrite(fd, b"X" * 5000, (3 << 20) + 17)
data[(3 << 20) + 17:(3 << 20) + 5017] = b"X" * 5000
for off in range(mid, len(data), step):
    os.pwrite(fd, data[off:off + step], off)
os.close(fd)
open(sys.argv[3], "wb").write(data)
PYEOF
  wait_status "$mnt/c25/rewrite.bin" uploaded && same_object "$src" c25/rewrite.bin "$tmp/rewrite.expected" || return 1
  ! grep -q 'c25/rewrite.bin: uploaded .*went up while it was written' "$log" ||
    { diag "the streamed parts of c25/rewrite.bin were kept although part 1 was written again"; return 1; }
  # never closed: 40 MiB written, then kill -9 with the file open
  "$PY" -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, os.urandom(40 << 20)); time.sleep(30)' "$mnt/c25/open.bin" 2>/dev/null &
  local writer=$!
  local deadline=$(($(now_ms) + gw_timeout * 1000))
  until [ "$(open_uploads c25/)" = c25/open.bin ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "no multipart upload of c25/open.bin while it is written"; kill "$writer"; return 1; }
    sleep 0.2
  done
  kill -9 "$fs_pid" && wait "$fs_pid" 2>/dev/null
  fs_pid=""
  kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
  fusermount3 -uz "$mnt" 2>/dev/null
  mount_fs || return 1
  deadline=$(($(now_ms) + 20000))
  until [ -z "$(open_uploads c25/)" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "the upload of the never-closed c25/open.bin is still open 20 s after the remount"; return 1; }
    sleep 0.5
  done
  lacks_key "$src" c25/open.bin || return 1
  expect "multipart uploads left under c25/" "" "$(open_uploads c25/)"
}

# The control area: status and metrics are read-only, retry write-only, nothing else can be made
# there, and
# nothing of it reaches the bucket.
t_control_area() {
  fails_with "Permission denied" sh -c "echo x >'$mnt/.s3imgfs/new'" || return 1
  fails_with "Permission denied" mkdir "$mnt/.s3imgfs/d" || return 1
  fails_with "Permission denied" rm "$mnt/.s3imgfs/status" || return 1
  fails_with "Permission denied" mv "$mnt/.s3imgfs/status" "$mnt/.s3imgfs/s2" || return 1
  fails_with "Permission denied" cat "$mnt/.s3imgfs/retry" || return 1
  fails_with "Permission denied" sh -c "echo x >'$mnt/.s3imgfs/metrics'" || return 1
  grep -q '^# TYPE s3imgfs_uploads_total counter$' "$mnt/.s3imgfs/metrics" ||
    { diag ".s3imgfs/metrics has no s3imgfs_uploads_total counter"; return 1; }
  expect "ls .s3imgfs" "metrics retry status" "$(ls "$mnt/.s3imgfs" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" || return 1
  "$fs" status --json "$mnt" | "$PY" -c 'import json,sys; s=json.load(sys.stdin); assert isinstance(s["in_flight"], list) and "upload_rate" in s and "requeued" in s, s' ||
    { diag "s3imgfs status --json lacks in_flight/upload_rate/requeued"; return 1; }
  local keys
  keys=$(aws_keys "$src") || return 1
  ! grep -qE '^(new|status|retry|d/|s2)$' <<<"$keys" || { diag "a control name reached the bucket: $(grep -E '^(new|status|retry|d/|s2)$' <<<"$keys")"; return 1; }
}

# cache_max_mb: with uploads failing (wrong key), the spool fills; writes then fail with ENOSPC
# (no crash, nothing corrupt), and every file written before is uploaded once the key is right.
t_spool_full() {
  unmount_fs || return 1
  mount_extra=(-o gateway.cache_max_mb=64)
  mount_fs || { mount_extra=(); return 1; }
  mount_extra=()
  mkdir -p "$mnt/c19" && head -c $((1024 * 1024)) /dev/urandom >"$tmp/one.bin" || return 1
  # a wrong key from now on (the mount checks the key, so it was right until now)
  sed -i "s/^secret_access_key = .*/secret_access_key = wrong-$RANDOM-secret/" "$conf"
  local i ok=0 refused=""
  for i in $(seq 1 150); do
    if cp "$tmp/one.bin" "$mnt/c19/f$i.bin" 2>"$tmp/full.err"; then
      ok=$i
    else
      refused=$(cat "$tmp/full.err")
      break
    fi
    [ $((i % 8)) != 0 ] || sleep 0.3 # the spool is measured once a second
  done
  sed -i "s/^secret_access_key = .*/secret_access_key = $secret_key/" "$conf"
  grep -q "No space left on device" <<<"$refused" ||
    { diag "150 MiB written into a 64 MiB spool without ENOSPC (last error: '$refused')"; return 1; }
  [ "$ok" -ge 56 ] || { diag "ENOSPC after only $ok MiB (cache_max_mb = 64)"; return 1; }
  rm -f "$mnt/c19/f$((ok + 1)).bin" # the refused one, if it was created
  unmount_fs && mount_fs || return 1
  for i in $(seq 1 "$ok"); do
    wait_status "$mnt/c19/f$i.bin" uploaded || return 1
  done
  same_object "$src" c19/f1.bin "$tmp/one.bin" && same_object "$src" "c19/f$ok.bin" "$tmp/one.bin"
}

# The whole tree but resized/, with the sizes of files; without .DS_Store, which s3imgfs keeps
# only while mounted (junk_globs, docs/config.md).
snapshot() {
  (cd "$mnt" && find . -path ./resized -prune -o -path ./.s3imgfs -prune -o -name .DS_Store -prune -o \
    -type f -printf 'f %s %p\n' | LC_ALL=C sort &&
    find . -path ./resized -prune -o -path ./.s3imgfs -prune -o -type d -printf '%p\n' | LC_ALL=C sort)
}
t_remount() {
  snapshot >"$tmp/before" || return 1
  unmount_fs || return 1
  aws_keys "$src" >"$tmp/keys" || return 1
  ! grep -q '^resized' "$tmp/keys" || { diag "resized/ appears in the source bucket"; return 1; }
  mount_fs daemon || return 1
  snapshot >"$tmp/after" || return 1
  if ! cmp -s "$tmp/before" "$tmp/after"; then
    diag "the listing differs after the remount (< before, > after):"
    diff "$tmp/before" "$tmp/after" | head -10 | sed 's/^/#     /'
    return 1
  fi
  expect "entries before the remount" "yes" "$([ "$(wc -l <"$tmp/before")" -gt 3200 ] && echo yes)" &&
    expect "ls resized/medium/c1 after the remount" photo.jpg "$(ls "$mnt/resized/medium/c1")"
}

case_ "cp of a photo: source object byte-identical, 3 renditions of the right size, status done" run_case t_photo
case_ "one PUT per file, at close: nothing in the bucket while the file is open" run_case t_one_put
case_ "cp -r of 200 files in nested folders: 200 objects, right sizes, one PUT each" run_case t_tree
case_ "mv from another file system into the mount" run_case t_mv_in
case_ "mv inside the mount renames the object and its renditions" run_case t_mv_rename
case_ "mv of a directory with 3 files" run_case t_mv_dir
case_ "rm deletes the object and its renditions" run_case t_rm
case_ "rm in resized/ deletes that rendition only" run_case t_rm_rendition
case_ "resized/ is read-only but for rm (EROFS)" run_case t_resized_read_only
case_ "mkdir puts a dir/ marker, rmdir of an empty directory removes it" run_case t_mkdir_rmdir
case_ "rmdir of a non-empty directory fails with ENOTEMPTY" run_case t_rmdir_not_empty
case_ "a directory that exists only as a key prefix is listed and cd-able" run_case t_prefix_dir
case_ "ls of 3,000 entries; ls -l sizes match the aws listing" run_case t_ls_many
case_ "rsync -a of 20 files: 20 objects, no temporary name ever uploaded" run_case t_rsync
case_ "editor-style save (temp file, mv over): one object, new content, temp never uploaded" run_case t_editor_save
case_ "overwrite a photo: new bytes, renditions of the new picture" run_case t_overwrite
case_ "50 MiB written, read back identical after a remount" run_case t_big_readback
case_ "a rendition read through resized/ equals the object" run_case t_read_rendition
case_ "truncate, >>, dd conv=notrunc in a row: the mount and the object match a local file" run_case t_edits
case_ "one open with writes, ftruncate and pwrite: same bytes as locally, one PUT" run_case t_one_open_edits
case_ ".DS_Store is not uploaded" run_case t_ds_store
case_ "a text file ends 'uploaded' with no renditions" run_case t_text
case_ "a truncated JPEG is uploaded, fails to resize with a reason, the gateway goes on" run_case t_corrupt
case_ "df and stat answer" run_case t_statfs
case_ "a file being written that exists in S3 too is listed once" run_case t_listing_merge
case_ "name limits, rename onto folders, one gateway per cache_dir" run_case t_limits
case_ "symlink, link, other xattrs: ENOTSUP; chmod accepted, chown only to the mounting user" run_case t_other_calls
case_ "cp -p keeps the mtime (object metadata and stat)" run_case t_mtime_kept
case_ ".s3imgfs/status: JSON counts, totals and the last failure; read-only; not in the bucket" run_case t_status_file
case_ "kill -9 with 60 closed files not uploaded (wrong key): all arrive after a remount" run_case t_kill9
case_ "kill -9 during a copy of 300 photos: every cp that returned is in S3 intact with renditions, once" run_case t_kill9_copy
case_ "kill -9 between a close() and the release: the version as of that close is uploaded, not one written after" run_case t_kill9_flushed
case_ "a crash (SIGSEGV): the log has the report and the stack, the core is in cache_dir, the next mount uploads what was closed" run_case t_crash_report
case_ "sync_upload: cp returns with the object in S3; a refused upload is EIO, kept, retried" run_case t_sync_upload
case_ "failed uploads (wrong key): s3imgfs status says why; touch and s3imgfs retry upload them" run_case t_retry
case_ "kill -9 halfway through a multipart upload: the next mount reuses the parts in S3" run_case t_multipart_resume
case_ "a multipart upload failing halfway is kept, finished by retry; aborted when the file is removed" run_case t_multipart_failed
case_ "rm and mv of images being resized: the gateway goes on, renditions follow the names" run_case t_change_while_resizing
case_ "big files written in order go up while written; a rewrite behind drops them; kill -9 leaves no upload" run_case t_stream_write
case_ ".s3imgfs: nothing can be created, removed or renamed there; status --json has the queue" run_case t_control_area
case_ "cache_max_mb: a full spool refuses writes with ENOSPC; what was written is uploaded later" run_case t_spool_full
case_ "unmount while idle and remount (daemon mode): the listing is unchanged" run_case t_remount

case_ "a crash in daemon mode (log to syslog): the report is in cache_dir/crash.log, the next mount says so" run_case t_crash_daemon

unmount_fs || diag "the final unmount failed"
case_ "no sanitizer report from the gateway (ASan/UBSan builds)" no_sanitizer_report
if [ "$failed" != 0 ] && [ -s "$log" ]; then
  diag "last lines of the s3imgfs log ($log):"
  tail -n 30 "$log" | sed 's/^/#   | /'
fi
finish
