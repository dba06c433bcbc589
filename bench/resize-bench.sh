#!/usr/bin/env bash
# resize-bench.sh [BUILD_DIR]: s3imgfs-resize against its peers on one folder of real photos.
#
# A benchmark, not a test: it always exits 0 once it has printed its table (1 only when it
# could not run at all), and it writes nothing but stdout (and temporary files, removed at exit).
#
# The task, for every contender: each image of the corpus into
#   thumbnail 150x150 cover (centre crop), medium 640x640 fit, large 1280x1280 fit, JPEG q80,
# written to OUT/<size>/<name>.jpg, with 2-way parallelism (see the header it prints for exactly
# what each contender does). Each contender runs REPS times, round-robin (rep 1 of every
# contender, then rep 2, ...); the table shows the median of the reps for each figure.
#
# BUILD_DIR: the Meson build folder holding tools/s3imgfs-resize (default: build at the top of
# the repository). When the binary is missing it tries `ninja -C BUILD_DIR tools/s3imgfs-resize`
# (after `meson setup BUILD_DIR` when needed); if that fails, the peers are still measured.
#
# Environment:
#   PHOTOS=DIR        corpus folder (default bench/.photos, filled by bench/get-photos.sh)
#   REPS=3            runs per contender
#   JOBS=2            parallelism of every contender
#   CONTENDERS="..."  subset, by name: ours-j2 ours-j1 pillow-tutorial pillow-tuned
#                     sharp-clone sharp-raw vipsthumbnail floor, and the reference lines ours-j2-4k
#                     (S3IMGFS_HUGEPAGES=0) and pillow-tuned-hp (Pillow with malloc on huge pages);
#                     floor: not a contender but the reference line "decode and encode only, no
#                     resampling", see floor.py
#   KEEP_OUT=DIR      keep the renditions of the last rep in DIR/<contender>/ for a look
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${1:-$repo/build}
photos=${PHOTOS:-$here/.photos}
reps=${REPS:-3}
jobs=${JOBS:-2}
all_contenders="ours-j2 ours-j1 ours-j2-4k pillow-tutorial pillow-tuned pillow-tuned-hp sharp-clone sharp-raw vipsthumbnail floor"
contenders=${CONTENDERS:-$all_contenders}
py=/usr/bin/python3 # Debian's python, for python3-pil (not a python first on PATH)
export VIPS_WARNING=0 # libvips' "unknown EXIF resolution unit" chatter on some of the photos

note() { printf 'resize-bench: %s\n' "$*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/resize-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- tools --------------------------------------------------------------------------------
need_pkgs=()
for p in python3-pil libvips-tools; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
# node and npm: whatever provides them (Debian's nodejs + npm, or a nodejs that bundles npm)
command -v node >/dev/null || need_pkgs+=(nodejs)
command -v npm >/dev/null || need_pkgs+=(npm)
if ((${#need_pkgs[@]})); then
    note "installing ${need_pkgs[*]}"
    apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null 2>&1 || {
        apt-get update >/dev/null
        apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null
    }
fi

sharp_ok=1
if [[ ! -d $here/node_modules/sharp ]]; then
    note "installing sharp into bench/node_modules (npm ci)"
    (cd "$here" && npm ci --no-audit --no-fund >&2) || sharp_ok=0
fi
# shellcheck disable=SC2016 # JavaScript template literals, not shell
sharp_info=$(cd "$here" && node -e '
    import("sharp").then(({default: s}) => console.log(
        `sharp ${s.versions.sharp} (libvips ${s.versions.vips}, prebuilt from npm; concurrency ${s.concurrency()} thread per pipeline)`))' 2>"$tmp/sharp.err") ||
    { sharp_ok=0; sharp_info="sharp: unavailable ($(head -c 300 "$tmp/sharp.err"))"; }

# Always through ninja (a no-op when up to date), so a stale binary is never measured.
ours=$build/tools/s3imgfs-resize
ours_ok=0
if [[ -f $build/build.ninja ]] || meson setup -Dtests=disabled "$build" "$repo" >"$tmp/setup.log" 2>&1; then
    ninja -C "$build" tools/s3imgfs-resize >"$tmp/ninja.log" 2>&1 && [[ -x $ours ]] && ours_ok=1
    ((ours_ok)) || tail -5 "$tmp/ninja.log" >&2
else
    tail -5 "$tmp/setup.log" >&2
fi
((ours_ok)) || note "s3imgfs-resize does not build in $build: measuring the peers only"

# ---- corpus -------------------------------------------------------------------------------
"$here/get-photos.sh" "$photos"
mapfile -t files < <(find "$photos" -maxdepth 1 -type f \
    \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) | sort)
((${#files[@]})) || { note "no images in $photos"; exit 1; }
cat "${files[@]}" >/dev/null # into the page cache before anything is timed

# ---- contenders ---------------------------------------------------------------------------
# `$tmp/out/<contender>` is removed and recreated before every run.
printf '[resize]\n' >"$tmp/bench.ini" # explicit, so no ~/.config/s3imgfs/config.ini applies
ours_sizes="thumbnail:150x150:cover:centre, medium:640x640, large:1280x1280"

# vipsthumbnail: one process per size per image, two at a time (xargs -P); no shell in between.
vt_jobs() {
    local out=$1 f
    for f in "${files[@]}"; do
        printf -- '--size 150x150 --smartcrop centre -o %s/thumbnail/%%s.jpg[Q=80,optimize_coding,strip] %s\n' "$out" "$f"
        printf -- '--size 640x640 -o %s/medium/%%s.jpg[Q=80,optimize_coding,strip] %s\n' "$out" "$f"
        printf -- '--size 1280x1280 -o %s/large/%%s.jpg[Q=80,optimize_coding,strip] %s\n' "$out" "$f"
    done
}

describe() {
    case $1 in
    ours-j2) echo "s3imgfs-resize -j $jobs --sizes '$ours_sizes' --format jpeg --quality 80: one process, $jobs files at once, libvips threads per image = CPUs / $jobs (its default); one decode per image (shrunk on load), each size made from the decoded picture or from a larger size" ;;
    ours-j1) echo "s3imgfs-resize -j 1, same options: one file at a time (reference; libvips uses one thread per CPU for it)" ;;
    ours-j2-4k) echo "reference: s3imgfs-resize -j $jobs with S3IMGFS_HUGEPAGES=0, so malloc stays on 4 KiB pages (by default the program runs itself again with glibc.malloc.hugetlb=1, docs/resize.md, Memory)" ;;
    pillow-tuned-hp) echo "reference, not a peer: pillow-tuned run with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, the malloc setting s3imgfs gives itself, which Pillow does not: how much of the difference is memory handling" ;;
    pillow-tutorial) echo "Pillow $pil_version (Debian python3-pil, /usr/bin/python3), as the AWS Lambda thumbnail tutorial: per size Image.open + thumbnail(size) (ImageOps.fit for cover) + save(quality=80), so 3 opens/decodes per image; multiprocessing.Pool($jobs), one image per task" ;;
    pillow-tuned) echo "Pillow $pil_version: one open, draft('RGB', largest need) for JPEG (DCT shrink-on-load), one decode, 3x resize(BICUBIC, reducing_gap=2) from it (centre-crop box for cover), save(quality=80); multiprocessing.Pool($jobs)" ;;
    sharp-clone) echo "$sharp_info on Node $(node --version): readFile, sharp(buf), per size .clone().rotate().resize().jpeg({quality:80}).toFile() (a clone decodes again, shrink-on-load per size); one process, $jobs images in flight, sizes in turn" ;;
    sharp-raw) echo "sharp, one decode per image: .rotate().resize(largest need).raw().toBuffer(), then 3 resizes of that buffer to JPEG q80; one process, $jobs images in flight" ;;
    floor) echo "reference, not a contender: the least a tool decoding with libjpeg-turbo at these scales can spend: decoded as pillow-tuned (draft shrink-on-load, one decode), then per size a crop of the rendition's width x height (no resampling) saved with quality=80, optimize=True (as issue #3 asks); malloc on huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1, as s3imgfs does: page faults are part of what a tool can save); Pool($jobs)" ;;
    vipsthumbnail) echo "vipsthumbnail (Debian libvips-tools $vips_version): one process per size per image (3 per image) under xargs -P $jobs; --size 150x150 --smartcrop centre | --size 640x640 | --size 1280x1280, -o OUT/<size>/%s.jpg[Q=80,optimize_coding,strip]" ;;
    esac
}

command_for() { # contender out -> the command, one word a line (so paths may hold spaces)
    local c=$1 out=$2
    case $c in
    ours-j2 | ours-j1 | ours-j2-4k)
        local j=$jobs
        [[ $c == ours-j1 ]] && j=1
        [[ $c == ours-j2-4k ]] && printf '%s\n' env S3IMGFS_HUGEPAGES=0
        printf '%s\n' "$ours" -c "$tmp/bench.ini" --sizes "$ours_sizes" --format jpeg \
            --quality 80 -j "$j" -o "$out" "${files[@]}" ;;
    pillow-tutorial) printf '%s\n' "$py" "$here/pillow_tutorial.py" -j "$jobs" -o "$out" "${files[@]}" ;;
    pillow-tuned) printf '%s\n' "$py" "$here/pillow_tuned.py" -j "$jobs" -o "$out" "${files[@]}" ;;
    pillow-tuned-hp)
        printf '%s\n' env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$py" "$here/pillow_tuned.py" \
            -j "$jobs" -o "$out" "${files[@]}" ;;
    floor)
        printf '%s\n' env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$py" "$here/floor.py" -j "$jobs" \
            -o "$out" "${files[@]}" ;;
    sharp-clone | sharp-raw)
        printf '%s\n' node "$here/sharp_bench.mjs" --mode "${c#sharp-}" -j "$jobs" -o "$out" "${files[@]}" ;;
    vipsthumbnail)
        vt_jobs "$out" >"$tmp/vt-jobs.txt"
        printf '%s\n' xargs -a "$tmp/vt-jobs.txt" -P "$jobs" -L 1 vipsthumbnail ;;
    esac
}

vips_version=$(vips --version | sed 's/^vips-//')
pil_version=$("$py" -c 'import PIL; print(PIL.__version__)')

run_list=()
for c in $contenders; do
    case $c in
    ours-*) ((ours_ok)) || continue ;;
    sharp-*) ((sharp_ok)) || { note "skipping $c: $sharp_info"; continue; } ;;
    pillow-* | vipsthumbnail | floor) ;;
    *) note "unknown contender $c (known: $all_contenders)"; exit 1 ;;
    esac
    run_list+=("$c")
done

# ---- runs ---------------------------------------------------------------------------------
: >"$tmp/results.jsonl"
: >"$tmp/meta.tsv"
for c in "${run_list[@]}"; do printf '%s\t%s\n' "$c" "$(describe "$c")" >>"$tmp/meta.tsv"; done

for ((rep = 1; rep <= reps; rep++)); do
    for c in "${run_list[@]}"; do
        out=$tmp/out/$c
        rm -rf "$out"
        mkdir -p "$out/thumbnail" "$out/medium" "$out/large"
        mapfile -t cmd < <(command_for "$c" "$out")
        m=$("$py" "$here/measure.py" --stdout "$tmp/stdout" -- "${cmd[@]}" 2>"$tmp/stderr")
        check=$("$py" "$here/verify.py" "$photos" "$out" || true)
        lines=$(wc -l <"$tmp/stdout")
        errs=$(grep -v '^\s*$' "$tmp/stderr" | head -3 | tr '\n' ' ' | cut -c1-300 || true)
        "$py" - "$c" "$rep" "$reps" "$m" "$check" "$lines" "$errs" >>"$tmp/results.jsonl" <<'EOF'
import json, sys
c, rep, reps, m, check, lines, errs = sys.argv[1:]
d = json.loads(m)
d.update(contender=c, rep=int(rep), check=check, stdout_lines=int(lines), stderr=errs)
print(json.dumps(d))
print("resize-bench: rep %s/%s %-15s %6.2f s wall %6.2f s CPU  max RSS %4.0f MB  others %.2f cores"
      "  rc %d  %s" % (rep, reps, c, d["wall"], d["cpu"], d["maxrss_mb"], d["other_cores"],
                       d["rc"], check), file=sys.stderr)
EOF
        if [[ -n ${KEEP_OUT:-} && $rep -eq $reps ]]; then
            mkdir -p "$KEEP_OUT" && rm -rf "${KEEP_OUT:?}/$c" && cp -r "$out" "$KEEP_OUT/$c"
        fi
        rm -rf "$out"
    done
done

ours_version=""
if ((ours_ok)); then
    buildtype=$(meson introspect --buildoptions "$build" 2>/dev/null | "$py" -c '
import json, sys
print(next((o["value"] for o in json.load(sys.stdin) if o["name"] == "buildtype"), "?"))' || true)
    ours_version="$("$ours" --version 2>/dev/null || true) (Meson buildtype ${buildtype:-?}, $build)"
fi
"$py" "$here/report.py" --photos "$photos" --results "$tmp/results.jsonl" --meta "$tmp/meta.tsv" \
    --jobs "$jobs" --reps "$reps" --ours-version "${ours_version:-not built ($ours)}" \
    --vips "$vips_version" --sharp "$sharp_info"
