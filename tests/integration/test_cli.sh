#!/usr/bin/env bash
# The s3imgfs-s3 command against the local radosgw, every result checked with an independent
# client: the aws CLI (listings, heads, downloads) or plain curl (presigned URLs). The aws CLI
# crashes on radosgw's error bodies, so error cases are checked through our exit codes and
# messages only.
# Usage: tests/integration/test_cli.sh PATH/TO/s3imgfs-s3
# Env: S3IMGFS_TEST_ENDPOINT, S3IMGFS_TEST_ACCESS_KEY, S3IMGFS_TEST_SECRET_KEY,
#      S3IMGFS_TEST_REGION (from scripts/servers/rgw-start.sh's env.sh). Without the endpoint the
#      test is skipped (exit 77), or fails when S3IMGFS_REQUIRE_SERVERS=1.
# Prints "ok N - ..." / "not ok N - ..." per case and "N passed, M failed"; exit 1 on a failure.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 PATH/TO/s3imgfs-s3 (an executable)" >&2
  exit 2
fi
if [ -z "${S3IMGFS_TEST_ENDPOINT:-}" ]; then
  if [ "${S3IMGFS_REQUIRE_SERVERS:-0}" = 1 ]; then
    echo "S3IMGFS_TEST_ENDPOINT is not set but S3IMGFS_REQUIRE_SERVERS=1: start radosgw with scripts/servers/rgw-start.sh (or run tests/run.sh)" >&2
    exit 1
  fi
  echo "S3IMGFS_TEST_ENDPOINT is not set: skipping (start radosgw with scripts/servers/rgw-start.sh and source its env.sh)" >&2
  exit 77
fi

cli=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
endpoint=$S3IMGFS_TEST_ENDPOINT
access_key=${S3IMGFS_TEST_ACCESS_KEY:?S3IMGFS_TEST_ACCESS_KEY is not set}
secret_key=${S3IMGFS_TEST_SECRET_KEY:?S3IMGFS_TEST_SECRET_KEY is not set}
region=${S3IMGFS_TEST_REGION:-us-east-1}
AWS=/usr/bin/aws
export LC_ALL=C.UTF-8

tmp=$(mktemp -d /tmp/s3imgfs-cli-test.XXXXXX)
suffix="$$-$RANDOM"
src=s3imgfs-cli-src-$suffix
dst=s3imgfs-cli-dst-$suffix

# Nothing from the user's own AWS or s3imgfs setup may leak in: a private HOME, no AWS_* variables
# but the credentials, and an aws CLI config of our own (path-style addressing for radosgw).
for v in $(compgen -e | grep '^AWS_' || true); do unset "$v"; done
unset XDG_CONFIG_HOME
export HOME=$tmp/home
mkdir -p "$HOME"
export AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key
export AWS_CONFIG_FILE=$tmp/aws-config AWS_SHARED_CREDENTIALS_FILE=$tmp/aws-credentials
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
printf '[default]\nregion = %s\ns3 =\n  addressing_style = path\n' "$region" >"$AWS_CONFIG_FILE"

cleanup() {
  local b
  for b in "$src" "$dst"; do
    "$AWS" --endpoint-url "$endpoint" s3 rb --force "s3://$b" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- helpers ------------------------------------------------------------------------------

awsc() { "$AWS" --endpoint-url "$endpoint" "$@"; }

# s3 ARGS...: runs the command with the main config; sets RC, OUT, ERR.
conf=$tmp/config.ini
s3() { run "$cli" -c "$conf" "$@"; }
run() {
  set +e
  "$@" >"$tmp/out" 2>"$tmp/err"
  RC=$?
  set -e
  OUT=$(cat "$tmp/out")
  ERR=$(cat "$tmp/err")
}

# shellcheck source=tests/integration/harness.sh
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
show() { diag "exit $RC" "stdout: ${OUT:0:600}" "stderr: ${ERR:0:600}"; }
want_rc() { [ "$RC" = "$1" ] || { diag "expected exit $1"; show; return 1; }; }
out_has() { grep -qF -- "$1" <<<"$OUT" || { diag "stdout lacks: $1"; show; return 1; }; }
err_has() { grep -qF -- "$1" <<<"$ERR" || { diag "stderr lacks: $1"; show; return 1; }; }
# No output of ours may hold the secret key.
no_secret() {
  ! grep -qF -- "$secret_key" "$tmp/out" "$tmp/err" || { diag "the secret key was printed"; return 1; }
}
md5() { md5sum "$1" | cut -d' ' -f1; }
same_file() { [ "$(md5 "$1")" = "$(md5 "$2")" ] || { diag "$1 and $2 differ"; return 1; }; }
# Keys under a prefix of a bucket, one per line, as the aws CLI sees them.
aws_keys() {
  awsc s3api list-objects-v2 --bucket "$1" --prefix "$2" --query 'Contents[].Key' \
    --output json | /usr/bin/python3 -c 'import json,sys; [print(k) for k in (json.load(sys.stdin) or [])]'
}
aws_has_key() { aws_keys "$1" "$2" | grep -qxF -- "$2" || { diag "aws does not see s3://$1/$2"; return 1; }; }
aws_lacks_key() { ! aws_keys "$1" "$2" | grep -qxF -- "$2" || { diag "s3://$1/$2 still exists"; return 1; }; }


write_config() { # path [extra lines...]
  local path=$1
  shift
  {
    echo "; written by test_cli.sh"
    echo "[s3]"
    echo "endpoint = $endpoint"
    echo "region = $region"
    echo "path_style = true"
    echo "source_bucket = $src"
    echo "source_prefix = in/"
    echo "destination_bucket = $dst"
    echo "destination_prefix = out/"
    local line
    for line in "$@"; do echo "$line"; done
  } >"$path"
  chmod 600 "$path"
}

# ---- data ---------------------------------------------------------------------------------

write_config "$conf"
printf 'hello from s3imgfs-s3\n' >"$tmp/small.txt"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$tmp/big.bin"
vips black "$tmp/img.jpg" 10 10
vips black "$tmp/img.png" 10 10
odd_key='dir one/héllo wörld+plus&€ ü.txt'

# ---- cases --------------------------------------------------------------------------------

t_usage() {
  run "$cli" && want_rc 2 && err_has "no command given" || return 1
  run "$cli" frobnicate && want_rc 2 && err_has "unknown command 'frobnicate'" || return 1
  s3 put "$tmp/small.txt" && want_rc 2 && err_has "usage: s3imgfs-s3 put" || return 1
  s3 ls -x && want_rc 2 && err_has "unknown option -x" || return 1
  s3 get -t text/plain a b && want_rc 2 && err_has "get does not take the option -t" || return 1
  s3 -b x ls && want_rc 2 && err_has "-b is an option of the command" || return 1
  run "$cli" --help && want_rc 0 && out_has "presign KEY [SECONDS]" && out_has "Exit status"
}

t_mb() {
  s3 mb && want_rc 0 && out_has "s3://$src" && out_has "s3://$dst" || return 1
  awsc s3api head-bucket --bucket "$src" >/dev/null && awsc s3api head-bucket --bucket "$dst" >/dev/null
}

t_check_ok() {
  s3 check && want_rc 0 && no_secret || return 1
  out_has "OK    credentials" && out_has "env AWS_ACCESS_KEY_ID" &&
    out_has "OK    source       s3://$src/in/" && out_has "OK    destination  s3://$dst/out/" ||
    return 1
  ! grep -q FAIL <<<"$OUT" || { show; return 1; }
}

t_config() {
  s3 config && want_rc 0 && no_secret || return 1
  out_has "source_bucket = $src  ; $conf:6" && out_has "secret_access_key = ********" &&
    out_has "env AWS_SECRET_ACCESS_KEY"
}

t_put_small() {
  s3 put "$tmp/small.txt" small.txt && want_rc 0 || return 1
  out_has "s3://$src/in/small.txt  22 bytes  application/octet-stream  ETag $(md5 "$tmp/small.txt")" || return 1
  awsc s3 cp --quiet "s3://$src/in/small.txt" "$tmp/small.aws" && same_file "$tmp/small.txt" "$tmp/small.aws"
}

t_put_big() {
  s3 put "$tmp/big.bin" big/big.bin && want_rc 0 || return 1
  # 20 MiB is above the 16 MiB threshold: a multipart upload of 3 parts of 8 MiB.
  grep -qE "ETag [0-9a-f]{32}-3 " <<<"$OUT" || { diag "not a 3-part multipart ETag"; show; return 1; }
  awsc s3 cp --quiet "s3://$src/in/big/big.bin" "$tmp/big.aws" && same_file "$tmp/big.bin" "$tmp/big.aws"
}

t_put_odd_key() {
  s3 put "$tmp/small.txt" "$odd_key" && want_rc 0 || return 1
  aws_has_key "$src" "in/$odd_key" || return 1
  s3 get "$odd_key" - && want_rc 0 && [ "$OUT" = "hello from s3imgfs-s3" ]
}

t_ls_one_level() {
  s3 put "$tmp/small.txt" sub/deeper/a.txt && want_rc 0 || return 1
  s3 ls && want_rc 0 || return 1
  local re
  for re in '^ +PRE  dir one/$' '^ +PRE  sub/$' '^ +PRE  big/$' \
    '^ +22  [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z  small\.txt$'; do
    grep -qE "$re" <<<"$OUT" || { diag "no line matches $re"; show; return 1; }
  done
  ! grep -q 'a\.txt' <<<"$OUT" || { diag "one level shows a deeper key"; show; return 1; }
  s3 ls sub/ && want_rc 0 || return 1
  grep -qE '^ +PRE  sub/deeper/$' <<<"$OUT" || { show; return 1; }
}

t_ls_recursive() {
  s3 ls -r && want_rc 0 || return 1
  local ours theirs
  ours=$(awk '{ sub(/^ *[0-9]+  [^ ]+  /, ""); print }' <<<"$OUT" | sort)
  theirs=$(aws_keys "$src" in/ | sed 's|^in/||' | sort)
  [ "$ours" = "$theirs" ] || { diag "ls -r: $ours" "aws: $theirs"; return 1; }
  grep -qxF "sub/deeper/a.txt" <<<"$ours" || { diag "ls -r lacks sub/deeper/a.txt"; return 1; }
  ! grep -q PRE <<<"$OUT" || { show; return 1; }
}

t_ls_pages() {
  # More than one page of 1000 keys, uploaded by the aws CLI into the destination bucket.
  mkdir -p "$tmp/many"
  local i
  for i in $(seq 1 1010); do : >"$tmp/many/f$i"; done
  awsc s3 cp --quiet --recursive "$tmp/many" "s3://$dst/out/many/" || return 1
  s3 ls --dest -r many/ && want_rc 0 || return 1
  [ "$(grep -c '  many/f' <<<"$OUT")" = 1010 ] || { diag "expected 1010 keys"; show; return 1; }
}

t_get_file() {
  s3 get big/big.bin "$tmp/big.get" && want_rc 0 && out_has "20971520 bytes" || return 1
  same_file "$tmp/big.bin" "$tmp/big.get" || return 1
  ! ls "$tmp"/big.get.s3imgfs-* >/dev/null 2>&1 || { diag "temporary file left behind"; return 1; }
}

t_get_stdout() {
  set +e
  "$cli" -c "$conf" get big/big.bin - >"$tmp/big.stdout" 2>"$tmp/err"
  RC=$?
  set -e
  OUT="" ERR=$(cat "$tmp/err")
  want_rc 0 && same_file "$tmp/big.bin" "$tmp/big.stdout"
}

t_get_missing() {
  s3 get no/such/key "$tmp/missing.out" && want_rc 1 && err_has "s3imgfs-s3: " &&
    err_has "does not exist" || return 1
  ! ls "$tmp"/missing.out* >/dev/null 2>&1 || { diag "a file was left behind"; return 1; }
}

t_head_types() {
  s3 put -m owner=ann -m Project=demo "$tmp/img.jpg" photos/a.jpg && want_rc 0 &&
    out_has "image/jpeg" || return 1
  s3 head photos/a.jpg && want_rc 0 && out_has "content-type: image/jpeg" &&
    out_has "meta-owner: ann" && out_has "meta-project: demo" &&
    out_has "size: $(stat -c %s "$tmp/img.jpg")" || return 1
  grep -qE '^last-modified: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' <<<"$OUT" || { show; return 1; }
  local type owner
  type=$(awsc s3api head-object --bucket "$src" --key in/photos/a.jpg --query ContentType --output text)
  owner=$(awsc s3api head-object --bucket "$src" --key in/photos/a.jpg --query Metadata.owner --output text)
  if [ "$type" != image/jpeg ] || [ "$owner" != ann ]; then
    diag "aws sees $type, owner $owner"
    return 1
  fi
  s3 put "$tmp/img.png" photos/b.png && want_rc 0 && out_has "image/png" || return 1
  s3 put -t text/plain "$tmp/img.png" photos/c.txt && want_rc 0 || return 1
  type=$(awsc s3api head-object --bucket "$src" --key in/photos/c.txt --query ContentType --output text)
  [ "$type" = text/plain ] || { diag "-t gave $type"; return 1; }
}

t_magic_table() {
  local e want
  for e in gif:image/gif webp:image/webp tif:image/tiff avif:image/avif heic:image/heic; do
    want=${e#*:}
    e=${e%%:*}
    if ! vips black "$tmp/img.$e" 10 10 2>/dev/null; then
      diag "vips cannot write .$e here: not checked"
      continue
    fi
    s3 put "$tmp/img.$e" "types/img.$e" && want_rc 0 && out_has "  $want  ETag" || return 1
  done
}

t_rm_one() {
  s3 rm small.txt && want_rc 0 && out_has "deleted s3://$src/in/small.txt" || return 1
  aws_lacks_key "$src" in/small.txt && aws_has_key "$src" in/big/big.bin
}

t_rm_several() {
  s3 rm photos/a.jpg photos/b.png "$odd_key" && want_rc 0 || return 1
  aws_lacks_key "$src" in/photos/a.jpg && aws_lacks_key "$src" in/photos/b.png &&
    aws_lacks_key "$src" "in/$odd_key" && aws_has_key "$src" in/photos/c.txt
}

t_presign() {
  s3 presign big/big.bin 120 && want_rc 0 && out_has "X-Amz-Expires=120" || return 1
  curl -sSf -o "$tmp/big.presigned" "$OUT" || { diag "curl failed on $OUT"; return 1; }
  same_file "$tmp/big.bin" "$tmp/big.presigned" || return 1
  s3 presign big/big.bin 0 && want_rc 2 && err_has "SECONDS must be"
}

t_dest_and_override() {
  s3 put --dest "$tmp/img.jpg" x/y.jpg && want_rc 0 && out_has "s3://$dst/out/x/y.jpg" || return 1
  aws_has_key "$dst" out/x/y.jpg || return 1
  s3 -o s3.source_prefix=elsewhere put "$tmp/img.jpg" z.jpg && want_rc 0 || return 1
  aws_has_key "$src" elsewhere/z.jpg || return 1
  s3 head -b "$dst" out/x/y.jpg && want_rc 0 && out_has "key: s3://$dst/out/x/y.jpg"
}

t_wrong_secret() {
  AWS_SECRET_ACCESS_KEY=wrong-secret-0123456789 run "$cli" -c "$conf" check && want_rc 1 || return 1
  out_has "FAIL  source" && out_has "secret access key" || return 1
  AWS_SECRET_ACCESS_KEY=wrong-secret-0123456789 run "$cli" -c "$conf" ls && want_rc 1 &&
    err_has "secret access key"
}

t_missing_bucket() {
  s3 ls -b "s3imgfs-cli-none-$suffix" && want_rc 1 &&
    err_has "s3imgfs-s3: " && err_has "the bucket does not exist" || return 1
  write_config "$tmp/nobucket.ini" "[resize]" "mode = off"
  sed -i "s/^destination_bucket = .*/destination_bucket = s3imgfs-cli-none-$suffix/" "$tmp/nobucket.ini"
  run "$cli" -c "$tmp/nobucket.ini" check && want_rc 1 && out_has "OK    source" &&
    out_has "FAIL  destination  s3://s3imgfs-cli-none-$suffix/out/: " && out_has "does not exist"
}

t_bad_config() {
  write_config "$tmp/bad.ini" "[resize]" "quality = 120"
  run "$cli" -c "$tmp/bad.ini" check && want_rc 2 && err_has "s3imgfs-s3: $tmp/bad.ini:11: [resize] quality = 120" || return 1
  s3 -o s3.path_style=maybe ls && want_rc 2 && err_has "option -o s3.path_style" || return 1
  run "$cli" -c "$tmp/does-not-exist.ini" config && want_rc 2
}

t_ini_credentials() {
  write_config "$tmp/keys.ini" "access_key_id = $access_key" "secret_access_key = $secret_key"
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$cli" -c "$tmp/keys.ini" check >"$tmp/out" 2>"$tmp/err" &&
    RC=0 || RC=$?
  OUT=$(cat "$tmp/out") ERR=$(cat "$tmp/err")
  want_rc 0 && out_has "($tmp/keys.ini:10)" && no_secret
}

t_ini_credentials_mode() {
  write_config "$tmp/open.ini" "access_key_id = $access_key" "secret_access_key = $secret_key"
  chmod 644 "$tmp/open.ini"
  run "$cli" -c "$tmp/open.ini" check && want_rc 2 && err_has "chmod 600" && no_secret
}

case_ "usage errors exit 2, --help lists commands and exit codes" t_usage
case_ "mb creates the source and destination buckets" t_mb
case_ "check: credentials and both buckets OK" t_check_ok
case_ "config shows values, origins and masked secrets" t_config
case_ "put a small file (aws download matches)" t_put_small
case_ "put 20 MB as multipart (aws download matches)" t_put_big
case_ "put a key with spaces, unicode and plus" t_put_odd_key
case_ "ls one level with PRE lines" t_ls_one_level
case_ "ls -r lists what aws lists" t_ls_recursive
case_ "ls pages through more than 1000 keys" t_ls_pages
case_ "get to a file" t_get_file
case_ "get to stdout" t_get_stdout
case_ "get of a missing key fails, leaves no file" t_get_missing
case_ "put detects JPEG/PNG, -t and -m; head shows type and metadata" t_head_types
case_ "put detects GIF, WebP, TIFF, AVIF, HEIC" t_magic_table
case_ "rm one key" t_rm_one
case_ "rm several keys" t_rm_several
case_ "presign URL fetched by plain curl" t_presign
case_ "--dest, -b and -o overrides" t_dest_and_override
case_ "a wrong secret fails with exit 1 and says so" t_wrong_secret
case_ "a missing bucket gives a clear message" t_missing_bucket
case_ "a bad config value exits 2 with file:line" t_bad_config
case_ "credentials in a mode 600 config file" t_ini_credentials
case_ "credentials in a mode 644 config file are refused" t_ini_credentials_mode

finish
