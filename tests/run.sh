#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's:
#   1. installs what it needs (scripts/install-deps.sh, npm packages for fauxqs);
#   2. starts the servers the integration tests use, on 127.0.0.1 (Ceph radosgw, fauxqs,
#      aiosmtpd, a webhook receiver), once for the whole run, and stops them on exit whatever
#      happens;
#   3. builds and runs every test twice: a normal build and an ASan+UBSan build.
# Usage: tests/run.sh [--no-sanitize] [meson test arguments...]
# Env: S3IMGFS_TEST_STATE (state folder; default a new /tmp folder), S3IMGFS_RGW_PORT (7480),
#      S3IMGFS_SNS_PORT (4566), S3IMGFS_SMTP_PORT (2525), S3IMGFS_WEBHOOK_PORT (8088).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

sanitize=1
if [ "${1:-}" = "--no-sanitize" ]; then sanitize=0; shift; fi

scripts/install-deps.sh
# The file system tests need /dev/fuse; a container may have the kernel module but not the node.
if [ ! -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
  modprobe fuse 2>/dev/null || true
  [ -e /dev/fuse ] || mknod -m 0666 /dev/fuse c 10 229 || true
fi

state=${S3IMGFS_TEST_STATE:-$(mktemp -d /tmp/s3imgfs-test.XXXXXX)}
stop_servers() {
  "$root/scripts/servers/webhook-stop.sh" "$state" || true
  "$root/scripts/servers/smtp-stop.sh" "$state" || true
  "$root/scripts/servers/fauxqs-stop.sh" "$state" || true
  "$root/scripts/servers/rgw-stop.sh" "$state" --purge || true
}
trap stop_servers EXIT

scripts/servers/rgw-start.sh "$state" "${S3IMGFS_RGW_PORT:-7480}"
scripts/servers/fauxqs-start.sh "$state" "${S3IMGFS_SNS_PORT:-4566}"
scripts/servers/smtp-start.sh "$state" "${S3IMGFS_SMTP_PORT:-2525}"
scripts/servers/webhook-start.sh "$state" "${S3IMGFS_WEBHOOK_PORT:-8088}"
# shellcheck disable=SC1091
source "$state/env.sh"
export S3IMGFS_REQUIRE_SERVERS=1

run_suite() {
  local dir=$1; shift
  local setup_args=("$@")
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "$dir" "${setup_args[@]}" >/dev/null
  else
    rm -rf "$dir" # a half-made build folder (an interrupted setup) cannot be reconfigured
    meson setup "$dir" "${setup_args[@]}"
  fi
  ninja -C "$dir"
  meson test -C "$dir" --print-errorlogs --num-processes 2 "${test_args[@]}"
}

test_args=("$@")
echo "== build and test (debugoptimized)"
run_suite build
# The release build (-O3, as deploy/Dockerfile makes the function) must compile warning-free:
# GCC warns at -O3 where -O2 does not.
echo "== release build (-O3, -Werror)"
if [ -f build-release/meson-private/coredata.dat ]; then
  meson setup --reconfigure build-release --buildtype=release -Dtests=disabled >/dev/null
else
  rm -rf build-release
  meson setup build-release --buildtype=release -Dtests=disabled >/dev/null
fi
ninja -C build-release
if [ "$sanitize" = 1 ]; then
  echo "== build and test (ASan + UBSan)"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  # The image test builds its own binary inside the image: once (above) is enough.
  test_args=(--no-suite image "${test_args[@]}")
  run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
fi
if [ "$sanitize" = 1 ]; then
  # The decoder fuzzer, for a bounded time: libFuzzer needs clang; only the fuzz suite runs here.
  echo "== fuzz the resize engine (${S3IMGFS_FUZZ_SECONDS:-60} s)"
  fuzz_args=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
             -Dc_args=-fsanitize=fuzzer-no-link -Dbuildtype=debugoptimized)
  if [ -f build-fuzz/meson-private/coredata.dat ]; then
    CC=clang meson setup --reconfigure build-fuzz "${fuzz_args[@]}" >/dev/null
  else
    rm -rf build-fuzz
    CC=clang meson setup build-fuzz "${fuzz_args[@]}" >/dev/null
  fi
  ninja -C build-fuzz tests/fuzz/fuzz_resize
  S3IMGFS_FUZZ_SECONDS=${S3IMGFS_FUZZ_SECONDS:-60} \
    meson test -C build-fuzz --no-rebuild --suite fuzz --print-errorlogs
fi
echo "== all tests passed"
