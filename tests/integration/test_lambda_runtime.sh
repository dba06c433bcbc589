#!/usr/bin/env bash
# s3imgfs-lambda as a Lambda custom runtime, against a local stand-in for the Runtime API
# (lambda_runtime_api.py) and the real radosgw:
#   - an S3 event for a real JPEG: the response is posted with the per-record JSON, the
#     renditions are in the destination bucket (dimensions checked with vipsheader), the trace
#     id of the invocation reaches its log line, EMF metric lines follow, every log line is JSON;
#   - an unparseable event and a JSON document that is not an S3 event: an error of type
#     S3imgfs.InvalidEvent is posted and the runtime goes on with the next invocation;
#   - an event whose deadline has passed: an error of type S3imgfs.RetryableFailure saying the
#     record was not started, and nothing written;
#   - a bad configuration (S3IMGFS_SIZES=garbage): /runtime/init/error, exit status 1;
#   - the Runtime API answering 500 to a post, or not listening at all: the runtime exits (1);
#   - no AWS_LAMBDA_RUNTIME_API: a usage error (2); --event FILE for local tries.
#
# Usage: tests/integration/test_lambda_runtime.sh PATH/TO/s3imgfs-lambda
# Env: S3IMGFS_TEST_ENDPOINT, S3IMGFS_TEST_ACCESS_KEY, S3IMGFS_TEST_SECRET_KEY (radosgw, from
#      scripts/servers/rgw-start.sh's env.sh). Without them the test is skipped (77), or fails
#      when S3IMGFS_REQUIRE_SERVERS=1. S3IMGFS_GWTEST_KEEP=1 keeps the buckets and scratch folder.
set -euo pipefail

test_name=lrt
needed_tools=(vips vipsheader timeout)
# shellcheck source=tests/integration/lambda_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/lambda_setup.sh"

cleanup() {
  set +e
  [ -z "$api_pid" ] || { kill "$api_pid" 2>/dev/null; wait "$api_pid" 2>/dev/null; }
  remove_test_data
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers -----------------------------------------------------------------------------------

# run_runtime NAME [VAR=VALUE...]: runs the function against $api until it exits (at most 120
# s); its stdout and stderr go to $tmp/NAME.out, the exit status to fn_rc.
run_runtime() {
  local name=$1
  shift
  fn_rc=0
  fn_prepare AWS_LAMBDA_RUNTIME_API="$api" "$@"
  "${fn_cmd[@]}" >"$tmp/$name.out" 2>&1 </dev/null &
  local pid=$!
  local deadline=$(($(now_ms) + 120000))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
      diag "s3imgfs-lambda still runs after 120 s: killing it"
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait "$pid" || fn_rc=$?
}

# ---- data ---------------------------------------------------------------------------------------

awsc s3api create-bucket --bucket "$src" >/dev/null
awsc s3api create-bucket --bucket "$dst" >/dev/null
make_photo "$tmp/photo.jpg" 800 600
make_photo "$tmp/late.jpg" 400 300
key1="photos/red flower ü.jpg"
key2="photos/late.jpg"
awsc s3 cp --quiet "$tmp/photo.jpg" "s3://$src/$key1"
awsc s3 cp --quiet "$tmp/late.jpg" "s3://$src/$key2"
etag1=$(etag_of "$src" "$key1")
etag2=$(etag_of "$src" "$key2")
size1=$(stat -c %s "$tmp/photo.jpg")
size2=$(stat -c %s "$tmp/late.jpg")
event1=$(s3_event "$src" "$key1" "$size1" "$etag1")
event2=$(s3_event "$src" "$key2" "$size2" "$etag2")
trace1="Root=1-6700aa00-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"

# ---- one run: good, unparseable, not S3, late, and the good one again ---------------------------

events=$("$PY" - "$event1" "$event2" "$trace1" <<'EOF'
import json, sys
e1, e2, trace = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(json.dumps([
    {"__event": e1, "__trace_id": trace, "__request_id": "req-good"},
    {"__event": "this is {not JSON", "__request_id": "req-garbage", "__trace_id": None},
    {"__event": {"hello": "world"}, "__request_id": "req-not-s3"},
    {"__event": e2, "__request_id": "req-late", "__deadline_ms": -1000},
    {"__event": e1, "__request_id": "req-again"},
]))
EOF
)
start_api main --events-json "$events" --idle-end 1
run_runtime main
stop_api

exits_on_500() {
  expect "exit status after the Runtime API answered 500 to next" 1 "$fn_rc" || { show_output main; return 1; }
  expect "calls to invocation/next (5 events, then the 500)" 6 "$(calls main next | count_lines)"
}
case_ "the runtime handles every queued event, then exits (1) on the Runtime API's 500" exits_on_500

good_response() {
  local line
  line=$(call_n main response 1)
  [ -n "$line" ] || { diag "no response was posted"; show_output main; return 1; }
  json_get - 'd["request_id"]' <<<"$line" >"$tmp/rid"
  expect "request id of the first response" req-good "$(cat "$tmp/rid")" || return 1
  json_get - 'd["body"]' <<<"$line" >"$tmp/resp1.json"
  expect "done records" 1 "$(json_get "$tmp/resp1.json" 'd["done"]')" &&
    expect "failed records" 0 "$(json_get "$tmp/resp1.json" 'd["failed"]')" &&
    expect "record key" "$key1" "$(json_get "$tmp/resp1.json" 'd["records"][0]["key"]')" &&
    expect "record status" "done" "$(json_get "$tmp/resp1.json" 'd["records"][0]["status"]')" &&
    expect "renditions listed" 2 "$(json_get "$tmp/resp1.json" 'len(d["records"][0]["renditions"])')"
}
case_ "an S3 event: the response is posted with the per-record JSON" good_response

renditions_made() {
  rendition_is "thumb/$key1" 100 100 && rendition_is "medium/$key1" 320 240
}
case_ "an S3 event: the renditions are in the destination bucket (vipsheader)" renditions_made

trace_logged() {
  local line
  line=$(grep -F '"request_id":"req-good"' "$tmp/main.out" | grep -F invocation | head -n 1 || true)
  [ -n "$line" ] || { diag "no log line about the invocation req-good"; show_output main; return 1; }
  grep -qF -- "$trace1" <<<"$line" || { diag "the trace id is not in: $line"; return 1; }
  # the invocation without a trace id says so (and does not inherit the last one)
  line=$(grep -F '"request_id":"req-garbage"' "$tmp/main.out" | grep -F invocation | head -n 1 || true)
  grep -qF "trace none" <<<"$line" || { diag "req-garbage's log line does not say 'trace none': $line"; return 1; }
}
case_ "the invocation's trace id (Lambda-Runtime-Trace-Id) is in its log line" trace_logged

invalid_event() { # REQUEST_ID
  local line
  line=$(calls main error | grep -F "\"request_id\": \"$1\"" || true)
  [ -n "$line" ] || { diag "no error posted for $1"; return 1; }
  json_get - 'd["body"]' <<<"$line" >"$tmp/err.json"
  expect "$1 errorType" S3imgfs.InvalidEvent "$(json_get "$tmp/err.json" 'd["errorType"]')" &&
    expect "$1 stackTrace" "[]" "$(json_get "$tmp/err.json" 'd["stackTrace"]')" &&
    expect "$1 Lambda-Runtime-Function-Error-Type" S3imgfs.InvalidEvent \
      "$(json_get - '{k.lower(): v for k, v in d["headers"].items()}["lambda-runtime-function-error-type"]' <<<"$line")" ||
    return 1
  grep -qF "will not parse on a retry" <(json_get "$tmp/err.json" 'd["errorMessage"]') ||
    { diag "$1 errorMessage does not say a retry is useless: $(json_get "$tmp/err.json" 'd["errorMessage"]')"; return 1; }
}
case_ "an unparseable event: error S3imgfs.InvalidEvent posted" invalid_event req-garbage
case_ "a JSON document that is not an S3 event: error S3imgfs.InvalidEvent posted" invalid_event req-not-s3

late_event() {
  local line msg
  line=$(calls main error | grep -F '"request_id": "req-late"' || true)
  [ -n "$line" ] || { diag "no error posted for req-late"; show_output main; return 1; }
  json_get - 'd["body"]' <<<"$line" >"$tmp/late.json"
  expect "errorType" S3imgfs.RetryableFailure "$(json_get "$tmp/late.json" 'd["errorType"]')" || return 1
  msg=$(json_get "$tmp/late.json" 'd["errorMessage"]')
  grep -qF "$key2: not started" <<<"$msg" ||
    { diag "errorMessage does not name the record not started: $msg"; return 1; }
  lacks_key "$dst" "thumb/$key2"
}
case_ "an event past its deadline: error S3imgfs.RetryableFailure, record not started, nothing written" late_event

goes_on() {
  local line
  line=$(calls main response | grep -F '"request_id": "req-again"' || true)
  [ -n "$line" ] || { diag "no response for req-again (after the bad events)"; show_output main; return 1; }
  json_get - 'd["body"]' <<<"$line" >"$tmp/again.json"
  expect "failed records of the repeated event" 0 "$(json_get "$tmp/again.json" 'd["failed"]')"
}
case_ "after bad events the runtime goes on: the repeated event is answered" goes_on

emf_lines() {
  "$PY" - "$tmp/main.out" "$src" <<'EOF'
import json, sys
emf = bad = 0
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        d = json.loads(line)
    except ValueError:
        bad += 1
        print(f"#   not JSON: {line.strip()[:200]}")
        continue
    if "_aws" in d:
        ns = {m["Namespace"] for m in d["_aws"]["CloudWatchMetrics"]}
        if ns != {"s3imgfs"} or d.get("Service") != sys.argv[2]:
            print(f"#   EMF line with namespace {ns} and Service {d.get('Service')}")
            bad += 1
        emf += 1
if emf == 0:
    print("#   no EMF line (\"_aws\") in the output")
sys.exit(1 if bad or emf == 0 else 0)
EOF
}
case_ "every output line is JSON; EMF lines (namespace s3imgfs, Service = source bucket) follow the invocations" emf_lines

# ---- a bad configuration --------------------------------------------------------------------------

start_api badconf --idle-end 1
run_runtime badconf S3IMGFS_SIZES=garbage
stop_api
bad_config() {
  local line
  expect "exit status" 1 "$fn_rc" || { show_output badconf; return 1; }
  line=$(call_n badconf init_error 1)
  [ -n "$line" ] || { diag "no init error posted"; show_output badconf; return 1; }
  json_get - 'd["body"]' <<<"$line" >"$tmp/init.json"
  expect "errorType" S3imgfs.InvalidConfig "$(json_get "$tmp/init.json" 'd["errorType"]')" || return 1
  grep -qF S3IMGFS_SIZES <(json_get "$tmp/init.json" 'd["errorMessage"]') ||
    { diag "errorMessage does not name S3IMGFS_SIZES: $(json_get "$tmp/init.json" 'd["errorMessage"]')"; return 1; }
  expect "calls to invocation/next" 0 "$(calls badconf next | count_lines)"
}
case_ "S3IMGFS_SIZES=garbage: /runtime/init/error (S3imgfs.InvalidConfig) and exit status 1" bad_config

# ---- the Runtime API answering 500 to a post, or not there ------------------------------------------

events=$("$PY" - "$event1" <<'EOF'
import json, sys
e = json.loads(sys.argv[1])
print(json.dumps([{"__event": e, "__request_id": "req-500", "__post_status": 500},
                  {"__event": e, "__request_id": "req-never"}]))
EOF
)
start_api post500 --events-json "$events" --idle-end 1
run_runtime post500
stop_api
exits_on_post_500() {
  expect "exit status" 1 "$fn_rc" || { show_output post500; return 1; }
  expect "calls to invocation/next" 1 "$(calls post500 next | count_lines)" &&
    expect "responses posted" 1 "$(calls post500 response | count_lines)" || return 1
  grep -qF "answered 500" "$tmp/post500.out" || { diag "no log line about the 500"; show_output post500; return 1; }
}
case_ "a 500 answered to the response: the runtime exits (1) without taking the next event" exits_on_post_500

no_api() {
  api=127.0.0.1:$(free_port)
  local t0
  t0=$(now_ms)
  run_runtime noapi
  expect "exit status" 1 "$fn_rc" || { show_output noapi; return 1; }
  [ $(($(now_ms) - t0)) -lt 30000 ] || { diag "it took $(($(now_ms) - t0)) ms to give up"; return 1; }
  grep -qF "cannot get the next invocation" "$tmp/noapi.out" ||
    { diag "no log line says the Runtime API cannot be reached"; show_output noapi; return 1; }
}
case_ "nothing listens at AWS_LAMBDA_RUNTIME_API: exit status 1 and a log line" no_api

not_lambda() {
  local rc=0
  run_fn -- >"$tmp/notlambda.out" 2>&1 || rc=$?
  expect "exit status without AWS_LAMBDA_RUNTIME_API" 2 "$rc" || return 1
  grep -qF "AWS_LAMBDA_RUNTIME_API is not set" "$tmp/notlambda.out" ||
    { diag "unexpected message: $(head -c 300 "$tmp/notlambda.out")"; return 1; }
  rc=0
  run_fn -- --help >"$tmp/help.out" 2>&1 || rc=$?
  expect "--help exit status" 0 "$rc" && grep -qF -- "--serve" "$tmp/help.out" || return 1
  rc=0
  run_fn -- --version >"$tmp/version.out" 2>&1 || rc=$?
  expect "--version exit status" 0 "$rc" && grep -q "^s3imgfs-lambda [0-9]" "$tmp/version.out" || return 1
  rc=0
  run_fn -- --bogus >/dev/null 2>&1 || rc=$?
  expect "unknown option exit status" 2 "$rc"
}
case_ "no AWS_LAMBDA_RUNTIME_API: usage error (2); --help, --version" not_lambda

# ---- --event FILE -----------------------------------------------------------------------------------

event_mode() {
  local rc=0
  printf '%s\n' "$event2" >"$tmp/event2.json"
  run_fn -- --event "$tmp/event2.json" >"$tmp/event-mode.out" 2>"$tmp/event-mode.err" || rc=$?
  expect "--event exit status" 0 "$rc" || { diag "$(head -c 600 "$tmp/event-mode.err")"; return 1; }
  expect "done records printed" 1 "$(json_get "$tmp/event-mode.out" 'd["done"]')" &&
    rendition_is "thumb/$key2" 100 100 || return 1
  # from standard input; a corrupt JPEG is a failed record (1)
  rc=0
  { printf '\xff\xd8\xff\xe0'; head -c 3000 /dev/urandom; } >"$tmp/corrupt.jpg"
  awsc s3 cp --quiet "$tmp/corrupt.jpg" "s3://$src/photos/corrupt.jpg" || return 1
  s3_event "$src" photos/corrupt.jpg 3004 "$(etag_of "$src" photos/corrupt.jpg)" |
    run_fn -- --event - >"$tmp/event-corrupt.out" 2>"$tmp/event-corrupt.err" || rc=$?
  expect "--event exit status for a corrupt JPEG" 1 "$rc" &&
    expect "failed records printed" 1 "$(json_get "$tmp/event-corrupt.out" 'd["failed"]')" || return 1
  rc=0
  echo 'not an event' | run_fn -- --event - >/dev/null 2>"$tmp/event-bad.err" || rc=$?
  expect "--event exit status for a document that is not an event" 1 "$rc" || return 1
  rc=0
  run_fn -- --event "$tmp/no-such-file.json" >/dev/null 2>&1 || rc=$?
  expect "--event exit status for a missing file" 2 "$rc"
}
case_ "--event FILE|-: prints the response; exit 0, 1 (a record failed / not an event), 2 (no file)" event_mode

finish
