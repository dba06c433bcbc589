#!/usr/bin/python3
"""Pillow done well: one open and one decode per image, every size derived from it.

For each image: Image.open once; for a JPEG, `draft('RGB', need)` asks libjpeg to decode at the
smallest 1/1, 1/2, 1/4 or 1/8 scale still at least as large as the biggest size needs (DCT
shrink-on-load); then one decode (`convert('RGB')`), and every size is made from that image with
`resize(..., BICUBIC, reducing_gap=2.0)` (what `thumbnail()` does), with a centre crop box for
the cover size (what `ImageOps.fit` does), and saved with quality=80.

usage: pillow_tuned.py [-j N] -o OUTDIR FILE...   (writes OUTDIR/<size>/<name>.jpg)
Images are spread over a pool of N worker processes (multiprocessing, fork), one image per task.
"""
import math
import os
import sys

from PIL import Image

import pillow_common

SIZES = [("thumbnail", (150, 150), True), ("medium", (640, 640), False),
         ("large", (1280, 1280), False)]
QUALITY = 80
RESAMPLE = Image.Resampling.BICUBIC


def scale_for(w, h, box, cover):
    sx, sy = box[0] / w, box[1] / h
    return min(1.0, max(sx, sy) if cover else min(sx, sy))


def decode_once(path):
    """The one decode: (picture, source width, source height); for a JPEG, shrunk on load by
    draft() to the smallest scale the largest size still allows."""
    with Image.open(path) as im:
        w, h = im.size
        need = max(scale_for(w, h, box, cover) for _, box, cover in SIZES)
        if im.format == "JPEG":
            im.draft("RGB", (math.ceil(w * need), math.ceil(h * need)))
        return im.convert("RGB"), w, h


def handle(job):
    path, outdir = job
    name = os.path.splitext(os.path.basename(path))[0]
    img, w, h = decode_once(path)
    dw, dh = img.size  # after draft: w/scale, h/scale
    for size_name, box, cover in SIZES:
        out = os.path.join(outdir, size_name, name + ".jpg")
        if cover:
            # centre crop of the box's aspect ratio in original coordinates, then scale
            s = scale_for(w, h, box, True)
            cw, ch = min(w, box[0] / s), min(h, box[1] / s)
            fx, fy = dw / w, dh / h
            crop = ((w - cw) / 2 * fx, (h - ch) / 2 * fy, (w + cw) / 2 * fx, (h + ch) / 2 * fy)
            target = (min(box[0], round(w * s)), min(box[1], round(h * s)))
            r = img.resize(target, RESAMPLE, box=crop, reducing_gap=2.0)
        else:
            s = scale_for(w, h, box, False)
            target = (max(1, round(w * s)), max(1, round(h * s)))
            r = img if target == (dw, dh) else img.resize(target, RESAMPLE, reducing_gap=2.0)
        r.save(out, quality=QUALITY)
    return path


def main(argv):
    return pillow_common.run(argv, SIZES, handle, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
