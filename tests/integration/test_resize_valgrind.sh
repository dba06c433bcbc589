#!/usr/bin/env bash
# s3imgfs-resize under valgrind memcheck over good, broken and hostile inputs: no invalid access,
# no use of uninitialised memory, no definite leak, and each input gets its expected verdict.
# Usage: test_resize_valgrind.sh PATH/TO/s3imgfs-resize
set -euo pipefail
tool=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/harness.sh
source "$here/harness.sh"
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 77; }
# valgrind and AddressSanitizer exclude each other: the ASan build skips this test. (ldd's
# output is read whole first: with pipefail, grep -q leaving at the first line could kill ldd
# with SIGPIPE, fail the pipe, and run this test on the ASan build; seen once in CI.)
if grep -q libasan <<<"$(ldd "$tool")"; then echo "sanitizer build: valgrind does not apply"; exit 77; fi

work=$(mktemp -d /tmp/s3imgfs-vg.XXXXXX)
trap 'rm -rf "$work"' EXIT
bash "$here/../fuzz/make-corpus.sh" "$work/corpus" >/dev/null 2>&1
in=$work/in
mkdir -p "$in"
for f in "$work"/corpus/*; do # distinct base names: outputs are named after them
  name=$(basename "$f"); cp "$f" "$in/${name//./-}.${name##*.}"
done
printf '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>' >"$in/drawing.svg"
head -c 3000 /dev/urandom >"$in/random.jpg"
vips black "$in/photo.jpg" 2000 1500

# No VIPSHOME here: the engine starts libvips without its modules and opens only the HEIF one,
# when a HEIF file needs it (docs/resize.md). The JPEG XL module, which it never opens, pulls in
# libhwy, whose start-up code runs RDTSCP, which valgrind 3.19 refuses on a CPU that does not
# list it (virtual machines hide it): loaded at start, as libvips does by itself, it killed the
# program with SIGILL under valgrind before main. On such a CPU (this project's CI machines) this
# run also checks that it is not loaded.
unset VIPSHOME

set +e
# --smc-check=all: libvips' resampling runs code that orc generates at run time, written through
# a second mapping of the same pages. When a program is freed and another one is generated at
# the same address, valgrind would otherwise go on running its translation of the old one (and
# crash in it); natively, there is nothing to see.
valgrind --smc-check=all --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite "$tool" -j 2 -o "$work/out" "$in"/* >"$work/stdout" 2>"$work/stderr"
rc=$?
set -e

case_ "valgrind found no memory error (exit $rc)" test "$rc" -ne 9
case_ "valgrind reports 0 errors" grep -q "ERROR SUMMARY: 0 errors" "$work/stderr"
case_ "exit 1: some inputs are refused" test "$rc" -eq 1
case_ "the photo got three renditions" test "$(grep -c '^.*photo.jpg	' "$work/stdout")" -eq 3
case_ "huge GIF frame refused by the pixel limit" grep -q "huge-frame.*limit is" "$work/stderr"
case_ "truncated JPEG refused" grep -q "truncated-jpg.jpg: truncated JPEG" "$work/stderr"
case_ "SVG refused" grep -q "drawing.svg: unsupported format: SVG" "$work/stderr"
case_ "random bytes skipped" grep -q "random.jpg: not an image, skipped" "$work/stderr"
[ "$failed" -eq 0 ] || { echo "--- stderr"; grep -v '^==' "$work/stderr" | head -40; }
finish
