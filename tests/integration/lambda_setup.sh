# The common start of the s3imgfs-lambda tests (test_lambda_runtime.sh, test_lambda_serve.sh),
# sourced with the test's own arguments once it has set:
#   test_name     short name for the scratch folder and the buckets ("lrt" -> s3imgfs-lrt-src-...)
#   needed_tools  commands the test uses besides the aws CLI and python3
# Checks the arguments (PATH/TO/s3imgfs-lambda), skips (77) without radosgw unless
# S3IMGFS_REQUIRE_SERVERS=1, then sets fn, endpoint, access_key, secret_key, region, AWS, PY, tmp,
# src, dst and here, gives the test a private HOME and aws CLI setup (nothing from the user's AWS
# or s3imgfs configuration leaks in), sources harness.sh and gateway_lib.sh (awsc, expect,
# aws_get, rendition_is, make_photo, purge_bucket, free_port, ...) and defines the helpers below.
# The scratch folder is made under $TMPDIR (default /tmp).
# shellcheck shell=bash disable=SC2034,SC2154

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 PATH/TO/s3imgfs-lambda (an executable)" >&2
  exit 2
fi

# skip REASON: exit 77, or 1 when the servers are required.
skip() {
  if [ "${S3IMGFS_REQUIRE_SERVERS:-0}" = 1 ]; then
    echo "$1, but S3IMGFS_REQUIRE_SERVERS=1: failing" >&2
    exit 1
  fi
  echo "$1: skipping" >&2
  exit 77
}
[ -n "${S3IMGFS_TEST_ENDPOINT:-}" ] ||
  skip "S3IMGFS_TEST_ENDPOINT is not set (start radosgw with scripts/servers/rgw-start.sh and source its env.sh)"
curl -s -o /dev/null -m 5 "$S3IMGFS_TEST_ENDPOINT" ||
  skip "radosgw does not answer at $S3IMGFS_TEST_ENDPOINT"

AWS=/usr/bin/aws # Debian's awscli; another aws may come first on PATH
PY=/usr/bin/python3
for tool in "$AWS" "$PY" curl "${needed_tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "$tool is missing: run scripts/install-deps.sh" >&2
    exit 1
  }
done

fn=$(readlink -f "$1")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
endpoint=$S3IMGFS_TEST_ENDPOINT
access_key=${S3IMGFS_TEST_ACCESS_KEY:?S3IMGFS_TEST_ACCESS_KEY is not set}
secret_key=${S3IMGFS_TEST_SECRET_KEY:?S3IMGFS_TEST_SECRET_KEY is not set}
region=${S3IMGFS_TEST_REGION:-us-east-1}
export LC_ALL=C.UTF-8 VIPS_WARNING=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/s3imgfs-$test_name-test.XXXXXX")
suffix="$$-$RANDOM"
src=s3imgfs-$test_name-src-$suffix
dst=s3imgfs-$test_name-dst-$suffix

# A private HOME, no AWS_* variables, an aws CLI config of our own (path-style addressing for
# radosgw). The function gets its settings from the environment run_fn builds (or a config file).
for v in $(compgen -e | grep '^AWS_' || true); do unset "$v"; done
unset XDG_CONFIG_HOME
export HOME=$tmp/home
mkdir -p "$HOME"
export AWS_CONFIG_FILE=$tmp/aws-config AWS_SHARED_CREDENTIALS_FILE=$tmp/aws-credentials
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
printf '[default]\nregion = %s\ns3 =\n  addressing_style = path\n' "$region" >"$AWS_CONFIG_FILE"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$access_key" "$secret_key" \
  >"$AWS_SHARED_CREDENTIALS_FILE"
chmod 600 "$AWS_SHARED_CREDENTIALS_FILE"

# shellcheck source=tests/integration/harness.sh
source "$here/harness.sh"
# shellcheck source=tests/integration/gateway_lib.sh
source "$here/gateway_lib.sh"

# fn_env VAR=VALUE...: the environment the function runs with (as Lambda would set it): the
# AWS variables for radosgw and the S3IMGFS_* settings of this test, plus the given ones, and
# nothing else from the test's environment (s3imgfs-lambda refuses unknown S3IMGFS_* variables,
# and the test's own S3IMGFS_TEST_* would be such). Prints one assignment per line.
fn_env() {
  local v
  printf '%s\n' "PATH=$PATH" "HOME=$HOME" "LC_ALL=C.UTF-8" "VIPS_WARNING=0" \
    "AWS_ACCESS_KEY_ID=$access_key" "AWS_SECRET_ACCESS_KEY=$secret_key" \
    "AWS_REGION=$region" "AWS_ENDPOINT_URL_S3=$endpoint" "AWS_EC2_METADATA_DISABLED=true" \
    "AWS_LAMBDA_FUNCTION_NAME=s3imgfs-test" \
    "S3IMGFS_PATH_STYLE=true" "S3IMGFS_SOURCE_BUCKET=$src" "S3IMGFS_DESTINATION_BUCKET=$dst" \
    "S3IMGFS_SIZES=thumb:100x100:cover, medium:320x320"
  for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
    [ -z "${!v:-}" ] || printf '%s\n' "$v=${!v}"
  done
  [ $# = 0 ] || printf '%s\n' "$@"
}

# fn_prepare [VAR=VALUE...]: sets fn_cmd to the command that runs s3imgfs-lambda with fn_env's
# environment (later assignments win, so VAR= with an empty value unsets a setting). Started
# with "${fn_cmd[@]}" ARG... &, $! is the program's own PID (env execs it).
fn_prepare() {
  local envs=()
  mapfile -t envs < <(fn_env "$@")
  fn_cmd=(env -i "${envs[@]}" "$fn")
}

# run_fn [VAR=VALUE...] -- ARG...: runs s3imgfs-lambda that way, in the foreground.
run_fn() {
  local assigns=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    assigns+=("$1")
    shift
  done
  [ $# -gt 0 ] && shift
  fn_prepare "${assigns[@]}"
  "${fn_cmd[@]}" "$@"
}

# s3_event BUCKET KEY SIZE ETAG [SOURCE]: an S3 event notification of one ObjectCreated:Put
# record (the key URL-encoded as S3 and MinIO do: '+' for a space; radosgw does not); SOURCE is
# aws:s3 (default), ceph:s3 or minio:s3.
s3_event() {
  "$PY" - "$@" <<'EOF'
import json, sys, urllib.parse
bucket, key, size, etag = sys.argv[1:5]
source = sys.argv[5] if len(sys.argv) > 5 else "aws:s3"
print(json.dumps({"Records": [{
    "eventVersion": "2.2" if source == "ceph:s3" else "2.1", "eventSource": source,
    "awsRegion": "us-east-1", "eventTime": "2026-01-01T00:00:00.000Z",
    "eventName": "ObjectCreated:Put",
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "test",
           "bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket},
           # radosgw sends keys as they are; S3 and MinIO URL-encode them
           "object": {"key": key if source == "ceph:s3" else urllib.parse.quote_plus(key, safe="/"),
                      "size": int(size),
                      "eTag": etag, "sequencer": "0A1B2C3D4E5F678901"}}}]}))
EOF
}

# etag_of BUCKET KEY: the object's ETag without quotes.
etag_of() {
  awsc s3api head-object --bucket "$1" --key "$2" --query ETag --output text | tr -d '"'
}

# json_get FILE EXPR: evaluates the Python expression EXPR with `d` = the JSON document in FILE
# (or, with FILE -, stdin) and prints the result (JSON for lists and objects).
json_get() {
  "$PY" -c '
import json, sys
src, expr = sys.argv[1], sys.argv[2]
d = json.load(sys.stdin if src == "-" else open(src, encoding="utf-8"))
v = eval(expr)
print(json.dumps(v) if isinstance(v, (list, dict)) else v)
' "$@"
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@" 2>/dev/null; do
    [ "$(now_ms)" -le "$deadline" ] || return 1
    sleep 0.2
  done
}

# At exit: the buckets and the scratch folder go (S3IMGFS_GWTEST_KEEP=1 keeps them).
remove_test_data() {
  if [ "${S3IMGFS_GWTEST_KEEP:-0}" = 1 ]; then
    echo "# S3IMGFS_GWTEST_KEEP=1: kept s3://$src, s3://$dst and $tmp" >&2
    return
  fi
  purge_bucket "$src"
  purge_bucket "$dst"
  rm -rf --one-file-system "$tmp"
}

# ---- the Runtime API stand-in (test_lambda_runtime.sh, tests/deploy/test_image.sh) ----------

api_pid=""
# start_api NAME ARG...: starts lambda_runtime_api.py (its calls go to $tmp/NAME.calls); sets
# api (host:port) and api_pid.
start_api() {
  local name=$1
  shift
  rm -f "$tmp/$name.port"
  "$PY" "$here/lambda_runtime_api.py" --out "$tmp/$name.calls" --port-file "$tmp/$name.port" \
    "$@" >"$tmp/$name.api.log" 2>&1 &
  api_pid=$!
  wait_for 10 test -s "$tmp/$name.port" || { diag "the Runtime API stand-in did not start"; return 1; }
  api=127.0.0.1:$(cat "$tmp/$name.port")
}

stop_api() {
  [ -z "$api_pid" ] || { kill "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; }
  api_pid=""
}

# calls NAME KIND: the calls of that kind, one JSON object per line.
calls() { grep -F "\"kind\": \"$2\"" "$tmp/$1.calls" || true; }
# call N of KIND in NAME, as one JSON line (N from 1).
call_n() { calls "$1" "$2" | sed -n "${3}p"; }

# show_output NAME: the last 30 lines of what the function printed in run NAME ($tmp/NAME.out).
show_output() {
  diag "output of the function, run $1 (last 30 lines):"
  tail -n 30 "$tmp/$1.out" | sed 's/^/#   | /'
}
