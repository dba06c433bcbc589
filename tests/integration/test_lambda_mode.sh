#!/usr/bin/env bash
# shellcheck disable=SC2119 # mount_fs's optional argument ("daemon") is not used here
# The gateway with [resize] mode = lambda against the real function, s3imgfs-lambda --serve:
#   1. the gateway invokes the function itself ([resize] lambda_function + lambda_endpoint, the
#      Invoke API path of --serve): cp of two photos (one key with spaces and non-ASCII) ->
#      uploaded, renditions made by the function, status done; a broken JPEG -> the function
#      makes nothing and the gateway says failed after lambda_timeout_seconds;
#   2. the store triggers the function (no lambda_function): the status stays "resizing" while
#      no renditions exist, and becomes done once the function made them (here the test POSTs
#      the upload's S3 event to the function, as a store would);
#   3. the whole pipeline: a radosgw bucket notification (topic with push-endpoint = the
#      function) -> the function -> renditions -> the gateway says done.
# Renditions are checked with the aws CLI and vipsheader, straight from radosgw.
#
# Usage: tests/integration/test_lambda_mode.sh PATH/TO/s3imgfs
#   (s3imgfs-lambda is taken from the same build: ../lambda/s3imgfs-lambda, or $S3IMGFS_LAMBDA)
# Env: as test_gateway.sh (S3IMGFS_TEST_ENDPOINT ...; S3IMGFS_GWTEST_KEEP=1 keeps the data).
set -euo pipefail

test_name=lmd
needed_tools=(vips vipsheader getfattr findmnt curl)
# shellcheck source=tests/integration/gateway_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway_setup.sh"
fn=${S3IMGFS_LAMBDA:-$(dirname "$fs")/../lambda/s3imgfs-lambda}
[ -x "$fn" ] || { echo "s3imgfs-lambda not found at $fn (set S3IMGFS_LAMBDA)" >&2; exit 1; }
fn=$(readlink -f "$fn")
t_start=$(date +%s)
topic=s3imgfs-lmd-$suffix
topic_rgw=arn:aws:sns:default::$topic
serve_pid=""
fn_log=$tmp/function.log

cleanup() {
  set +e
  cd /
  kill_fs
  # radosgw 16's persistent queues stall after a refused connection: the notification and the
  # topic go while the function still answers
  awsc s3api put-bucket-notification-configuration --bucket "$src" \
    --notification-configuration '{}' >/dev/null 2>&1
  awsc sns delete-topic --topic-arn "$topic_rgw" >/dev/null 2>&1
  [ -z "$serve_pid" ] || { kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; }
  remove_test_data
}
trap cleanup EXIT
trap 'exit 130' INT TERM

awsc s3api create-bucket --bucket "$src" >/dev/null
awsc s3api create-bucket --bucket "$dst" >/dev/null

# One config for both: the function reads [s3] and [resize]; the gateway everything.
cat >"$conf" <<EOF
; written by test_lambda_mode.sh
[s3]
endpoint = $endpoint
region = $region
path_style = true
source_bucket = $src
destination_bucket = $dst
access_key_id = $access_key
secret_access_key = $secret_key
[resize]
mode = lambda
sizes = thumb:100x100:cover, medium:320x320
; radosgw delivers a new persistent topic's first event after up to ~20 s (case 3)
lambda_timeout_seconds = 120
[gateway]
cache_dir = $tmp/cache
EOF
chmod 600 "$conf"

port=$(free_port)
fn_url=http://127.0.0.1:$port
# The function's environment: nothing of the test's own S3IMGFS_* variables.
env -i PATH="$PATH" HOME="$HOME" LC_ALL=C.UTF-8 VIPS_WARNING=0 \
  ${ASAN_OPTIONS:+ASAN_OPTIONS=$ASAN_OPTIONS} ${UBSAN_OPTIONS:+UBSAN_OPTIONS=$UBSAN_OPTIONS} \
  "$fn" --serve "127.0.0.1:$port" -c "$conf" >"$fn_log" 2>&1 </dev/null &
serve_pid=$!
deadline=$(($(now_ms) + 20000))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$fn_url/")" = 405 ]; do
  if [ "$(now_ms)" -gt "$deadline" ] || ! kill -0 "$serve_pid" 2>/dev/null; then
    echo "s3imgfs-lambda --serve did not start:" >&2
    cat "$fn_log" >&2
    exit 1
  fi
  sleep 0.1
done

data=$tmp/data
mkdir -p "$data"
make_photo "$data/a.jpg" 800 600
make_photo "$data/café b.jpg" 600 800
make_photo "$data/c.jpg" 640 480
make_photo "$data/d.jpg" 500 500
head -c 3000 "$data/a.jpg" >"$data/broken.jpg"

# renditions_ok KEY W H: thumb 100x100 and medium WxH of KEY exist (vipsheader).
renditions_ok() {
  rendition_is "thumb/$1" 100 100 && rendition_is "medium/$1" "$2" "$3"
}

# run_case_ FUNCTION: on a failure, the gateway's new log lines.
run_case_() {
  log_seen=$(wc -l <"$log")
  "$@" && return 0
  log_tail
  return 1
}

fn_tail() {
  diag "s3imgfs-lambda log (last 15 lines):"
  tail -n 15 "$fn_log" | sed 's/^/#   | /'
}

# ---- 1. the gateway invokes the function ----------------------------------------------------------

t_invoke() {
  mount_extra=(-o resize.lambda_function=s3imgfs-test -o "resize.lambda_endpoint=$fn_url"
    -o resize.lambda_timeout_seconds=10)
  mount_fs || return 1
  mkdir -p "$mnt/inv" || return 1
  cp "$data/a.jpg" "$data/café b.jpg" "$mnt/inv/" || { diag "cp failed"; return 1; }
  wait_status "$mnt/inv/a.jpg" "done" || { fn_tail; return 1; }
  wait_status "$mnt/inv/café b.jpg" "done" || { fn_tail; return 1; }
  renditions_ok inv/a.jpg 320 240 || return 1
  renditions_ok "inv/café b.jpg" 240 320 || return 1
  renditions_xattr_is "$mnt/inv/a.jpg" thumb/inv/a.jpg medium/inv/a.jpg || return 1
  grep -q 'inv/a.jpg: function s3imgfs-test invoked' "$log" ||
    { diag "no 'function s3imgfs-test invoked' line in the gateway's log"; return 1; }
  [ -s "$mnt/resized/medium/inv/a.jpg" ] || { diag "resized/medium/inv/a.jpg is not shown"; return 1; }
}

t_invoke_broken() {
  cp "$data/broken.jpg" "$mnt/inv/" || return 1
  sleep 2
  expect "status of a broken JPEG 2 s after cp" resizing "$(status_of "$mnt/inv/broken.jpg")" || return 1
  wait_status "$mnt/inv/broken.jpg" failed 30 || return 1
  local st
  st=$(status_of "$mnt/inv/broken.jpg")
  [[ $st == *"no renditions within 10 s"* ]] || { diag "status: $st"; return 1; }
  grep -q 'truncated' "$fn_log" || { diag "the function did not report the truncated JPEG"; fn_tail; return 1; }
}

# ---- 2. the store triggers the function: done once the renditions exist ------------------------

t_triggered() {
  unmount_fs || return 1
  mount_extra=()
  mount_fs || return 1
  mkdir -p "$mnt/trg" || return 1
  cp "$data/c.jpg" "$mnt/trg/" || return 1
  wait_status "$mnt/trg/c.jpg" resizing || return 1
  sleep 3 # nothing makes the renditions yet: still resizing
  expect "status while no function ran" resizing "$(status_of "$mnt/trg/c.jpg")" || return 1
  local etag size
  etag=$(awsc s3api head-object --bucket "$src" --key trg/c.jpg --query ETag --output text | tr -d '"')
  size=$(stat -c %s "$data/c.jpg")
  "$PY" - "$src" trg/c.jpg "$size" "$etag" >"$tmp/event.json" <<'PYEOF'
import json, sys
bucket, key, size, etag = sys.argv[1:]
print(json.dumps({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
    "awsRegion": "us-east-1", "eventName": "ObjectCreated:Put",
    "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": int(size), "eTag": etag}}}]}))
PYEOF
  local code
  code=$(curl -s -o "$tmp/event.out" -w '%{http_code}' --data-binary "@$tmp/event.json" "$fn_url/")
  expect "the function's answer to the event" 200 "$code" || { cat "$tmp/event.out"; return 1; }
  local t0
  t0=$(now_ms)
  wait_status "$mnt/trg/c.jpg" "done" 40 || return 1
  diag "done $(($(now_ms) - t0)) ms after the function answered (checks after 1, 2, 4 ... 30 s)"
  renditions_ok trg/c.jpg 320 240
}

# ---- 3. radosgw's notification triggers the function --------------------------------------------

t_pipeline() {
  awsc sns create-topic --name "$topic" --attributes "push-endpoint=$fn_url/,persistent=true" \
    >/dev/null 2>"$tmp/aws.err" || { diag "create-topic: $(head -c 300 "$tmp/aws.err")"; return 1; }
  awsc s3api put-bucket-notification-configuration --bucket "$src" --notification-configuration \
    "{\"TopicConfigurations\": [{\"Id\": \"s3imgfs\", \"TopicArn\": \"$topic_rgw\", \"Events\": [\"s3:ObjectCreated:*\"]}]}" \
    2>"$tmp/aws.err" || { diag "put-bucket-notification-configuration: $(head -c 300 "$tmp/aws.err")"; return 1; }
  mkdir -p "$mnt/pipe" || return 1
  cp "$data/d.jpg" "$mnt/pipe/" || return 1
  # radosgw delivers a new persistent topic's first event after up to ~20 s
  wait_status "$mnt/pipe/d.jpg" "done" 90 || { fn_tail; return 1; }
  renditions_ok pipe/d.jpg 320 320
}

case_ "mode = lambda, lambda_function: the gateway invokes the function; two photos end done with its renditions" run_case_ t_invoke
case_ "mode = lambda: a broken JPEG is 'resizing', then failed after lambda_timeout_seconds (the function made nothing)" run_case_ t_invoke_broken
case_ "mode = lambda, store-triggered: 'resizing' until the function made the renditions, then done" run_case_ t_triggered
case_ "the pipeline: radosgw bucket notification -> s3imgfs-lambda --serve -> renditions -> the gateway says done" run_case_ t_pipeline
if is_mounted; then unmount_fs || true; fi
case_ "no sanitizer report from the gateway (ASan/UBSan builds)" no_sanitizer_report
fn_sanitizer() {
  ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$fn_log" && return 0
  grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$fn_log" | head -30 | sed 's/^/#   | /'
  return 1
}
awsc s3api put-bucket-notification-configuration --bucket "$src" --notification-configuration '{}' \
  >/dev/null 2>&1 || true
awsc sns delete-topic --topic-arn "$topic_rgw" >/dev/null 2>&1 || true
{ kill -TERM "$serve_pid" && wait "$serve_pid"; } || true
serve_pid=""
case_ "no sanitizer report from the function" fn_sanitizer
if [ "$failed" != 0 ] && [ -s "$log" ]; then
  diag "last lines of the s3imgfs log ($log):"
  tail -n 20 "$log" | sed 's/^/#   | /'
fi
diag "run time: $(($(date +%s) - t_start)) s"
finish
