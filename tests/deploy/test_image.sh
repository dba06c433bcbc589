#!/usr/bin/env bash
# The function's container image, built from deploy/Dockerfile and run the way Lambda runs it:
#   - built with buildah (no Docker daemon needed) from the repository's files, on a Debian 12
#     base made here with mmdebstrap (the Dockerfile's DEBIAN_IMAGE; Docker Hub is not needed);
#   - its configuration: ENTRYPOINT /var/runtime/bootstrap, a non-root USER, linux/amd64,
#     MALLOC_ARENA_MAX=1, a size that fits Lambda's 10 GB image limit;
#   - run as Lambda runs an image: the root file system read-only, /tmp a writable tmpfs, a
#     user id the image has never heard of, WORKDIR /var/task, the environment Lambda sets plus
#     the S3IMGFS_* variables of deploy/template.yaml with its parameters' defaults, against a
#     local stand-in for the Runtime API (tests/integration/lambda_runtime_api.py) and radosgw;
#   - an S3 event of a 12 MP JPEG, a PNG with alpha and an AVIF: all three resized with the
#     template's default sizes (so the HEIF loader module is in the image), the renditions in the
#     destination bucket checked with vipsheader, the log lines JSON, EMF metrics printed;
#   - a bad setting in the environment: the image's runtime reports an init error.
#
# Usage: tests/deploy/test_image.sh PATH/TO/s3imgfs-lambda (any build; only used by the common
#        setup: the image builds its own from the sources)
# Needs root (chroot and mounts) and the network to the Debian mirror (the image build runs
# apt-get). Env: S3IMGFS_TEST_ENDPOINT... as the other function tests (radosgw);
# S3IMGFS_IMAGE_STORAGE (buildah's storage folder, default /var/tmp/s3imgfs-image-test: the
# base image is kept there between runs).
set -euo pipefail

test_name=img
needed_tools=(vips vipsheader timeout buildah mmdebstrap unshare chroot git)
here_deploy=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here_deploy/../.." && pwd)
# shellcheck source=tests/integration/lambda_setup.sh
source "$repo/tests/integration/lambda_setup.sh"

[ "$(id -u)" = 0 ] || skip "not root (the image is built and run with chroot and mounts)"

storage=${S3IMGFS_IMAGE_STORAGE:-/var/tmp/s3imgfs-image-test}
bah=(buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs)
base=localhost/s3imgfs-test-debian:12-slim
image=localhost/s3imgfs-lambda:test-$suffix
ctr=""
cleanup() {
  set +e
  [ -z "$api_pid" ] || { kill "$api_pid" 2>/dev/null; wait "$api_pid" 2>/dev/null; }
  if [ -n "$ctr" ]; then
    "${bah[@]}" umount "$ctr" >/dev/null 2>&1
    "${bah[@]}" rm "$ctr" >/dev/null 2>&1
  fi
  "${bah[@]}" rmi "$image" >/dev/null 2>&1
  remove_test_data
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the image ---------------------------------------------------------------------------------

# A Debian 12 base like debian:12-slim, from the Debian mirror: kept in the storage between runs.
make_base() {
  "${bah[@]}" inspect --type image "$base" >/dev/null 2>&1 && return 0
  # The mirrors this machine's apt uses (a CI machine may have its own), else Debian's.
  local mirrors=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -qs '^[^#]*bookworm' "$f" && mirrors+=("$f")
  done
  [ ${#mirrors[@]} -gt 0 ] || mirrors=("deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main")
  mmdebstrap --quiet --variant=minbase bookworm "$tmp/rootfs.tar" "${mirrors[@]}" \
    >"$tmp/mmdebstrap.log" 2>&1 ||
    { diag "mmdebstrap failed:"; tail -n 20 "$tmp/mmdebstrap.log" | sed 's/^/#   | /'; return 1; }
  local c
  c=$("${bah[@]}" from scratch)
  "${bah[@]}" add "$c" "$tmp/rootfs.tar" / >/dev/null
  "${bah[@]}" config --cmd /bin/bash "$c"
  "${bah[@]}" commit --quiet "$c" "$base" >/dev/null
  "${bah[@]}" rm "$c" >/dev/null
  rm -f "$tmp/rootfs.tar"
}

# The build context: the repository's files (tracked, and new ones not ignored), as a fresh
# clone would have them, without build folders.
make_context() {
  mkdir -p "$tmp/context"
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf -) | tar -xf - -C "$tmp/context"
}

build_image() {
  make_base || return 1
  make_context
  local t0=$SECONDS
  if ! "${bah[@]}" bud --quiet --isolation chroot --network host --layers=false \
    --build-arg "DEBIAN_IMAGE=$base" -f "$tmp/context/deploy/Dockerfile" -t "$image" \
    "$tmp/context" >"$tmp/build.log" 2>&1; then
    diag "buildah bud deploy/Dockerfile failed:"
    tail -n 30 "$tmp/build.log" | sed 's/^/#   | /'
    return 1
  fi
  echo "# image built in $((SECONDS - t0)) s"
}
case_ "deploy/Dockerfile builds (buildah, Debian 12 base from the mirror)" build_image

image_config() {
  "${bah[@]}" inspect --type image "$image" >"$tmp/inspect.json"
  "$PY" - "$tmp/inspect.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["OCIv1"]["config"]
env = dict(e.split("=", 1) for e in c.get("Env", []))
size = sum(l.get("size", 0) for l in d.get("History", [])) or 0
problems = []
if c.get("Entrypoint") != ["/var/runtime/bootstrap"]:
    problems.append("Entrypoint is %r" % c.get("Entrypoint"))
user = c.get("User", "")
if not user or user.split(":")[0] in ("", "0", "root"):
    problems.append("User is %r (root)" % user)
if d["OCIv1"].get("architecture") != "amd64" or d["OCIv1"].get("os") != "linux":
    problems.append("platform %s/%s" % (d["OCIv1"].get("os"), d["OCIv1"].get("architecture")))
if env.get("MALLOC_ARENA_MAX") != "1":
    problems.append("MALLOC_ARENA_MAX is %r" % env.get("MALLOC_ARENA_MAX"))
if env.get("GLIBC_TUNABLES") != "glibc.malloc.hugetlb=1":
    problems.append("GLIBC_TUNABLES is %r" % env.get("GLIBC_TUNABLES"))
if c.get("WorkingDir") != "/var/task":
    problems.append("WorkingDir is %r" % c.get("WorkingDir"))
for p in problems:
    print("# " + p)
sys.exit(1 if problems else 0)
EOF
}
case_ "the image: ENTRYPOINT /var/runtime/bootstrap, non-root USER, linux/amd64, MALLOC_ARENA_MAX=1, malloc on huge pages" image_config

image_size() {
  local mb
  ctr=$("${bah[@]}" from --quiet "$image")
  imgroot=$("${bah[@]}" mount "$ctr")
  mb=$(du -sm --one-file-system "$imgroot" | cut -f1)
  echo "# image file system: $mb MB"
  [ "$mb" -lt 10240 ] || { diag "the image is $mb MB: Lambda takes at most 10 GB"; return 1; }
  [ -x "$imgroot/var/runtime/bootstrap" ] || { diag "no executable /var/runtime/bootstrap"; return 1; }
  # every file of the runtime readable by a user the image does not know (Lambda's)
  local unreadable
  unreadable=$(find "$imgroot/var/runtime" "$imgroot/usr/lib" "$imgroot/etc/ssl/certs" "$imgroot/usr/share/ca-certificates" ! -perm -o=r 2>/dev/null | head -n 5)
  [ -z "$unreadable" ] || { diag "not readable by others: $unreadable"; return 1; }
}
case_ "the image: under Lambda's 10 GB, bootstrap and its libraries readable by any user" image_size

# ---- run as Lambda does ------------------------------------------------------------------------

# template_env: the S3IMGFS_* variables of deploy/template.yaml's Function that are plain values
# or a !Ref to a parameter with a default (its default); one VAR=VALUE a line.
template_env() {
  "$PY" - "$repo/deploy/template.yaml" <<'EOF'
import sys, yaml
class L(yaml.SafeLoader): pass
def tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode): v = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode): v = loader.construct_sequence(node, deep=True)
    else: v = loader.construct_mapping(node, deep=True)
    return {"!" + suffix: v}
L.add_multi_constructor("!", tag)
t = yaml.load(open(sys.argv[1]), Loader=L)
params = t["Parameters"]
for k, v in t["Resources"]["Function"]["Properties"]["Environment"]["Variables"].items():
    if isinstance(v, dict) and "!Ref" in v and "Default" in params.get(v["!Ref"], {}):
        v = params[v["!Ref"]]["Default"]
    if isinstance(v, (str, int, float)):
        print("%s=%s" % (k, v))
EOF
}

# run_image NAME VAR=VALUE...: runs the image's entry point as Lambda does, against $api, until
# it exits (at most 180 s); output in $tmp/NAME.out, exit status in img_rc.
run_image() {
  local name=$1
  shift
  local envs=() image_env=()
  mapfile -t image_env < <("$PY" -c '
import json, sys
for e in json.load(open(sys.argv[1]))["OCIv1"]["config"].get("Env", []): print(e)' "$tmp/inspect.json")
  mapfile -t tmpl < <(template_env)
  envs=("${image_env[@]}" "${tmpl[@]}"
    "AWS_LAMBDA_RUNTIME_API=$api" "AWS_REGION=$region" "AWS_DEFAULT_REGION=$region"
    "AWS_ACCESS_KEY_ID=$access_key" "AWS_SECRET_ACCESS_KEY=$secret_key"
    "AWS_LAMBDA_FUNCTION_NAME=s3imgfs-lambda" "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1769"
    "AWS_LAMBDA_FUNCTION_VERSION=\$LATEST" "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/s3imgfs-lambda"
    "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand" "_HANDLER=" "TZ=:UTC" "LANG=en_US.UTF-8"
    "AWS_ENDPOINT_URL_S3=$endpoint" "AWS_EC2_METADATA_DISABLED=true" "S3IMGFS_PATH_STYLE=true"
    "S3IMGFS_SOURCE_BUCKET=$src" "S3IMGFS_DESTINATION_BUCKET=$dst" "S3IMGFS_SSE=AES256" "$@")
  img_rc=0
  # A mount namespace of its own: the image's root bind-mounted read-only, a tmpfs on /tmp,
  # /proc and /dev; then chroot as a user id the image has no entry for (Lambda's are like it).
  timeout 180 unshare --mount --fork /bin/sh -ec '
    mnt=$1; shift
    mount --make-rprivate /
    mount --bind "$mnt" "$mnt"
    mount -o remount,bind,ro "$mnt"
    mount -t tmpfs -o size=512m,mode=1777 tmpfs "$mnt/tmp"
    mount -t proc proc "$mnt/proc"
    mount --rbind /dev "$mnt/dev"
    exec chroot --userspec=993:990 "$mnt" /usr/bin/env -i -C /var/task "$@" /var/runtime/bootstrap
  ' sh "$imgroot" "${envs[@]}" >"$tmp/$name.out" 2>&1 </dev/null || img_rc=$?
}

awsc s3api create-bucket --bucket "$src" >/dev/null
awsc s3api create-bucket --bucket "$dst" >/dev/null
make_photo "$tmp/photo.jpg" 4000 3000
vips copy "$tmp/photo.jpg" "$tmp/photo.avif[Q=50]"
vips bandjoin_const "$tmp/photo.jpg" "$tmp/alpha.v" 128
vips resize "$tmp/alpha.v" "$tmp/logo.png" 0.2
keys=("uploads/big photo.jpg" "uploads/phone.avif" "uploads/logo.png")
files=("$tmp/photo.jpg" "$tmp/photo.avif" "$tmp/logo.png")
events=()
for i in 0 1 2; do
  awsc s3 cp --quiet "${files[$i]}" "s3://$src/${keys[$i]}"
  events+=("$(s3_event "$src" "${keys[$i]}" "$(stat -c %s "${files[$i]}")" "$(etag_of "$src" "${keys[$i]}")")")
done
event=$("$PY" - "${events[@]}" <<'EOF'
import json, sys
records = [r for e in sys.argv[1:] for r in json.loads(e)["Records"]]
print(json.dumps([{"__event": {"Records": records}, "__request_id": "req-image"}]))
EOF
)

resizes_in_image() {
  [ -n "${imgroot:-}" ] || { diag "the image is not mounted (an earlier case failed)"; return 1; }
  start_api main --events-json "$event" --idle-end 1 || return 1
  run_image main
  stop_api
  local line
  line=$(calls main response | head -n 1)
  [ -n "$line" ] || { diag "no response posted (exit status $img_rc)"; show_output main; return 1; }
  json_get - 'd["body"]' <<<"$line" >"$tmp/resp.json"
  expect "done records" 3 "$(json_get "$tmp/resp.json" 'd["done"]')" ||
    { diag "response: $(cat "$tmp/resp.json")"; show_output main; return 1; }
  expect "exit status once the Runtime API ends (its 500)" 1 "$img_rc"
}
case_ "the image as Lambda runs it (read-only root, /tmp, unknown uid): 3 records done" resizes_in_image

# made_as KEY WxH LOADER CONTENT-TYPE: the rendition's pixels, format and type, read back.
made_as() {
  local got=$tmp/rendition dims
  rm -f "$got" "$got.type"
  aws_get "$dst" "$1" "$got" || return 1
  dims="$(vipsheader -f width "$got" 2>/dev/null)x$(vipsheader -f height "$got" 2>/dev/null)"
  expect "s3://$dst/$1 dimensions" "$2" "$dims" &&
    expect "s3://$dst/$1 format (vips loader)" "$3" "$(vipsheader -f vips-loader "$got" 2>/dev/null)" &&
    expect "s3://$dst/$1 Content-Type" "$4" "$(cat "$got.type")"
}

renditions_in_bucket() {
  # the template's default sizes (thumbnail:150x150:cover, medium:640x640, large:1280x1280) and
  # format (auto: JPEG from JPEG, AVIF from AVIF, PNG from PNG)
  made_as "thumbnail/uploads/big photo.jpg" 150x150 jpegload image/jpeg &&
    made_as "medium/uploads/big photo.jpg" 640x480 jpegload image/jpeg &&
    made_as "large/uploads/big photo.jpg" 1280x960 jpegload image/jpeg &&
    made_as "large/uploads/phone.avif" 1280x960 heifload image/avif &&
    made_as "thumbnail/uploads/logo.png" 150x150 pngload image/png &&
    made_as "medium/uploads/logo.png" 640x480 pngload image/png
}
case_ "the renditions are in the destination bucket (template default sizes; AVIF decoded)" renditions_in_bucket

logs_and_metrics() {
  "$PY" - "$tmp/main.out" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
bad = [l for l in lines if not l.startswith("{")]
emf = [json.loads(l) for l in lines if l.startswith("{") and "_aws" in l]
for l in lines:
    if l.startswith("{"):
        json.loads(l)
if bad:
    print("# not JSON: %r" % bad[:3])
if not emf:
    print("# no EMF metric line")
sys.exit(1 if bad or not emf else 0)
EOF
}
case_ "the image logs JSON lines (S3IMGFS_LOG_FORMAT=json) and EMF metrics" logs_and_metrics

init_error() {
  start_api bad --idle-end 1 || return 1
  run_image bad "S3IMGFS_SIZES=garbage"
  stop_api
  expect "exit status on a bad setting" 1 "$img_rc" || { show_output bad; return 1; }
  [ -n "$(calls bad init_error)" ] || { diag "no init/error posted"; show_output bad; return 1; }
}
case_ "a bad setting: the image's runtime posts init/error and exits 1" init_error

finish
