#!/usr/bin/env bash
# s3imgfs-lambda --serve behind radosgw's bucket notifications, on the real servers:
#   - the HTTP surface: GET -> 405, another path -> 404, a body over 1 MiB -> 413, a body that
#     is not an S3 event -> 400 with a JSON error;
#   - a radosgw topic (push-endpoint = the server, persistent) and the source bucket's
#     notification for s3:ObjectCreated:*: a JPEG uploaded with the aws CLI under a key with
#     spaces, non-ASCII, '+' and '%' (radosgw does not URL-encode keys) gets its renditions in the
#     destination bucket within seconds (dimensions checked with vipsheader);
#   - the same bytes uploaded again (same ETag): handled, but no rendition written again (the
#     destination bucket is versioned: one version per rendition key);
#   - SNS notices through a private fauxqs: one per distinct upload, none for the repeat;
#   - renditions written to the destination bucket trigger nothing (it has no notification), and
#     an event for a destination key POSTed by hand is answered "skipped" (destination);
#   - a MinIO-shaped event (eventSource minio:s3, URL-encoded key) for the same object;
#   - a transient failure (the S3 endpoint down) is answered 500 with the JSON, so that a sender
#     retries; SIGTERM stops the server cleanly (exit status 0).
#
# Usage: tests/integration/test_lambda_serve.sh PATH/TO/s3imgfs-lambda
# Env: S3IMGFS_TEST_ENDPOINT, S3IMGFS_TEST_ACCESS_KEY, S3IMGFS_TEST_SECRET_KEY (radosgw, from
#      scripts/servers/rgw-start.sh's env.sh). Without them the test is skipped (77), or fails
#      when S3IMGFS_REQUIRE_SERVERS=1. S3IMGFS_GWTEST_KEEP=1 keeps the buckets and scratch folder.
set -euo pipefail

test_name=lsv
needed_tools=(vips vipsheader node)
# shellcheck source=tests/integration/lambda_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/lambda_setup.sh"
servers=$(cd "$here/../../scripts/servers" && pwd)
fq="$PY $here/fauxqs_client.py"
nstate=$tmp/servers
topic=s3imgfs-lsv-$suffix
topic_rgw=arn:aws:sns:default::$topic # radosgw's ARN form (zonegroup "default", no account)
serve_pid=""
serve2_pid=""

cleanup() {
  set +e
  # the notification and the topic go first, while the server still answers (radosgw 16's
  # persistent queues stall after a refused connection)
  awsc s3api put-bucket-notification-configuration --bucket "$src" \
    --notification-configuration '{}' >/dev/null 2>&1
  awsc sns delete-topic --topic-arn "$topic_rgw" >/dev/null 2>&1
  for p in "$serve_pid" "$serve2_pid"; do
    [ -z "$p" ] || { kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; }
  done
  "$servers/fauxqs-stop.sh" "$nstate" >/dev/null 2>&1
  remove_test_data
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers, buckets, configuration, data ---------------------------------------------------

sns_port=$(free_port)
"$servers/fauxqs-start.sh" "$nstate" "$sns_port" >/dev/null
sns=http://127.0.0.1:$sns_port
read -r topic_arn queue_url < <($fq setup "$sns" s3imgfs-notices notices-q)

awsc s3api create-bucket --bucket "$src" >/dev/null
awsc s3api create-bucket --bucket "$dst" >/dev/null
awsc s3api put-bucket-versioning --bucket "$dst" --versioning-configuration Status=Enabled

# write_conf FILE ENDPOINT: the INI file of a self-hosted function.
write_conf() {
  cat >"$1" <<EOF
; written by test_lambda_serve.sh
[s3]
endpoint = $2
region = $region
path_style = true
source_bucket = $src
destination_bucket = $dst
access_key_id = $access_key
secret_access_key = $secret_key
[resize]
sizes = thumb:100x100:cover, medium:320x320
[notify]
sns_topic_arn = $topic_arn
sns_endpoint = $sns
EOF
  chmod 600 "$1"
}
conf=$tmp/config.ini
write_conf "$conf" "$endpoint"

make_photo "$tmp/photo.jpg" 800 600
make_photo "$tmp/other.jpg" 640 480
key1="trips/été 2026/a b+c%20 ☕.jpg"
key2="trips/other.jpg"
log=$tmp/serve.log

port=$(free_port)
url=http://127.0.0.1:$port/
fn_prepare
"${fn_cmd[@]}" --serve "127.0.0.1:$port" -c "$conf" >"$log" 2>&1 </dev/null &
serve_pid=$!
# serving URL: the server answers there (GET is 405).
serving() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 405 ]; }
if ! wait_for 20 serving "$url"; then
  echo "s3imgfs-lambda --serve did not answer on $url:" >&2
  cat "$log" >&2
  exit 1
fi

# post_event BODY-FILE OUT: POSTs the file to the server; prints the HTTP status, the body goes
# to OUT.
post_event() {
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$1" "$url"
}
# handled: how many events the server answered so far (its log lines).
handled() { grep -c 'event from .* handled' "$log" || true; }
handled_more() { [ "$(handled)" -gt "$1" ]; }
show_log() {
  diag "s3imgfs-lambda --serve log (last 20 lines):"
  tail -n 20 "$log" | sed 's/^/#   | /'
}

# ---- the HTTP surface ------------------------------------------------------------------------------

http_surface() {
  local code
  code=$(curl -s -o "$tmp/get.out" -D "$tmp/get.h" -w '%{http_code}' "$url")
  expect "GET /" 405 "$code" || return 1
  grep -qi '^Allow: POST' "$tmp/get.h" || { diag "no 'Allow: POST' in the 405 answer"; return 1; }
  code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary '{}' "${url}other")
  expect "POST /other" 404 "$code" || return 1
  head -c $((2 << 20)) /dev/zero | tr '\0' ' ' >"$tmp/big.json"
  code=$(post_event "$tmp/big.json" "$tmp/big.out")
  expect "POST of 2 MiB" 413 "$code" || return 1
  printf 'this is {not JSON' >"$tmp/garbage.json"
  code=$(post_event "$tmp/garbage.json" "$tmp/garbage.out")
  expect "POST of a body that is not JSON" 400 "$code" || return 1
  json_get "$tmp/garbage.out" 'd["error"]' >/dev/null ||
    { diag "the 400 answer is not {\"error\": ...}: $(head -c 300 "$tmp/garbage.out")"; return 1; }
  printf '{"hello": "world"}' >"$tmp/not-s3.json"
  code=$(post_event "$tmp/not-s3.json" "$tmp/not-s3.out")
  expect "POST of a JSON document that is not an S3 event" 400 "$code"
}
case_ "GET -> 405, another path -> 404, over 1 MiB -> 413, not an S3 event -> 400 (JSON error)" http_surface

# ---- radosgw's notifications -------------------------------------------------------------------------

notifications_set() {
  awsc sns create-topic --name "$topic" \
    --attributes "push-endpoint=$url,persistent=true" >"$tmp/topic.json" 2>"$tmp/aws.err" ||
    { diag "sns create-topic failed: $(head -c 300 "$tmp/aws.err")"; return 1; }
  expect "topic ARN" "$topic_rgw" "$(json_get "$tmp/topic.json" 'd["TopicArn"]')" || return 1
  awsc s3api put-bucket-notification-configuration --bucket "$src" --notification-configuration \
    "{\"TopicConfigurations\": [{\"Id\": \"s3imgfs\", \"TopicArn\": \"$topic_rgw\", \"Events\": [\"s3:ObjectCreated:*\"]}]}" \
    2>"$tmp/aws.err" ||
    { diag "put-bucket-notification-configuration failed: $(head -c 300 "$tmp/aws.err")"; return 1; }
}
case_ "a radosgw topic (push-endpoint, persistent) and the source bucket's notification" notifications_set

renditions_of() { # KEY: both renditions listed
  local keys
  keys=$(aws_keys "$dst" 2>/dev/null) || return 1
  grep -qxF -- "thumb/$1" <<<"$keys" && grep -qxF -- "medium/$1" <<<"$keys"
}

upload_made() {
  local t0
  t0=$(now_ms)
  awsc s3 cp --quiet "$tmp/photo.jpg" "s3://$src/$key1" || return 1
  if ! wait_for 60 renditions_of "$key1"; then
    diag "no renditions of s3://$src/$key1 in s3://$dst within 60 s"
    show_log
    return 1
  fi
  diag "renditions listed $(($(now_ms) - t0)) ms after the upload began"
  rendition_is "thumb/$key1" 100 100 && rendition_is "medium/$key1" 320 240
}
case_ "a JPEG uploaded with the aws CLI (key with spaces, non-ASCII, '+', '%'): renditions within seconds" upload_made

same_again() {
  local before history
  before=$(handled)
  awsc s3 cp --quiet "$tmp/photo.jpg" "s3://$src/$key1" || return 1
  if ! wait_for 60 handled_more "$before"; then
    diag "the repeated upload's event was not handled within 60 s"
    show_log
    return 1
  fi
  history=$(aws_put_history "$dst") || return 1
  expect "versions of thumb/$key1" 1 "$(grep -cF "thumb/$key1"$'\t' <<<"$history" || true)" &&
    expect "versions of medium/$key1" 1 "$(grep -cF "medium/$key1"$'\t' <<<"$history" || true)" &&
    expect "versions in the destination bucket" 2 "$(count_lines <<<"$history")"
}
case_ "the same bytes again (same ETag): handled, no rendition written again (one version each)" same_again

second_upload() {
  awsc s3 cp --quiet "$tmp/other.jpg" "s3://$src/$key2" || return 1
  wait_for 60 renditions_of "$key2" || { diag "no renditions of $key2 within 60 s"; show_log; return 1; }
  rendition_is "medium/$key2" 320 240
}
case_ "another upload: its renditions too" second_upload

sns_notices() {
  local got keys
  got=$($fq receive "$sns" "$queue_url" "$tmp/sns.jsonl" 2 30)
  expect "SNS notices for 2 distinct uploads (and a repeat)" 2 "$got" || { show_log; return 1; }
  got=$($fq receive "$sns" "$queue_url" "$tmp/sns.jsonl" 0 4)
  expect "more SNS notices" 0 "$got" || return 1
  keys=$("$PY" -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    m = json.loads(json.loads(line)["Message"])
    m = json.loads(m["default"]) if "default" in m else m  # the whole structure reached SQS
    print(m["key"])
' "$tmp/sns.jsonl" | LC_ALL=C sort)
  expect "keys announced" "$(printf '%s\n' "$key1" "$key2" | LC_ALL=C sort)" "$keys"
}
case_ "SNS (fauxqs): one notice per distinct upload, none for the repeat" sns_notices

no_recursion() {
  local n code
  awsc s3api get-bucket-notification-configuration --bucket "$dst" --output json >"$tmp/dst-notif.json" 2>/dev/null || true
  n=$("$PY" -c 'import json,sys; t=open(sys.argv[1]).read().strip(); print(len((json.loads(t) if t else {}).get("TopicConfigurations") or []))' "$tmp/dst-notif.json")
  expect "notifications on the destination bucket" 0 "$n" || return 1
  # three uploads to the source bucket were handled; the four renditions written caused nothing
  expect "events handled from radosgw" 3 "$(handled)" || { show_log; return 1; }
  s3_event "$dst" "thumb/$key1" 1000 0123456789abcdef0123456789abcdef ceph:s3 >"$tmp/dst-event.json"
  code=$(post_event "$tmp/dst-event.json" "$tmp/dst-event.out")
  expect "answer to an event for a destination key" 200 "$code" &&
    expect "record status" skipped "$(json_get "$tmp/dst-event.out" 'd["records"][0]["status"]')" || return 1
  grep -qF destination <(json_get "$tmp/dst-event.out" 'd["records"][0]["reason"]') ||
    { diag "the reason does not say destination: $(json_get "$tmp/dst-event.out" 'd["records"][0]["reason"]')"; return 1; }
  expect "versions in the destination bucket" 4 "$(aws_put_history "$dst" | count_lines)"
}
case_ "renditions trigger nothing; an event for a destination key is skipped (destination)" no_recursion

minio_event() {
  local code
  s3_event "$src" "$key1" "$(stat -c %s "$tmp/photo.jpg")" "$(etag_of "$src" "$key1")" minio:s3 \
    >"$tmp/minio-event.json"
  code=$(post_event "$tmp/minio-event.json" "$tmp/minio-event.out")
  expect "answer" 200 "$code" &&
    expect "record key (decoded)" "$key1" "$(json_get "$tmp/minio-event.out" 'd["records"][0]["key"]')" &&
    expect "record status (renditions current)" skipped "$(json_get "$tmp/minio-event.out" 'd["records"][0]["status"]')"
}
case_ "a MinIO-shaped event (URL-encoded key) names the same object" minio_event

transient_500() {
  local code port2 url2
  write_conf "$tmp/dead.ini" "http://127.0.0.1:$(free_port)"
  port2=$(free_port)
  url2=http://127.0.0.1:$port2/
  fn_prepare
  "${fn_cmd[@]}" --serve "127.0.0.1:$port2" -c "$tmp/dead.ini" >"$tmp/serve2.log" 2>&1 </dev/null &
  serve2_pid=$!
  wait_for 20 serving "$url2" ||
    { diag "the second server did not start: $(head -c 300 "$tmp/serve2.log")"; return 1; }
  s3_event "$src" "$key2" 1000 0123456789abcdef0123456789abcdef ceph:s3 >"$tmp/e2.json"
  code=$(curl -s -o "$tmp/e2.out" -w '%{http_code}' -m 120 --data-binary "@$tmp/e2.json" "$url2")
  expect "answer while S3 cannot be reached" 500 "$code" &&
    expect "failed records" 1 "$(json_get "$tmp/e2.out" 'd["failed"]')" &&
    expect "retry" True "$(json_get "$tmp/e2.out" 'd["retry"]')" || return 1
  kill "$serve2_pid"
  wait "$serve2_pid" || { diag "the second server exited $? on SIGTERM"; return 1; }
  serve2_pid=""
}
case_ "S3 down (a transient failure): 500 with the JSON, so the sender retries" transient_500

stops_cleanly() {
  # the notification goes before the server (radosgw 16 stalls on a refused connection)
  awsc s3api put-bucket-notification-configuration --bucket "$src" \
    --notification-configuration '{}' >/dev/null 2>&1 || true
  awsc sns delete-topic --topic-arn "$topic_rgw" >/dev/null 2>&1 || true
  local rc=0
  kill -TERM "$serve_pid"
  wait "$serve_pid" || rc=$?
  serve_pid=""
  expect "exit status after SIGTERM" 0 "$rc" || { show_log; return 1; }
  grep -q "stopped serving" "$log" || { diag "no 'stopped serving' line"; show_log; return 1; }
}
case_ "SIGTERM: the server stops cleanly (exit status 0)" stops_cleanly

finish
