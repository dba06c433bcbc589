#!/usr/bin/python3
"""The classic AWS Lambda "create thumbnail images" tutorial, with Pillow, on local files.

The tutorial's handler downloads the object and calls

    def resize_image(image_path, resized_path):
        with Image.open(image_path) as image:
            image.thumbnail(tuple(x / 2 for x in image.size))
            image.save(resized_path)

This is that function, called once per size as a multi-size version of the tutorial does: every
size opens (and so decodes) the file anew, `image.thumbnail(size)` for the sizes that fit in a
box (Pillow's own shrink-to-fit; it uses JPEG draft mode internally), `ImageOps.fit(image, size)`
for the cover size (centre crop; decodes at full size), then `image.save(path, quality=80)`.
The only additions: quality=80 (the task's setting, Pillow's default is 75) and a convert to RGB
for modes JPEG cannot store (none in the benchmark's corpus). S3 download and upload are left
out: the benchmark is about the resizing.

usage: pillow_tutorial.py [-j N] -o OUTDIR FILE...   (writes OUTDIR/<size>/<name>.jpg)
Images are spread over a pool of N worker processes (multiprocessing, fork), one image per task.
"""
import os
import sys

from PIL import Image, ImageOps

import pillow_common

# name, (width, height), cover?
SIZES = [("thumbnail", (150, 150), True), ("medium", (640, 640), False),
         ("large", (1280, 1280), False)]
QUALITY = 80


def resize_image(image_path, resized_path, size, cover):
    with Image.open(image_path) as image:
        if cover:
            image = ImageOps.fit(image, size)
        else:
            image.thumbnail(size)
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(resized_path, quality=QUALITY)


def handle(job):
    path, outdir = job
    name = os.path.splitext(os.path.basename(path))[0]
    for size_name, size, cover in SIZES:
        resize_image(path, os.path.join(outdir, size_name, name + ".jpg"), size, cover)
    return path


def main(argv):
    return pillow_common.run(argv, SIZES, handle, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
