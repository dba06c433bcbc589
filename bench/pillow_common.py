"""What pillow_tuned.py and pillow_tutorial.py share: the command line, the output folders and
the pool of worker processes that runs `handle((path, outdir))` once per image.

usage (of the scripts): [-j N] -o OUTDIR FILE...   (writes OUTDIR/<size>/<name>.jpg)
"""
import multiprocessing
import os
import sys


def run(argv, sizes, handle, doc):
    """Parse argv, make OUTDIR/<size> for each of sizes, run handle over the files in a pool of
    -j worker processes and print each path as it is done; exit with doc on a bad command line."""
    jobs, outdir, files = 1, None, []
    i = 0
    while i < len(argv):
        if argv[i] == "-j":
            jobs = int(argv[i + 1])
            i += 2
        elif argv[i] == "-o":
            outdir = argv[i + 1]
            i += 2
        else:
            files.append(argv[i])
            i += 1
    if not outdir or not files:
        sys.exit(doc)
    for size_name, _, _ in sizes:
        os.makedirs(os.path.join(outdir, size_name), exist_ok=True)
    pool = multiprocessing.Pool(jobs)
    for path in pool.imap_unordered(handle, [(f, outdir) for f in files], chunksize=1):
        print(path)
    pool.close()
    pool.join()
    return 0
