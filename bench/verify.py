#!/usr/bin/python3
"""verify.py PHOTOS_DIR OUTDIR: check one contender's renditions with vipsheader.

Every image of PHOTOS_DIR must have OUTDIR/<size>/<name>.jpg for thumbnail (150x150 cover),
medium (640x640 fit) and large (1280x1280 fit), each a JPEG (vipsheader's loader is jpegload) of
the expected size: cover exactly 150x150, fit the source (as displayed, after its EXIF
orientation) scaled down to fit the box, never up; tools round differently, so 1 pixel either way
is accepted. All renditions are checked (one vipsheader call for all of them), not a sample.
Prints one line "ok N/N" or "FAIL k/N: <first problems>" and exits 0 or 1.
"""
import os
import re
import subprocess
import sys

SIZES = [("thumbnail", 150, 150, True), ("medium", 640, 640, False),
         ("large", 1280, 1280, False)]
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")
LINE = re.compile(r"^(.*): (\d+)x(\d+) .*, (\w+)$")


def headers(paths):
    """path -> (width, height, loader) for the files vipsheader could read."""
    out = {}
    for i in range(0, len(paths), 200):
        chunk = paths[i:i + 200]
        r = subprocess.run(["vipsheader", *chunk], capture_output=True, text=True,
                           env={**os.environ, "VIPS_WARNING": "0"})
        for line in r.stdout.splitlines():
            m = LINE.match(line)
            if m:
                out[m.group(1)] = (int(m.group(2)), int(m.group(3)), m.group(4))
    return out


def orientation(path):
    r = subprocess.run(["vipsheader", "-f", "orientation", path], capture_output=True, text=True,
                       env={**os.environ, "VIPS_WARNING": "0"})
    try:
        return int(r.stdout.strip()) if r.returncode == 0 else 1
    except ValueError:
        return 1


def expected(w, h, bw, bh, cover):
    if cover:
        return min(bw, w), min(bh, h)
    s = min(1.0, bw / w, bh / h)
    return max(1, round(w * s)), max(1, round(h * s))


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    photos, outdir = argv
    srcs = sorted(os.path.join(photos, f) for f in os.listdir(photos)
                  if f.lower().endswith(IMAGE_EXT))
    src_hdr = headers(srcs)
    want = []  # (output path, expected w, h)
    for src in srcs:
        w, h, _ = src_hdr[src]
        if orientation(src) >= 5:
            w, h = h, w
        name = os.path.splitext(os.path.basename(src))[0]
        for size, bw, bh, cover in SIZES:
            ew, eh = expected(w, h, bw, bh, cover)
            want.append((os.path.join(outdir, size, name + ".jpg"), ew, eh))
    got = headers([p for p, _, _ in want if os.path.exists(p)])
    problems = []
    for p, ew, eh in want:
        if p not in got:
            problems.append(f"{os.path.relpath(p, outdir)} missing or unreadable")
            continue
        gw, gh, loader = got[p]
        if loader != "jpegload":
            problems.append(f"{os.path.relpath(p, outdir)} is {loader}, not JPEG")
        elif abs(gw - ew) > 1 or abs(gh - eh) > 1:
            problems.append(f"{os.path.relpath(p, outdir)} is {gw}x{gh}, expected {ew}x{eh}")
    n = len(want)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; ... ({len(problems)} in all)" if len(problems) > 3 else "")
        print(f"FAIL {len(problems)}/{n}: {shown}")
        return 1
    print(f"ok {n}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
