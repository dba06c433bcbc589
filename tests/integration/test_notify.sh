#!/usr/bin/env bash
# shellcheck disable=SC2119 # mount_fs's optional argument ("daemon") is not used here
# Notices and monitoring of the s3imgfs gateway, on a real mount and real servers:
#   - SNS: fauxqs, with an SQS queue subscribed to the topic: each processed file (images, a
#     plain file, a broken image) gives one notice, checked for its subject, its three bodies
#     (MessageStructure=json) and its attributes; the rendition sizes and dimensions it reports
#     are checked against the destination bucket (aws CLI, vipsheader);
#   - webhook: a receiver (scripts/servers/webhook-start.sh) that verifies the HMAC signature;
#   - e-mail: aiosmtpd storing the mails in a Maildir, read back with Python's email module;
#   - SNS down: uploads and resizes go on, the other sinks get their notices, and the SNS
#     notices arrive once it is back; notices still queued at unmount are sent by the next mount;
#   - digest mode: 100 files in one window give one notice with the right counts;
#   - .s3imgfs/metrics parsed as Prometheus text (python3-prometheus-client), counters compared
#     with what the test did; [log] format = json (every line parses, lines about a file carry
#     its key and the notice's request id), CloudWatch EMF lines, SIGHUP reopening the log file.
# The servers are private to this test (free ports, its own state folder).
#
# Usage: tests/integration/test_notify.sh PATH/TO/s3imgfs
# Env: S3IMGFS_TEST_ENDPOINT, S3IMGFS_TEST_ACCESS_KEY, S3IMGFS_TEST_SECRET_KEY (radosgw, from
#      scripts/servers/rgw-start.sh's env.sh). Without them or FUSE the test is skipped (77), or
#      fails when S3IMGFS_REQUIRE_SERVERS=1. S3IMGFS_GWTEST_KEEP=1 keeps the scratch folder.
set -euo pipefail

test_name=ntf
needed_tools=(vips vipsheader getfattr findmnt curl node)
# shellcheck source=tests/integration/gateway_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway_setup.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
servers=$(cd "$here/../../scripts/servers" && pwd)
fq="$PY $here/fauxqs_client.py"
t_start=$(date +%s)
"$PY" -c 'import prometheus_client.parser' 2>/dev/null ||
  { echo "python3-prometheus-client is missing: run scripts/install-deps.sh" >&2; exit 1; }

nstate=$tmp/servers
cleanup() {
  set +e
  cd /
  kill_fs
  "$servers/fauxqs-stop.sh" "$nstate" >/dev/null 2>&1
  "$servers/smtp-stop.sh" "$nstate" >/dev/null 2>&1
  "$servers/webhook-stop.sh" "$nstate" >/dev/null 2>&1
  [ -z "$tls_pid" ] || kill "$tls_pid" 2>/dev/null
  [ -z "$auth_pid" ] || kill "$auth_pid" 2>/dev/null
  remove_test_data
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers, buckets, configuration, data ---------------------------------------------------

sns_port=$(free_port)
smtp_port=$(free_port)
hook_port=$(free_port)
hook_secret="whsec-$RANDOM$RANDOM"
"$servers/fauxqs-start.sh" "$nstate" "$sns_port" >/dev/null
"$servers/smtp-start.sh" "$nstate" "$smtp_port" >/dev/null
WEBHOOK_SECRET=$hook_secret "$servers/webhook-start.sh" "$nstate" "$hook_port" >/dev/null
sns=http://127.0.0.1:$sns_port
maildir=$nstate/maildir
# shellcheck disable=SC1091
hookdir=$(. "$nstate/env.sh" && echo "$S3IMGFS_TEST_WEBHOOK_DIR")

# sns_setup: the topic and a queue subscribed to it (again after fauxqs restarted: same ARN).
sns_setup() { read -r topic_arn queue_url < <($fq setup "$sns" s3imgfs-notices notices-q); }
sns_setup

awsc s3api create-bucket --bucket "$src" >/dev/null
awsc s3api create-bucket --bucket "$dst" >/dev/null

cat >"$conf" <<EOF
; written by test_notify.sh
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
[notify]
sns_topic_arn = $topic_arn
sns_endpoint = $sns
webhook_url = http://127.0.0.1:$hook_port/hook
webhook_secret = $hook_secret
smtp_url = smtp://127.0.0.1:$smtp_port
mail_from = s3imgfs@example.com
mail_to = ops@example.com, photos@example.org
[gateway]
cache_dir = $tmp/cache
[log]
format = json
file = $tmp/json.log
metrics_seconds = 1
EOF
chmod 600 "$conf"

data=$tmp/data
mkdir -p "$data/a/trips/rome 2024" "$data/down" "$data/burst"
make_photo "$data/a/p1.jpg" 400 300
make_photo "$data/a/p2.jpg" 300 400
make_photo "$data/a/trips/rome 2024/café ☕.jpg" 640 480
printf 'not an image\n' >"$data/a/notes.txt"
head -c 3000 "$data/a/p1.jpg" >"$data/a/broken.jpg" # a truncated JPEG
a_files=(p1.jpg p2.jpg "trips/rome 2024/café ☕.jpg" notes.txt broken.jpg)
for i in 1 2 3; do make_photo "$data/down/d$i.jpg" 320 240; done
for i in $(seq -w 1 98); do printf 'file %s\n' "$i" >"$data/burst/f$i.txt"; done
head -c 2000 "$data/a/p2.jpg" >"$data/burst/bad1.jpg"
head -c 2500 "$data/a/p1.jpg" >"$data/burst/bad2.jpg"

# receive OUT COUNT SECONDS: SNS notices from the queue into OUT (JSON lines); prints how many.
receive() { $fq receive "$sns" "$queue_url" "$1" "$2" "$3"; }
webhook_count() { find "$hookdir" -name '*.json' 2>/dev/null | wc -l; }
mail_count() { find "$maildir/new" -type f 2>/dev/null | wc -l; }
# wait_count WHAT WANT COMMAND...: COMMAND prints a number; wait until it is at least WANT.
wait_count() {
  local what=$1 want=$2 deadline got
  shift 2
  deadline=$(($(now_ms) + gw_timeout * 1000))
  while :; do
    got=$("$@")
    [ "$got" -ge "$want" ] && return 0
    if [ "$(now_ms)" -gt "$deadline" ]; then
      diag "$what: $got after ${gw_timeout}s, expected $want"
      return 1
    fi
    sleep 0.3
  done
}

# ---- case 1: one notice per file, on every sink ----------------------------------------------

sns_a=$tmp/sns-a.jsonl
t_each_sns() {
  mount_fs || return 1
  cp -r "$data/a/." "$mnt/" || { diag "cp -r failed"; return 1; }
  wait_drained "$gw_timeout" 4 || return 1
  local got
  got=$(receive "$sns_a" 5 "$gw_timeout")
  expect "SNS notices for 5 files" 5 "$got" || return 1
  # No sixth one (one notice per file, not per rendition or per attempt).
  got=$(receive "$tmp/sns-extra.jsonl" 0 2)
  expect "SNS notices beyond the 5" 0 "$got" || return 1
  "$PY" - "$sns_a" "$src" "$dst" "$topic_arn" "$tmp/renditions.txt" <<'EOF'
import json, sys
path, src, dst, topic, rend_out = sys.argv[1:]
notices = [json.loads(l) for l in open(path)]
want = {"p1.jpg": ("done", "resized"), "p2.jpg": ("done", "resized"),
        "trips/rome 2024/caf\u00e9 \u2615.jpg": ("done", "resized"),
        "notes.txt": ("done", "uploaded"), "broken.jpg": ("failed", "resize_failed")}
bad = []
seen = {}
with open(rend_out, "w") as rf:
    for env in notices:
        subj = env.get("Subject", "")
        if env.get("TopicArn") != topic:
            bad.append(f"TopicArn {env.get('TopicArn')}")
        if not subj or len(subj.encode()) >= 100 or any(ord(c) < 32 or ord(c) == 127 for c in subj):
            bad.append(f"bad Subject {subj!r}")
        msg = env["Message"]
        try:
            body = json.loads(msg)
        except ValueError:
            bad.append(f"Message is not JSON: {msg[:200]!r}")
            continue
        if "default" in body:  # the whole structure reached SQS: take the machine part
            body = json.loads(body["default"])
        key = body.get("key")
        seen[key] = body
        attrs = {k: v.get("Value") for k, v in env.get("MessageAttributes", {}).items()}
        st, ev = want.get(key, (None, None))
        if st is None:
            bad.append(f"notice for an unexpected key {key!r}")
            continue
        for name, value in (("status", st), ("event", ev), ("bucket", src)):
            if body.get(name) != value:
                bad.append(f"{key}: body {name} = {body.get(name)!r}, expected {value!r}")
            if attrs.get(name) != value:
                bad.append(f"{key}: attribute {name} = {attrs.get(name)!r}, expected {value!r}")
        if st == "failed":
            if not body.get("reason") or not body.get("action"):
                bad.append(f"{key}: a failure notice without reason or action: {body}")
            if "FAILED" not in subj.upper():
                bad.append(f"{key}: the subject of a failure does not say so: {subj!r}")
        if ev == "resized":
            r = body.get("renditions", [])
            if sorted(x.get("size") for x in r) != ["small", "thumbnail"]:
                bad.append(f"{key}: renditions {r}")
            for x in r:
                rf.write(f"{x['key']}\t{x['width']}\t{x['height']}\t{x['bytes']}\n")
            if not body.get("width") or not body.get("height") or not body.get("size"):
                bad.append(f"{key}: source size or dimensions missing: {body}")
        if not body.get("request_id"):
            bad.append(f"{key}: no request_id")
missing = set(want) - set(seen)
if missing:
    bad.append(f"no notice for {sorted(missing)}")
for b in bad:
    print("#   " + b)
sys.exit(1 if bad else 0)
EOF
}

# The rendition keys, sizes and dimensions the notices gave are what the bucket holds.
t_each_renditions() {
  [ -s "$tmp/renditions.txt" ] || { diag "no renditions recorded by case 1"; return 1; }
  local key w h bytes n=0 len
  while IFS=$'\t' read -r key w h bytes; do
    n=$((n + 1))
    len=$(awsc s3api head-object --bucket "$dst" --key "$key" --query ContentLength --output text) ||
      { diag "s3://$dst/$key (named in a notice) is missing"; return 1; }
    expect "size of s3://$dst/$key" "$bytes" "$len" || return 1
    aws_get "$dst" "$key" "$tmp/r.img" || return 1
    expect "dimensions of s3://$dst/$key" "${w}x$h" \
      "$(vipsheader -f width "$tmp/r.img")x$(vipsheader -f height "$tmp/r.img")" || return 1
  done <"$tmp/renditions.txt"
  expect "renditions named in notices" 6 "$n"
}

t_each_webhook() {
  wait_count "webhook deliveries" 5 webhook_count || return 1
  "$PY" - "$hookdir" "$sns_a" <<'EOF'
import glob, json, sys
hookdir, sns = sys.argv[1:]
bad = []
keys = {}
for f in sorted(glob.glob(hookdir + "/*.json")):
    rec = json.load(open(f))
    if rec.get("signature_ok") is not True:
        bad.append(f"{f}: signature_ok = {rec.get('signature_ok')}")
    body = json.loads(rec["body"])
    h = {k.lower(): v for k, v in rec["headers"].items()}
    if h.get("content-type", "").split(";")[0] != "application/json":
        bad.append(f"{f}: Content-Type {h.get('content-type')}")
    if h.get("x-s3imgfs-event") != body.get("event") or h.get("x-s3imgfs-status") != body.get("status"):
        bad.append(f"{f}: headers {h.get('x-s3imgfs-event')}/{h.get('x-s3imgfs-status')} vs body")
    keys[body.get("key")] = (body.get("status"), body.get("event"), body.get("request_id"))
sns_keys = {}
for line in open(sns):
    m = json.loads(json.loads(line)["Message"])
    m = json.loads(m["default"]) if "default" in m else m
    sns_keys[m["key"]] = (m["status"], m["event"], m["request_id"])
if keys != sns_keys:
    bad.append(f"webhook notices {keys} differ from SNS's {sns_keys}")
for b in bad:
    print("#   " + b)
sys.exit(1 if bad else 0)
EOF
}

t_each_mail() {
  wait_count "e-mails" 5 mail_count || return 1
  "$PY" - "$maildir" "$sns_a" <<'EOF'
import email, email.header, email.policy, glob, json, sys
maildir, sns = sys.argv[1:]
bad = []
subjects = {}
for line in open(sns):
    env = json.loads(line)
    m = json.loads(env["Message"])
    m = json.loads(m["default"]) if "default" in m else m
    subjects[env["Subject"]] = m
for f in glob.glob(maildir + "/new/*"):
    msg = email.message_from_binary_file(open(f, "rb"), policy=email.policy.default)
    subj = str(msg["Subject"])
    if msg["From"].addresses[0].addr_spec != "s3imgfs@example.com":
        bad.append(f"From {msg['From']}")
    to = sorted(a.addr_spec for a in msg["To"].addresses)
    if to != ["ops@example.com", "photos@example.org"]:
        bad.append(f"To {to}")
    if not msg["Date"] or not msg["Message-ID"]:
        bad.append("Date or Message-ID missing")
    n = subjects.get(subj)
    if n is None:
        bad.append(f"mail subject {subj!r} matches no SNS notice's")
        continue
    text = msg.get_body(("plain",)).get_content()
    if n["key"] not in text:
        bad.append(f"{subj!r}: the body does not name the key {n['key']!r}")
    if n["status"] == "failed" and n["reason"] not in text:
        bad.append(f"{subj!r}: the body does not give the reason {n['reason']!r}")
    for r in n.get("renditions", []):
        if r["key"] not in text or f"{r['width']}x{r['height']}" not in text:
            bad.append(f"{subj!r}: rendition {r['key']} {r['width']}x{r['height']} not in the body")
for b in bad:
    print("#   " + b)
sys.exit(1 if bad else 0)
EOF
}

# The metrics file: Prometheus text whose counters are what case 1 did.
t_metrics() {
  is_mounted || { diag "not mounted"; return 1; }
  local sizes
  sizes=$(cd "$data/a" && cat -- "${a_files[@]}" | wc -c)
  cat "$mnt/.s3imgfs/metrics" >"$tmp/metrics.txt" || { diag "cannot read .s3imgfs/metrics"; return 1; }
  "$PY" - "$tmp/metrics.txt" "$sizes" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
fams = {f.name: f for f in text_string_to_metric_families(text)}
def value(name, **labels):
    for f in fams.values():
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None
want = {("s3imgfs_uploads_total", ()): 5, ("s3imgfs_upload_bytes_total", ()): int(sys.argv[2]),
        ("s3imgfs_images_total", ()): 3, ("s3imgfs_resize_failures_total", ()): 1,
        ("s3imgfs_renditions_total", ()): 6, ("s3imgfs_upload_failures_total", ()): 0,
        ("s3imgfs_resize_seconds_count", (("size", "thumbnail"),)): 3,
        ("s3imgfs_resize_seconds_count", (("size", "small"),)): 3,
        ("s3imgfs_image_seconds_count", ()): 3,
        ("s3imgfs_queue_files", (("state", "pending"),)): 0,
        ("s3imgfs_notices_total", ()): 5}
bad = []
for (name, labels), v in want.items():
    got = value(name, **dict(labels))
    if got is None or abs(got - v) > 1e-9:
        bad.append(f"{name}{dict(labels)} = {got}, expected {v}")
inf = value("s3imgfs_resize_seconds_bucket", size="small", le="+Inf")
if inf != 3:
    bad.append(f"resize_seconds_bucket{{le=+Inf,size=small}} = {inf}, expected 3")
for b in bad:
    print("#   " + b)
sys.exit(1 if bad else 0)
EOF
}

# [log] format = json: every line is a JSON object; each notice's request id is on log lines
# about its key; EMF lines add up to the uploads done.
t_json_log() {
  sleep 2 # the next EMF line (metrics_seconds = 1) covers everything
  "$PY" - "$tmp/json.log" "$sns_a" <<'EOF'
import json, sys
log, sns = sys.argv[1:]
bad, lines, uploads, emf = [], [], 0, 0
for n, line in enumerate(open(log, encoding="utf-8"), 1):
    try:
        o = json.loads(line)
    except ValueError:
        bad.append(f"line {n} is not JSON: {line[:120]!r}")
        continue
    if "_aws" in o:
        emf += 1
        cw = o["_aws"]["CloudWatchMetrics"][0]
        if cw["Namespace"] != "s3imgfs":
            bad.append(f"EMF namespace {cw['Namespace']}")
        for m in cw["Metrics"]:
            if not isinstance(o.get(m["Name"]), (int, float)):
                bad.append(f"EMF metric {m['Name']} has no value")
        uploads += o.get("Uploads", 0)
        continue
    for k in ("time", "level", "msg"):
        if k not in o:
            bad.append(f"line {n} has no {k}: {line[:120]!r}")
    lines.append(o)
for line in open(sns):
    m = json.loads(json.loads(line)["Message"])
    m = json.loads(m["default"]) if "default" in m else m
    if not any(o.get("key") == m["key"] and o.get("request_id") == m["request_id"] for o in lines):
        bad.append(f"no log line with key {m['key']!r} and request_id {m['request_id']!r}")
if emf == 0:
    bad.append("no CloudWatch EMF line in the log")
elif uploads != 5:
    bad.append(f"EMF lines add up to {uploads} uploads, expected 5")
for b in bad:
    print("#   " + b)
sys.exit(1 if bad else 0)
EOF
}

t_sighup() {
  { [ -n "$fs_pid" ] && is_mounted; } || { diag "not mounted"; return 1; }
  mv "$tmp/json.log" "$tmp/json.log.1"
  kill -HUP "$fs_pid"
  printf 'after the rotation\n' >"$mnt/rotated.txt"
  wait_status "$mnt/rotated.txt" uploaded || return 1
  is_mounted || { diag "SIGHUP unmounted the file system"; return 1; }
  [ -s "$tmp/json.log" ] || { diag "no new log file after SIGHUP"; return 1; }
  grep -q '"key":"rotated.txt"' "$tmp/json.log" ||
    { diag "the new log file has no line about rotated.txt"; return 1; }
  ! grep -q 'rotated.txt' "$tmp/json.log.1" ||
    { diag "the rotated file got lines written after SIGHUP"; return 1; }
}

# ---- case 2: SNS down -------------------------------------------------------------------------

t_sns_down() {
  is_mounted || { diag "not mounted"; return 1; }
  receive "$tmp/sns-drop.jsonl" 0 1 >/dev/null # rotated.txt's notice
  local hooks0 mails0 got
  hooks0=$(webhook_count)
  mails0=$(mail_count)
  "$servers/fauxqs-stop.sh" "$nstate" >/dev/null
  mkdir "$mnt/down"
  cp "$data/down/"*.jpg "$mnt/down/" || { diag "cp while SNS is down failed"; return 1; }
  wait_final "$mnt/down/d1.jpg" "$mnt/down/d2.jpg" "$mnt/down/d3.jpg" || return 1
  has_keys "$dst" thumbnail/down/d1.jpg small/down/d3.jpg || return 1
  wait_count "webhook deliveries while SNS is down" $((hooks0 + 3)) webhook_count || return 1
  wait_count "e-mails while SNS is down" $((mails0 + 3)) mail_count || return 1
  local pending
  pending=$(gw_status notices.pending)
  [ "$pending" -ge 3 ] || { diag "notices.pending = $pending while SNS is down, expected >= 3"; return 1; }
  sleep 5
  "$servers/fauxqs-start.sh" "$nstate" "$sns_port" >/dev/null
  sns_setup
  local t0
  t0=$(date +%s)
  got=$(receive "$tmp/sns-down.jsonl" 3 90)
  expect "SNS notices after it came back" 3 "$got" || return 1
  diag "SNS notices arrived $(($(date +%s) - t0)) s after fauxqs was back"
  grep -c '"d[123].jpg\|down/d[123].jpg' "$tmp/sns-down.jsonl" >/dev/null ||
    { diag "the notices are not those of down/d1-3.jpg"; return 1; }
}

# Notices still queued at unmount are saved in cache_dir and sent by the next mount.
t_saved_at_unmount() {
  is_mounted || { diag "not mounted"; return 1; }
  "$servers/fauxqs-stop.sh" "$nstate" >/dev/null
  printf 'one\n' >"$mnt/saved1.txt"
  printf 'two\n' >"$mnt/saved2.txt"
  wait_final "$mnt/saved1.txt" "$mnt/saved2.txt" || return 1
  unmount_fs || return 1
  [ -s "$tmp/cache/notices.pending" ] || { diag "no $tmp/cache/notices.pending after the unmount"; return 1; }
  local n got
  n=$(grep -c . "$tmp/cache/notices.pending")
  [ "$n" -ge 2 ] || { diag "$n notices saved, expected >= 2"; return 1; }
  "$servers/fauxqs-start.sh" "$nstate" "$sns_port" >/dev/null
  sns_setup
  mount_fs || return 1
  got=$(receive "$tmp/sns-saved.jsonl" 2 30)
  expect "saved notices delivered by the next mount" 2 "$got" || return 1
  { grep -q 'saved1.txt' "$tmp/sns-saved.jsonl" && grep -q 'saved2.txt' "$tmp/sns-saved.jsonl"; } ||
    { diag "the delivered notices are not those of saved1/2.txt"; return 1; }
  [ ! -e "$tmp/cache/notices.pending" ] || { diag "notices.pending is still there"; return 1; }
}

# A permanent upload failure (a wrong key) is announced with the reason and what to do; once the
# key is fixed and `s3imgfs retry` runs, the upload is announced.
set_secret() { sed -i "s/^secret_access_key = .*/secret_access_key = $1/" "$conf"; }
t_upload_failed() {
  is_mounted || { diag "not mounted"; return 1; }
  receive "$tmp/sns-drop2.jsonl" 0 1 >/dev/null
  # A new folder: its (empty) listing is cached, so creating the file needs no lookup in S3,
  # which the wrong key would refuse (EACCES).
  mkdir "$mnt/cred" || return 1
  set_secret "wrong-$RANDOM-secret"
  printf 'credentials\n' >"$mnt/cred/cred.txt" || { set_secret "$secret_key"; return 1; }
  wait_status "$mnt/cred/cred.txt" failed 30 || { set_secret "$secret_key"; return 1; }
  set_secret "$secret_key"
  local got
  got=$(receive "$tmp/sns-cred.jsonl" 1 30)
  expect "notices of the failed upload" 1 "$got" || return 1
  "$fs" retry "$mnt" "$mnt/cred/cred.txt" >/dev/null || { diag "s3imgfs retry failed"; return 1; }
  wait_status "$mnt/cred/cred.txt" uploaded || return 1
  got=$(receive "$tmp/sns-cred.jsonl" 1 30)
  expect "notices after the retry" 1 "$got" || return 1
  "$PY" - "$tmp/sns-cred.jsonl" <<'PYEOF'
import json, sys
rows = []
for line in open(sys.argv[1]):
    env = json.loads(line)
    m = json.loads(env["Message"])
    rows.append((env, json.loads(m["default"]) if "default" in m else m))
bad = []
(e1, m1), (e2, m2) = rows
if (m1.get("key"), m1.get("status"), m1.get("event")) != ("cred/cred.txt", "failed", "upload_failed"):
    bad.append(f"first notice: {m1}")
if "SignatureDoesNotMatch" not in m1.get("reason", "") and "signature" not in m1.get("reason", "").lower():
    bad.append(f"the reason does not say the key is wrong: {m1.get('reason')!r}")
if "s3imgfs retry" not in m1.get("action", ""):
    bad.append(f"the action does not say how to retry: {m1.get('action')!r}")
if "FAILED" not in e1.get("Subject", "").upper():
    bad.append(f"subject of the failure: {e1.get('Subject')!r}")
if (m2.get("key"), m2.get("status"), m2.get("event")) != ("cred/cred.txt", "done", "uploaded"):
    bad.append(f"second notice: {m2}")
for b in bad:
    print("#   " + b)
sys.exit(1 if bad else 0)
PYEOF
}

# E-mail over TLS: an aiosmtpd that offers STARTTLS and refuses mail without it, with a
# certificate of a private CA ([s3] ca_file): the notice arrives. Without that CA the
# certificate is refused (TLS is verified) and nothing is delivered.
tls_pid=""
t_mail_starttls() {
  is_mounted || { diag "not mounted"; return 1; }
  local d=$tmp/tls port
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null ||
    { diag "openssl req failed"; return 1; }
  port=$(free_port)
  "$PY" -m aiosmtpd -n -l "127.0.0.1:$port" --tlscert "$d/cert.pem" --tlskey "$d/key.pem" \
    -c aiosmtpd.handlers.Mailbox "$d/maildir" </dev/null >"$d/smtp.log" 2>&1 &
  tls_pid=$!
  local deadline=$(($(now_ms) + 10000))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "aiosmtpd with TLS did not start"; return 1; }
    sleep 0.1
  done
  unmount_fs || return 1
  mount_extra=(-o "notify.smtp_url=smtp://127.0.0.1:$port" -o "s3.ca_file=$d/cert.pem")
  mount_fs || return 1
  printf 'over TLS\n' >"$mnt/tls.txt"
  wait_status "$mnt/tls.txt" uploaded || return 1
  local n=0
  deadline=$(($(now_ms) + gw_timeout * 1000))
  until [ "$n" -ge 1 ] || [ "$(now_ms)" -gt "$deadline" ]; do
    sleep 0.3
    n=$(find "$d/maildir/new" -type f 2>/dev/null | wc -l)
  done
  expect "mails delivered over STARTTLS" 1 "$n" || return 1
  grep -q 'tls.txt' "$d"/maildir/new/* || { diag "the mail is not about tls.txt"; return 1; }
  # the system's CAs do not know this certificate: refused, nothing delivered
  unmount_fs || return 1
  mount_extra=(-o "notify.smtp_url=smtp://127.0.0.1:$port")
  mount_fs || return 1
  printf 'not over TLS\n' >"$mnt/tls2.txt"
  wait_status "$mnt/tls2.txt" uploaded || return 1
  deadline=$(($(now_ms) + 15000))
  until grep -q 'notices: smtp failed' "$tmp/json.log" || [ "$(now_ms)" -gt "$deadline" ]; do sleep 0.3; done
  grep 'notices: smtp failed' "$tmp/json.log" | tail -1 | grep -qi 'certificate\|SSL\|TLS' ||
    { diag "no certificate error from the SMTP sink: $(grep 'smtp' "$tmp/json.log" | tail -2)"; return 1; }
  expect "mails delivered with an unknown certificate" 1 "$(find "$d/maildir/new" -type f | wc -l)" || return 1
  unmount_fs || return 1 # the queued notice is saved, not lost
  mount_extra=()
  mount_fs
}

# SMTP AUTH: a server that requires STARTTLS and a login (tests/integration/smtp_auth_server.py)
# gets the notice with smtp_user and the password from smtp_password_file.
auth_pid=""
t_mail_auth() {
  is_mounted || { diag "not mounted"; return 1; }
  local d=$tmp/tls port
  [ -s "$d/cert.pem" ] || { diag "no certificate from the STARTTLS case"; return 1; }
  port=$(free_port)
  "$PY" "$here/smtp_auth_server.py" "$port" "$d/cert.pem" "$d/key.pem" robot 'pa ss:w0rd' \
    "$d/auth-maildir" </dev/null >"$d/auth.log" 2>&1 &
  auth_pid=$!
  local deadline=$(($(now_ms) + 10000))
  until grep -q listening "$d/auth.log" 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || { diag "the SMTP AUTH server did not start: $(cat "$d/auth.log")"; return 1; }
    sleep 0.1
  done
  printf 'pa ss:w0rd\n' >"$d/password"
  chmod 600 "$d/password"
  unmount_fs || return 1
  mount_extra=(-o "notify.smtp_url=smtp://127.0.0.1:$port" -o "s3.ca_file=$d/cert.pem"
    -o notify.smtp_user=robot -o "notify.smtp_password_file=$d/password")
  mount_fs || return 1
  printf 'with a login\n' >"$mnt/auth.txt"
  wait_status "$mnt/auth.txt" uploaded || return 1
  local n=0
  deadline=$(($(now_ms) + gw_timeout * 1000))
  until [ "$n" -ge 1 ] || [ "$(now_ms)" -gt "$deadline" ]; do
    sleep 0.3
    n=$(find "$d/auth-maildir/new" -type f 2>/dev/null | wc -l)
  done
  expect "mails delivered after AUTH" 1 "$n" || { sed 's/^/#   | /' "$d/auth.log"; return 1; }
  grep -q '^auth ok robot' "$d/auth.log" || { diag "the server saw no successful login"; return 1; }
  ! grep -q 'pa ss:w0rd' "$log" "$tmp"/json.log* || { diag "the password is in a log"; return 1; }
  unmount_fs || return 1
  mount_extra=()
  mount_fs
}

# ---- case 3: digest ----------------------------------------------------------------------------

t_digest() {
  if is_mounted; then unmount_fs || return 1; fi
  mount_extra=(-o notify.digest_seconds=10 -o notify.digest_keys=7)
  mount_fs || return 1
  receive "$tmp/sns-drop3.jsonl" 0 2 >/dev/null # the notices of earlier cases
  cp -r "$data/burst" "$mnt/burst" || { diag "cp -r burst failed"; return 1; }
  wait_drained "$gw_timeout" 2 || return 1
  local got
  got=$(receive "$tmp/sns-digest.jsonl" 1 30)
  expect "SNS notices for a burst of 100 files in one window" 1 "$got" || return 1
  got=$(receive "$tmp/sns-digest-more.jsonl" 0 4)
  expect "notices after the digest" 0 "$got" || return 1
  "$PY" - "$tmp/sns-digest.jsonl" <<'EOF'
import json, sys
env = json.loads(open(sys.argv[1]).readline())
m = json.loads(env["Message"])
m = json.loads(m["default"]) if "default" in m else m
bad = []
attrs = {k: v.get("Value") for k, v in env.get("MessageAttributes", {}).items()}
checks = {"event": "digest", "status": "failed"}
for k, v in checks.items():
    if m.get(k) != v or attrs.get(k) != v:
        bad.append(f"{k}: body {m.get(k)!r}, attribute {attrs.get(k)!r}, expected {v!r}")
flat = json.dumps(m)
for name, want in (("count", 100), ("done", 98), ("failed", 2), ("more", 93)):
    if m.get(name) != want:
        bad.append(f"{name} = {m.get(name)}, expected {want}")
listed = m.get("files", [])
if len(listed) != 7:
    bad.append(f"{len(listed)} keys listed, expected digest_keys = 7")
if {f["key"] for f in listed if f["status"] == "failed"} != {"burst/bad1.jpg", "burst/bad2.jpg"}:
    bad.append(f"the failures are not both listed: {listed}")
if "bad1.jpg" not in flat or "bad2.jpg" not in flat:
    bad.append("the failed files are not named (failures come first)")
if len(env.get("Subject", "").encode()) >= 100:
    bad.append(f"Subject too long: {env.get('Subject')!r}")
for b in bad:
    print("#   " + b)
sys.exit(1 if bad else 0)
EOF
}

case_ "SNS: one notice per file (3 images, a plain file, a broken image): subject, JSON body, attributes" t_each_sns
case_ "SNS: the renditions a notice names exist with those bytes and dimensions (aws CLI, vipsheader)" t_each_renditions
case_ "webhook: the same notices, signed (HMAC-SHA256 verified by the receiver), with event/status headers" t_each_webhook
case_ "e-mail: the same notices to both recipients, subject and body for people (aiosmtpd Maildir)" t_each_mail
case_ ".s3imgfs/metrics parses as Prometheus text and its counters match what was done" t_metrics
case_ "[log] format = json: every line parses; lines about a file carry its key and the notice's request id; EMF lines" t_json_log
case_ "SIGHUP reopens [log] file (logrotate) and does not unmount" t_sighup
case_ "SNS down: uploads and resizes go on, webhook and mail get their notices, SNS gets them once back" t_sns_down
case_ "notices not delivered at unmount are saved in cache_dir and sent by the next mount" t_saved_at_unmount
case_ "a permanent upload failure (wrong key) is announced with reason and action; the upload after s3imgfs retry too" t_upload_failed
case_ "e-mail over STARTTLS with a private CA ([s3] ca_file); an unknown certificate is refused" t_mail_starttls
case_ "e-mail with SMTP AUTH (login over STARTTLS, password from smtp_password_file, never logged)" t_mail_auth
[ -z "$tls_pid" ] || { kill "$tls_pid" 2>/dev/null; wait "$tls_pid" 2>/dev/null || true; }
[ -z "$auth_pid" ] || { kill "$auth_pid" 2>/dev/null; wait "$auth_pid" 2>/dev/null || true; }
case_ "digest_seconds: a burst of 100 files (2 broken) gives one notice with the right counts" t_digest
if is_mounted; then unmount_fs || true; fi
case_ "no sanitizer report from the gateway (ASan/UBSan builds)" no_sanitizer_report
if [ "$failed" != 0 ] && [ -s "$log" ]; then
  diag "last lines of the s3imgfs log ($log):"
  tail -n 30 "$log" | sed 's/^/#   | /'
fi
diag "run time: $(($(date +%s) - t_start)) s"
finish
