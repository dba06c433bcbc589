#!/usr/bin/env bash
# Writes the seed corpus of the resize fuzzer into OUTDIR: a handful of tiny valid images of
# every format the engine reads (JPEG, progressive JPEG, PNG with alpha, GIF, animated GIF,
# WebP, TIFF, AVIF), a truncated JPEG and a GIF that claims 4 gigapixels, 9 KB in all. Made
# with the vips CLI (libvips-tools), so the corpus is not kept in the repository.
# Usage: tests/fuzz/make-corpus.sh OUTDIR
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
command -v vips >/dev/null 2>&1 || { echo "$0: vips is missing: install libvips-tools" >&2; exit 1; }
out=$1
mkdir -p "$out"
work=$(mktemp -d /tmp/s3imgfs-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A small sRGB image with some structure (a gradient plus noise) so encoders produce real data.
vips xyz "$work/xy.v" 24 16
vips extract_band "$work/xy.v" "$work/x.v" 0
vips linear "$work/x.v" "$work/xs.v" 10 0 --uchar
vips gaussnoise "$work/n.v" 24 16 --mean 96 --sigma 20
vips cast "$work/n.v" "$work/nu.v" uchar
vips bandjoin "$work/xs.v $work/nu.v $work/xs.v" "$work/rgb0.v"
vips copy "$work/rgb0.v" "$work/rgb.v" --interpretation srgb
# The same with an alpha band.
vips bandjoin "$work/rgb.v $work/nu.v" "$work/rgba.v"

vips copy "$work/rgb.v" "$out/seed.jpg[Q=60,strip]"
vips copy "$work/rgb.v" "$out/seed-progressive.jpg[Q=50,interlace,strip]"
vips copy "$work/rgba.v" "$out/seed-alpha.png[compression=9]"
vips copy "$work/rgb.v" "$out/seed.gif"
vips copy "$work/rgba.v" "$out/seed.webp[Q=50]"
vips copy "$work/rgb.v" "$out/seed.tiff[compression=deflate]"
vips copy "$work/rgb.v" "$out/seed.avif[Q=40,compression=av1,effort=0]"

# An animated GIF: 3 frames of 12x12, stacked vertically with page-height.
vips crop "$work/rgb.v" "$work/f.v" 0 0 12 12
vips join "$work/f.v" "$work/f.v" "$work/f2.v" vertical # (arrayjoin to .v crashes in 8.14.1)
vips join "$work/f2.v" "$work/f.v" "$work/anim.v" vertical
vips copy "$work/anim.v" "$out/seed-anim.gif[page-height=12]"

# A truncated JPEG: the first half of the seed.
size=$(stat -c %s "$out/seed.jpg")
head -c $((size / 2)) "$out/seed.jpg" >"$out/truncated.jpg"

# A 35-byte GIF whose 24x16 screen holds one frame that claims 65534x65535: a decoder that
# trusts the frame allocates 17 GB. The pixel limit must refuse it from the header. (Found by
# this fuzzer on an early engine; kept as a regression seed.)
printf 'GIF89a\x18\x00\x10\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff' >"$out/huge-frame.gif"
printf '\x2c\x00\x00\x00\x00\xfe\xff\xff\xff\x00\x02\x02\x44\x01\x00\x3b' >>"$out/huge-frame.gif"

ls -l "$out" >&2
