#!/usr/bin/env bash
# The main job on a local default, end to end on this machine:
#   installs what it needs, builds, starts a local S3 server (Ceph radosgw on 127.0.0.1),
#   writes a config for it, mounts s3imgfs, copies pictures in with cp, and shows them being
#   uploaded and resized: their status, the renditions under resized/, the SNS notice of each
#   (a local SNS, fauxqs, with an SQS queue subscribed), the metrics, and both buckets as an
#   independent client (the aws CLI) sees them.
# Usage: scripts/demo.sh [--keep]     (--keep leaves the server and the mount up)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1

scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

state=$root/.state/demo
stop_servers() {
  scripts/servers/fauxqs-stop.sh "$state" >/dev/null 2>&1 || true
  scripts/servers/rgw-stop.sh "$state" --purge >/dev/null 2>&1 || true
}
stop_servers
if [ "$keep" = 0 ]; then
  trap stop_servers EXIT
fi
scripts/servers/rgw-start.sh "$state" "${S3IMGFS_RGW_PORT:-7480}"
scripts/servers/fauxqs-start.sh "$state" "${S3IMGFS_SNS_PORT:-4566}"
# shellcheck disable=SC1091
source "$state/env.sh"

# The SNS topic notices go to, and a queue subscribed to it where this script reads them.
read -r topic queue < <(/usr/bin/python3 tests/integration/fauxqs_client.py setup \
  "$S3IMGFS_TEST_SNS_ENDPOINT" image-notices demo-notices)

config=$state/config.ini
umask 077
cat >"$config" <<INI
[s3]
endpoint = $S3IMGFS_TEST_ENDPOINT
region = us-east-1
path_style = true
source_bucket = photos
destination_bucket = photos-resized
access_key_id = $S3IMGFS_TEST_ACCESS_KEY
secret_access_key = $S3IMGFS_TEST_SECRET_KEY

[resize]
sizes = thumbnail:150x150:cover, medium:640x640, large:1280x1280

[notify]
sns_topic_arn = $topic
sns_endpoint = $S3IMGFS_TEST_SNS_ENDPOINT
INI

s3=(build/tools/s3imgfs-s3 -c "$config")
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "configuration (secrets masked, with where each value came from)"
"${s3[@]}" config
step "create the source and destination buckets"
"${s3[@]}" mb
step "check the configuration against the server"
"${s3[@]}" check

step "make a few pictures (libvips)"
pics=$state/pictures
mkdir -p "$pics"
vips black "$pics/black.png" 640 480
vips gaussnoise "$pics/noise.jpg" 1600 1200
vips sines "$pics/holiday photo.jpg" 2000 1500 --hfreq 2 --vfreq 3 >/dev/null 2>&1 ||
  vips gaussnoise "$pics/holiday photo.jpg" 2000 1500
printf 'not a picture\n' >"$pics/notes.txt"

mnt=$state/mnt
mkdir -p "$mnt"
fusermount3 -uz "$mnt" 2>/dev/null || true
step "mount: build/fuse/s3imgfs -o config=$config $mnt"
printf '[gateway]\ncache_dir = %s\n' "$state/cache" >>"$config"
build/fuse/s3imgfs -o "config=$config" "$mnt"
if [ "$keep" = 0 ]; then
  trap 'fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"; stop_servers' EXIT
fi

step "cp the pictures into the mount (returns at local-disk speed; uploads run behind)"
mkdir -p "$mnt/2026"
cp "$pics"/* "$mnt/2026/"
for f in "$mnt"/2026/*; do
  printf '%-28s %s\n' "$(basename "$f")" "$(getfattr --only-values -n user.s3imgfs.status "$f")"
done
step "wait until each is done (images) or uploaded (other files)"
for f in "$mnt"/2026/*; do
  for _ in $(seq 1 300); do
    st=$(getfattr --only-values -n user.s3imgfs.status "$f")
    case $st in done | uploaded | failed*) break ;; esac
    sleep 0.1
  done
  printf '%-28s %s\n' "$(basename "$f")" "$st"
done
step "the renditions, under resized/ in the mount"
(cd "$mnt/resized" && ls -lR)
for f in "$mnt"/resized/*/2026/*; do
  printf '%-44s %s\n' "${f#"$mnt"/}" "$(vipsheader "$f" 2>/dev/null | sed 's/^[^:]*: //')"
done
step "the SNS notices (read from the SQS queue subscribed to the topic)"
notices=$state/notices.jsonl
: >"$notices"
/usr/bin/python3 tests/integration/fauxqs_client.py receive "$S3IMGFS_TEST_SNS_ENDPOINT" "$queue" \
  "$notices" 4 30 >/dev/null
/usr/bin/python3 - "$notices" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    env = json.loads(line)
    m = json.loads(env["Message"])
    body = json.loads(m["default"]) if "default" in m else m
    attrs = {k: v["Value"] for k, v in env.get("MessageAttributes", {}).items()}
    print(f"{env['Subject']}\n    attributes {attrs}")
    for r in body.get("renditions", []):
        print(f"    {r['size']:<10} {r['width']}x{r['height']:<6} {r['bytes']:>8} bytes  {r['key']}")
PY
step "the queue: $mnt/.s3imgfs/status"
cat "$mnt/.s3imgfs/status"
step "metrics (Prometheus text): $mnt/.s3imgfs/metrics"
grep -E '^s3imgfs_(uploads|upload_bytes|images|renditions|notices)_total|^s3imgfs_image_seconds_(sum|count)' \
  "$mnt/.s3imgfs/metrics"

aws() {
  AWS_ACCESS_KEY_ID=$S3IMGFS_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3IMGFS_TEST_SECRET_KEY \
    AWS_DEFAULT_REGION=us-east-1 /usr/bin/aws --endpoint-url "$S3IMGFS_TEST_ENDPOINT" "$@"
}
step "both buckets as an independent client (aws CLI) sees them"
aws s3 ls --recursive s3://photos/
aws s3 ls --recursive s3://photos-resized/

if [ "$keep" = 1 ]; then
  echo "left running: the mount $mnt (fusermount3 -u $mnt), the servers (scripts/servers/rgw-stop.sh $state --purge; scripts/servers/fauxqs-stop.sh $state); config $config"
fi
