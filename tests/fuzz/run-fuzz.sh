#!/usr/bin/env bash
# Runs a libFuzzer binary for a bounded time over a fresh copy of the seed corpus (made by
# make-corpus.sh in a temporary folder, removed afterwards). A crash, leak, timeout or
# out-of-memory input is saved in ARTIFACT_DIR and the exit status is non-zero.
# Usage: tests/fuzz/run-fuzz.sh FUZZER ARTIFACT_DIR
# Env: S3IMGFS_FUZZ_SECONDS (default 60), S3IMGFS_FUZZ_ARGS (more libFuzzer arguments).
set -euo pipefail

if [ $# -ne 2 ] || [ ! -x "$1" ]; then
  echo "usage: $0 FUZZER ARTIFACT_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fuzzer=$1
artifacts=$2
seconds=${S3IMGFS_FUZZ_SECONDS:-60}
case $seconds in '' | *[!0-9]*) echo "S3IMGFS_FUZZ_SECONDS must be a number of seconds" >&2; exit 2 ;; esac

corpus=$(mktemp -d /tmp/s3imgfs-fuzz-corpus.XXXXXX)
trap 'rm -rf "$corpus"' EXIT
"$here/make-corpus.sh" "$corpus" 2>/dev/null
mkdir -p "$artifacts"

# libvips' warnings about broken inputs are expected: keep the log readable.
export VIPS_WARNING=0
# shellcheck disable=SC2086
exec timeout --kill-after=30 $((seconds + 120)) "$fuzzer" "$corpus" \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" ${S3IMGFS_FUZZ_ARGS:-}
