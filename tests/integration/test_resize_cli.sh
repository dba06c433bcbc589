#!/usr/bin/env bash
# The s3imgfs-resize command on real image files. Inputs are made with the vips CLI and every
# output is checked with vipsheader (width, height, loader, bands) and against the lines the
# command prints. Needs no servers (libvips-tools provides vips and vipsheader).
# Usage: tests/integration/test_resize_cli.sh PATH/TO/s3imgfs-resize
# Prints "ok N - ..." / "not ok N - ..." per case and "N passed, M failed"; exit 1 on a failure.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 PATH/TO/s3imgfs-resize (an executable)" >&2
  exit 2
fi
for tool in vips vipsheader; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "$tool is missing: install libvips-tools (scripts/install-deps.sh)" >&2
    exit 1
  }
done

cli=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
export LC_ALL=C.UTF-8
tmp=$(mktemp -d /tmp/s3imgfs-resize-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Nothing of the user's own setup may leak in: a private HOME (no ~/.config/s3imgfs, no ~/.aws),
# and no AWS_* variables. The command must work without any credentials.
for v in $(compgen -e | grep '^AWS_' || true); do unset "$v"; done
unset XDG_CONFIG_HOME
export HOME=$tmp/home
mkdir -p "$HOME"
# libvips complains on stderr about things such as a truncated file; that is fine, but keep
# its warnings out of the way of our own stderr checks where they would confuse a reader.
export VIPS_WARNING=0

# ---- helpers ------------------------------------------------------------------------------

# run ARGS...: runs the command; sets RC, OUT, ERR.
run() {
  set +e
  "$cli" "$@" >"$tmp/out" 2>"$tmp/err"
  RC=$?
  set -e
  OUT=$(cat "$tmp/out")
  ERR=$(cat "$tmp/err")
}

# shellcheck source=tests/integration/harness.sh
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
show() {
  diag "exit $RC"
  [ -z "$OUT" ] || sed 's/^/#   stdout: /' <<<"${OUT:0:800}"
  [ -z "$ERR" ] || sed 's/^/#   stderr: /' <<<"${ERR:0:800}"
}
want_rc() { [ "$RC" = "$1" ] || { diag "expected exit $1"; show; return 1; }; }
out_has() { grep -qF -- "$1" <<<"$OUT" || { diag "stdout lacks: $1"; show; return 1; }; }
err_has() { grep -qF -- "$1" <<<"$ERR" || { diag "stderr lacks: $1"; show; return 1; }; }
# ensure MESSAGE COMMAND...: runs the command; when it fails, says MESSAGE and fails.
ensure() {
  local msg=$1
  shift
  "$@" || { diag "$msg"; return 1; }
}
out_lacks() { ! grep -qF -- "$1" <<<"$OUT" || { diag "stdout has: $1"; show; return 1; }; }
err_empty() { [ -z "$ERR" ] || { diag "stderr is not empty"; show; return 1; }; }
err_lines() { # count
  local n
  n=$(grep -c . <<<"$ERR" || true)
  [ "$n" = "$1" ] || { diag "expected $1 lines on stderr, got $n"; show; return 1; }
}
out_lines() { # count
  local n
  n=$(grep -c . <<<"$OUT" || true)
  [ "$n" = "$1" ] || { diag "expected $1 lines on stdout, got $n"; show; return 1; }
}

# hdr FILE FIELD: one field of vipsheader -f.
hdr() { vipsheader -f "$2" "$1" 2>/dev/null; }

# check_image FILE WIDTH HEIGHT LOADER BANDS: the file decodes, with these properties.
check_image() {
  local f=$1 w=$2 h=$3 loader=$4 bands=$5 got
  [ -f "$f" ] || { diag "missing output $f"; return 1; }
  got="$(hdr "$f" width)x$(hdr "$f" height) $(hdr "$f" vips-loader) $(hdr "$f" bands)"
  [ "$got" = "${w}x${h} $loader $bands" ] ||
    { diag "$f: got '$got', expected '${w}x${h} $loader $bands'"; return 1; }
}

# check_line INPUT SIZE WxH FORMAT FILE: stdout has the line of that rendition, with the file's
# size in bytes and a number of milliseconds.
check_line() {
  local input=$1 size=$2 dims=$3 format=$4 file=$5 bytes line
  bytes=$(stat -c %s "$file")
  line=$(awk -F'\t' -v i="$input" -v s="$size" '$1 == i && $2 == s' <<<"$OUT")
  [ -n "$line" ] || { diag "no line for $input $size"; show; return 1; }
  awk -F'\t' -v d="$dims" -v f="$format" -v b="$bytes" '
    NF != 6 || $3 != d || $4 != f || $5 != b || $6 !~ /^[0-9]+(\.[0-9]+)?$/ { exit 1 }' <<<"$line" ||
    { diag "bad line: $line" "expected: $input	$size	$dims	$format	$bytes	<ms>"; return 1; }
}

# No temporary (hidden) file may be left in the output folders.
no_temp_files() {
  local left
  left=$(find "$tmp"/o-* "$tmp/deep" -name '.*' | head -5)
  [ -z "$left" ] || { diag "temporary files left: $left"; return 1; }
}


# ---- inputs -------------------------------------------------------------------------------

in=$tmp/in
mkdir -p "$in"
# An sRGB noise image of WxH as a .v file (uchar, 3 bands).
make_rgb() { # out.v width height
  vips gaussnoise "$tmp/noise.v" "$2" "$3" --mean 128 --sigma 30
  vips cast "$tmp/noise.v" "$tmp/noise-u.v" uchar
  vips colourspace "$tmp/noise-u.v" "$1" srgb
  rm -f "$tmp/noise.v" "$tmp/noise-u.v"
}
make_rgb "$tmp/photo.v" 4000 3000
vips copy "$tmp/photo.v" "$in/photo.jpg[Q=90]"
make_rgb "$tmp/small.v" 800 600
for i in 1 2 3 4 5 6; do
  vips copy "$tmp/small.v" "$in/batch$i.jpg[Q=$((60 + i * 5))]"
done
vips copy "$tmp/small.v" "$in/small.png"
printf 'just some text, not an image\n' >"$in/notes.txt"
size=$(stat -c %s "$in/photo.jpg")
head -c $((size / 2)) "$in/photo.jpg" >"$in/truncated.jpg"

# ---- cases --------------------------------------------------------------------------------

t_default_sizes() {
  local o=$tmp/o-default
  run -o "$o" "$in/photo.jpg"
  want_rc 0 && err_empty && out_lines 3 &&
    check_image "$o/thumbnail/photo.jpg" 150 150 jpegload 3 &&
    check_image "$o/medium/photo.jpg" 640 480 jpegload 3 &&
    check_image "$o/large/photo.jpg" 1280 960 jpegload 3 &&
    check_line "$in/photo.jpg" thumbnail 150x150 jpeg "$o/thumbnail/photo.jpg" &&
    check_line "$in/photo.jpg" medium 640x480 jpeg "$o/medium/photo.jpg" &&
    check_line "$in/photo.jpg" large 1280x960 jpeg "$o/large/photo.jpg" &&
    ensure "expected exactly 3 files" [ "$(find "$o" -type f | wc -l)" = 3 ]
}
case_ "default sizes on a 4000x3000 JPEG: 150x150, 640x480, 1280x960" t_default_sizes

t_one_side() {
  local o=$tmp/o-oneside
  run --sizes 'wide:400x, tall:x240, box:100x100:cover:png' -o "$o" "$in/photo.jpg"
  want_rc 0 && out_lines 3 &&
    check_image "$o/wide/photo.jpg" 400 300 jpegload 3 &&
    check_image "$o/tall/photo.jpg" 320 240 jpegload 3 &&
    check_image "$o/box/photo.png" 100 100 pngload 3 &&
    check_line "$in/photo.jpg" wide 400x300 jpeg "$o/wide/photo.jpg" &&
    check_line "$in/photo.jpg" tall 320x240 jpeg "$o/tall/photo.jpg" &&
    check_line "$in/photo.jpg" box 100x100 png "$o/box/photo.png" &&
    ensure "the default sizes were made too" [ ! -e "$o/thumbnail" ]
}
case_ "--sizes with one-side bounds (400x, x240) and a per-size format" t_one_side

# t_format FORMAT EXT LOADER
t_format() {
  local o=$tmp/o-$1
  run --format "$1" --sizes 'medium:640x640' -o "$o" "$in/photo.jpg"
  want_rc 0 && out_lines 1 &&
    check_image "$o/medium/photo.$2" 640 480 "$3" 3 &&
    check_line "$in/photo.jpg" medium 640x480 "$1" "$o/medium/photo.$2" &&
    ensure "expected exactly 1 file" [ "$(find "$o" -type f | wc -l)" = 1 ]
}
t_webp() { t_format webp webp webpload; }
t_png() { t_format png png pngload; }
t_avif() {
  t_format avif avif heifload &&
    { [ "$(hdr "$tmp/o-avif/medium/photo.avif" heif-compression)" = av1 ] ||
      { diag "not AV1-compressed: $(hdr "$tmp/o-avif/medium/photo.avif" heif-compression)"; return 1; }; }
}
case_ "--format webp" t_webp
case_ "--format png" t_png
case_ "--format avif" t_avif

t_quality() {
  local o=$tmp/o-quality
  run --quality 20 --sizes 'low:640x640, high:640x640:q95' -o "$o" "$in/photo.jpg"
  want_rc 0 && out_lines 2 || return 1
  local low high
  low=$(stat -c %s "$o/low/photo.jpg")
  high=$(stat -c %s "$o/high/photo.jpg")
  [ "$low" -lt "$high" ] || { diag "q20 ($low bytes) is not smaller than q95 ($high bytes)"; return 1; }
}
case_ "--quality applies to sizes that name none" t_quality

t_format_auto() {
  local o=$tmp/o-auto
  run --sizes 'medium:400x400' -o "$o" "$in/small.png"
  want_rc 0 && check_image "$o/medium/small.png" 400 300 pngload 3 &&
    check_line "$in/small.png" medium 400x300 png "$o/medium/small.png"
}
case_ "format auto keeps a PNG a PNG" t_format_auto

t_jobs() {
  local o1=$tmp/o-j1 o2=$tmp/o-j2 files=() i
  for i in 1 2 3 4 5 6; do files+=("$in/batch$i.jpg"); done
  run -j 1 -o "$o1" "${files[@]}"
  want_rc 0 && out_lines 18 || return 1
  local lines1
  lines1=$(cut -f1-5 <<<"$OUT" | sort)
  run -j 2 -o "$o2" "${files[@]}"
  want_rc 0 && out_lines 18 || return 1
  [ "$lines1" = "$(cut -f1-5 <<<"$OUT" | sort)" ] || { diag "-j 1 and -j 2 print different lines"; return 1; }
  (cd "$o1" && find . -type f | sort | xargs md5sum) >"$tmp/sums1"
  (cd "$o2" && find . -type f | sort | xargs md5sum) >"$tmp/sums2"
  [ "$(wc -l <"$tmp/sums1")" = 18 ] || { diag "expected 18 files, got $(wc -l <"$tmp/sums1")"; return 1; }
  cmp -s "$tmp/sums1" "$tmp/sums2" || { diag "-j 1 and -j 2 wrote different files"; diff "$tmp/sums1" "$tmp/sums2" | sed 's/^/#   /'; return 1; }
  # The lines of one input stay together, whatever the order of inputs.
  local prev="" seen="" f
  while IFS=$'\t' read -r f _; do
    if [ "$f" != "$prev" ]; then
      case " $seen " in *" $f "*) diag "the lines of $f are split"; return 1 ;; esac
      seen="$seen $f"
      prev=$f
    fi
  done <<<"$OUT"
}
case_ "-j 2 over 6 files gives the same outputs as -j 1" t_jobs

t_threads() {
  local o=$tmp/o-threads
  run --threads 2 -j 3 --sizes 'medium:640x640' -o "$o" "$in/batch1.jpg" "$in/batch2.jpg" "$in/photo.jpg"
  want_rc 0 && out_lines 3 && check_image "$o/medium/photo.jpg" 640 480 jpegload 3
}
case_ "--threads 2 with -j 3" t_threads

t_not_image() {
  local o=$tmp/o-notimage
  run -o "$o" "$in/notes.txt" "$in/batch1.jpg"
  want_rc 0 && out_lines 3 &&
    err_has "s3imgfs-resize: $in/notes.txt: not an image, skipped" && err_lines 1 &&
    ensure "outputs were made for the text file" [ -z "$(find "$o" -name 'notes*')" ]
}
case_ "a non-image is skipped with a message and exit 0" t_not_image

t_truncated() {
  local o=$tmp/o-truncated
  run -o "$o" "$in/truncated.jpg" "$in/batch1.jpg"
  want_rc 1 && err_has "s3imgfs-resize: $in/truncated.jpg: " && err_lines 1 || return 1
  # Nothing of the truncated file, everything of the good one.
  [ -z "$(find "$o" -name 'truncated*')" ] || { diag "outputs of the truncated file exist"; return 1; }
  out_lines 3 && check_image "$o/large/batch1.jpg" 800 600 jpegload 3 &&
    out_lacks "truncated.jpg"
}
case_ "a truncated JPEG fails (exit 1, stderr names it), the other files are made" t_truncated

t_missing_input() {
  run -o "$tmp/o-missing" "$in/no-such-file.jpg" "$in/batch1.jpg"
  want_rc 1 && err_has "s3imgfs-resize: $in/no-such-file.jpg: No such file or directory" &&
    out_lines 3
}
case_ "a missing input fails with exit 1, the others are made" t_missing_input

t_not_regular() {
  mkfifo "$tmp/fifo.jpg"
  run -o "$tmp/o-notregular" "$tmp/fifo.jpg" "$in" "$in/batch1.jpg"
  want_rc 1 && err_has "s3imgfs-resize: $tmp/fifo.jpg: not a regular file" &&
    err_has "s3imgfs-resize: $in: is a folder" && err_lines 2 && out_lines 3
}
case_ "a FIFO or a folder as input fails (without blocking), the others are made" t_not_regular

t_same_name() {
  local o=$tmp/o-same
  mkdir -p "$tmp/other"
  cp "$in/batch2.jpg" "$tmp/other/batch1.jpg"
  run -o "$o" "$in/batch1.jpg" "$tmp/other/batch1.jpg"
  want_rc 1 && err_has "s3imgfs-resize: $tmp/other/batch1.jpg: " && err_has "$in/batch1.jpg" &&
    out_lines 3 && out_has "$in/batch1.jpg	large" &&
    ensure "the first file's renditions were overwritten" \
      cmp -s "$o/large/batch1.jpg" "$tmp/o-j1/large/batch1.jpg"
}
case_ "two inputs with the same name: the second one fails, the first is kept" t_same_name

t_bad_sizes() {
  local o=$tmp/o-badsizes
  run --sizes 'medium:640y480' -o "$o" "$in/photo.jpg"
  want_rc 2 && err_has "s3imgfs-resize: --sizes medium:640y480: " && err_lines 1 &&
    [ -z "$OUT" ] &&
    ensure "the output folder was made" [ ! -e "$o" ] || return 1
  run --sizes 'a:20000x10' -o "$o" "$in/photo.jpg"
  want_rc 2 && err_has "width 20000 is out of range"
}
case_ "a bad --sizes gives exit 2 and a message" t_bad_sizes

t_usage() {
  run "$in/photo.jpg"
  want_rc 2 && err_has "-o OUTDIR" || return 1
  run -o "$tmp/o-usage"
  want_rc 2 && err_has "no input files" || return 1
  run -j 0 -o "$tmp/o-usage" "$in/photo.jpg"
  want_rc 2 && err_has "-j wants an integer" || return 1
  run --quality 0 -o "$tmp/o-usage" "$in/photo.jpg"
  want_rc 2 && err_has "--quality 0: expected an integer from 1 to 100" || return 1
  run --format gif -o "$tmp/o-usage" "$in/photo.jpg"
  want_rc 2 && err_has "--format gif: expected one of auto, jpeg, webp, avif, png" || return 1
  run --frobnicate -o "$tmp/o-usage" "$in/photo.jpg"
  want_rc 2 && err_has "unknown option --frobnicate" || return 1
  run -c "$tmp/no-such-config.ini" -o "$tmp/o-usage" "$in/photo.jpg"
  want_rc 2 && err_has "no-such-config.ini" || return 1
  [ ! -e "$tmp/o-usage" ] || { diag "the output folder was made"; return 1; }
  run --help
  want_rc 0 && out_has "Usage: s3imgfs-resize" && out_has "--threads" || return 1
  run --version
  want_rc 0 && out_has "s3imgfs-resize "
}
case_ "usage and configuration errors give exit 2; --help and --version exit 0" t_usage

t_config_file() {
  local o=$tmp/o-config conf=$tmp/resize.ini
  printf '[resize]\nsizes = sq:64x64:cover, w:200x\nformat = webp\nquality = 70\n' >"$conf"
  run -c "$conf" -o "$o" "$in/batch3.jpg"
  want_rc 0 && out_lines 2 &&
    check_image "$o/sq/batch3.webp" 64 64 webpload 3 &&
    check_image "$o/w/batch3.webp" 200 150 webpload 3 || return 1
  # The options win over the file.
  run -c "$conf" --format png --sizes 'w:100x' -o "$o" "$in/batch3.jpg"
  want_rc 0 && out_lines 1 && check_image "$o/w/batch3.png" 100 75 pngload 3 || return 1
  # The default file, found through HOME, is used without -c.
  mkdir -p "$HOME/.config/s3imgfs"
  cp "$conf" "$HOME/.config/s3imgfs/config.ini"
  run -o "$tmp/o-config-home" "$in/batch3.jpg"
  rm -f "$HOME/.config/s3imgfs/config.ini"
  want_rc 0 && check_image "$tmp/o-config-home/sq/batch3.webp" 64 64 webpload 3
}
case_ "-c CONFIG gives the sizes, format and quality; options win over it" t_config_file

t_limits() {
  local o=$tmp/o-limits conf=$tmp/limits.ini
  printf '[resize]\nmax_pixels = 10M\n' >"$conf"
  run -c "$conf" -o "$o" "$in/photo.jpg" "$in/batch1.jpg"
  want_rc 1 && err_has "s3imgfs-resize: $in/photo.jpg: " && out_lines 3 &&
    ensure "the 12 MP photo was resized" [ -z "$(find "$o" -name 'photo*')" ] || return 1
  printf '[resize]\nmax_file_mb = 1\n' >"$conf"
  run -c "$conf" -o "$o" "$in/photo.jpg"
  want_rc 1 && err_has "s3imgfs-resize: $in/photo.jpg: "
}
case_ "the config's max_pixels and max_file_mb are applied" t_limits

t_outdir_created() {
  local o=$tmp/deep/er/out
  run --sizes 'medium:640x640' -o "$o" "$in/batch4.jpg"
  want_rc 0 && check_image "$o/medium/batch4.jpg" 640 480 jpegload 3 || return 1
  # A file where a folder should be: a clear error, exit 1.
  : >"$tmp/plainfile"
  run -o "$tmp/plainfile/out" "$in/batch4.jpg"
  want_rc 1 && err_has "cannot create the folder $tmp/plainfile"
}
case_ "a missing OUTDIR is created (with its parents)" t_outdir_created

t_overwrite() {
  # Running again replaces the outputs in place (atomically, by rename).
  local o=$tmp/o-default before after
  before=$(stat -c %i "$o/medium/photo.jpg")
  run -o "$o" "$in/photo.jpg"
  after=$(stat -c %i "$o/medium/photo.jpg")
  want_rc 0 && ensure "the output was not replaced by a new file" [ "$before" != "$after" ] &&
    check_image "$o/medium/photo.jpg" 640 480 jpegload 3
}
case_ "a second run replaces the outputs" t_overwrite

# execs ARGS...: how many times the command ran itself again (execve of /proc/self/exe).
execs() {
  strace -f -qq -e trace=execve -o "$tmp/strace" "$cli" "$@" >/dev/null 2>&1 || true
  grep -c 'execve("/proc/self/exe"' "$tmp/strace" || true
}
t_huge_pages() {
  # Two files or more: run again once with malloc on huge pages (docs/resize.md, Memory); one
  # file: the exec would cost more than it saves; S3IMGFS_HUGEPAGES=0: never.
  local o=$tmp/o-hp n1 n2 n0
  n2=$(execs -o "$o" "$in/batch1.jpg" "$in/small.png")
  n1=$(execs -o "$o" "$in/batch1.jpg")
  n0=$(S3IMGFS_HUGEPAGES=0 execs -o "$o" "$in/batch1.jpg" "$in/batch2.jpg")
  ensure "two files: $n2 execs, one file: $n1, S3IMGFS_HUGEPAGES=0: $n0 (want 1, 0, 0)" \
    [ "$n2/$n1/$n0" = 1/0/0 ] &&
    check_image "$o/medium/small.png" 640 480 pngload 3
}
if ! command -v strace >/dev/null 2>&1; then
  skip_case "two files or more: run again with huge pages" "no strace"
elif ! grep -qE '\[(madvise|always)\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null; then
  skip_case "two files or more: run again with huge pages" "the kernel gives no huge pages"
else
  case_ "two files or more: run again with huge pages, once; not for one file" t_huge_pages
fi

t_no_temp() { no_temp_files; }
case_ "no temporary files are left behind" t_no_temp

finish
