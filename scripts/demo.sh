#!/usr/bin/env bash
# The main job on a local default, end to end on this machine:
#   installs what it needs, builds, starts a local S3 server (Ceph radosgw on 127.0.0.1),
#   writes a config for it, and runs what s3imgfs can do today against it.
# Usage: scripts/demo.sh [--keep]     (--keep leaves the server running and prints how to use it)
# What it shows grows with the project: today the S3 client, the config and the resize engine;
# the FUSE mount joins it when it lands (see README.md, "Status").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1

scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

state=$root/.state/demo
scripts/servers/rgw-stop.sh "$state" --purge >/dev/null 2>&1 || true
if [ "$keep" = 0 ]; then
  trap 'scripts/servers/rgw-stop.sh "$state" --purge >/dev/null' EXIT
fi
scripts/servers/rgw-start.sh "$state" "${S3IMGFS_RGW_PORT:-7480}"
# shellcheck disable=SC1091
source "$state/env.sh"

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
INI

s3=(build/tools/s3imgfs-s3 -c "$config")
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "configuration (secrets masked, with where each value came from)"
"${s3[@]}" config
step "create the source and destination buckets"
"${s3[@]}" mb
step "check the configuration against the server"
"${s3[@]}" check

step "upload a few pictures (made with libvips)"
pics=$state/pictures
mkdir -p "$pics"
vips black "$pics/black.png" 640 480
vips gaussnoise "$pics/noise.jpg" 1600 1200
vips sines "$pics/holiday photo.jpg" 2000 1500 --hfreq 2 --vfreq 3 >/dev/null 2>&1 ||
  vips gaussnoise "$pics/holiday photo.jpg" 2000 1500
for f in "$pics"/*; do
  "${s3[@]}" put "$f" "2026/$(basename "$f")"
done
step "list the source bucket"
"${s3[@]}" ls -r
step "the same bucket seen by an independent client (aws CLI)"
AWS_ACCESS_KEY_ID=$S3IMGFS_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3IMGFS_TEST_SECRET_KEY \
  AWS_DEFAULT_REGION=us-east-1 /usr/bin/aws --endpoint-url "$S3IMGFS_TEST_ENDPOINT" \
  s3 ls --recursive s3://photos/

step "resize them with the shared engine (one decode per picture, every size from it)"
build/tools/s3imgfs-resize -c "$config" -j 2 -o "$state/renditions" "$pics"/*
step "upload the renditions to the destination bucket, as {size}/{key}"
for f in "$state"/renditions/*/*; do
  size=$(basename "$(dirname "$f")")
  "${s3[@]}" put --dest "$f" "$size/2026/$(basename "$f")"
done
"${s3[@]}" ls --dest -r

step "not yet: the FUSE mount that does all of this on close(), and SNS notices (issue #4 on)"
if [ "$keep" = 1 ]; then
  echo "server left running: config $config; stop with scripts/servers/rgw-stop.sh $state --purge"
fi
