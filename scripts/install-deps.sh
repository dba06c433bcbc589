#!/usr/bin/env bash
# Installs everything s3imgfs needs to build, test and run its demo on Debian 12.
# Idempotent: packages already present are skipped by apt; npm tools go under tests/.node.
# Usage: scripts/install-deps.sh [--build-only]
set -euo pipefail

build_pkgs=(
  build-essential pkg-config meson ninja-build git
  libcurl4-openssl-dev libssl-dev libinih-dev libcmocka-dev libexpat1-dev
  libvips-dev liborc-0.4-dev libvips-tools libfuse3-dev fuse3 libjansson-dev libmicrohttpd-dev
  clang libclang-rt-14-dev clang-format
)
test_pkgs=(
  ceph-mon ceph-osd ceph-mgr radosgw ceph-common ceph-base
  awscli curl python3-aiosmtpd python3-prometheus-client python3-yaml attr valgrind haproxy nftables s3cmd
  # tests/deploy/test_image.sh: the function's container image, built and run without Docker
  buildah mmdebstrap
  # the mount tests print the stacks of a core s3imgfs dumped
  gdb
  # tests/integration/test_resize_cli.sh: counts the program's execs of itself (huge pages)
  strace
  # tests/integration/test_gateway.sh (fusermount3 is in fuse3, getfattr in attr) and the peers
  # of bench/fuse-bench.sh
  rsync s3fs rclone
)

pkgs=("${build_pkgs[@]}")
if [ "${1:-}" != "--build-only" ]; then
  pkgs+=("${test_pkgs[@]}")
  # Node.js may come from elsewhere with its own npm (Debian's npm then conflicts): only add
  # Debian's when there is no node at all.
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all packages present"
