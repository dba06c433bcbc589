#!/usr/bin/python3
"""The floor of the task: what decoding and encoding alone cost, with no resampling at all.

Not a contender: a reference line for the table. Every image is opened and decoded exactly as
pillow_tuned.py does it (for a JPEG, `draft('RGB', need)`: libjpeg-turbo's DCT shrink-on-load to
the scale the largest size needs, the same scale s3imgfs-resize decodes at), then for each size a
block of the decoded picture with the rendition's width and height is cut out (`crop`, a copy:
no filtering) and saved with quality=80 and optimised Huffman tables (Pillow's encoder is
libjpeg-turbo; optimize=True is what issue #3 asks of s3imgfs-resize's JPEGs). So the encoder
gets as many pixels as the real renditions have, and the decoder does the same work as in every
contender built on libjpeg-turbo; what is missing is the resampling. Any tool that makes these
renditions as issue #3 specifies them, with this decoder at these scales, spends at least this
much CPU, less Python's start-up and pool (about 0.12 s wall, 0.15 s CPU for the whole corpus,
measured on 38 tiny images).

Why not finer scales: libjpeg-turbo can also decode at 3/8, 5/8, ... (M/8), but only its 1/2
and 1/4 (and full) inverse DCTs are SIMD; measured with djpeg over the corpus's JPEGs, M/8
scales cost as much as or more than the power-of-two ones: Huffman decoding, which no scale
saves, is most of a decode.

usage: floor.py [-j N] -o OUTDIR FILE...   (writes OUTDIR/<size>/<name>.jpg)
"""
import os
import sys

import pillow_common
from pillow_tuned import QUALITY, SIZES, decode_once, scale_for


def handle(job):
    path, outdir = job
    name = os.path.splitext(os.path.basename(path))[0]
    img, w, h = decode_once(path)  # exactly as pillow_tuned.py
    for size_name, box, cover in SIZES:
        s = scale_for(w, h, box, cover)
        if cover:
            target = (min(box[0], round(w * s)), min(box[1], round(h * s)))
        else:
            target = (max(1, round(w * s)), max(1, round(h * s)))
        # draft() never decodes smaller than the largest size needs; clamp for rounding
        tw, th = min(target[0], img.size[0]), min(target[1], img.size[1])
        img.crop((0, 0, tw, th)).save(os.path.join(outdir, size_name, name + ".jpg"),
                                      quality=QUALITY, optimize=True)
    return path


def main(argv):
    return pillow_common.run(argv, SIZES, handle, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
