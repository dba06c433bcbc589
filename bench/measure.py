#!/usr/bin/python3
"""measure.py [--interval S] -- COMMAND ARGS...: run one contender and print one JSON line.

What it measures (stdout of COMMAND goes to /dev/null unless --stdout FILE is given):
  wall       seconds from spawn to exit (time.monotonic)
  cpu        user + sys seconds of COMMAND and every descendant it waited for
             (getrusage(RUSAGE_CHILDREN), the source of /usr/bin/time's figures)
  maxrss_mb  largest peak RSS of any single process in the tree: ru_maxrss of
             RUSAGE_CHILDREN, which Linux keeps as the max over all reaped descendants
             (what /usr/bin/time -v prints as "Maximum resident set size" for a one-process
             command; for a pool, the biggest worker or parent)
  sum_rss_mb highest total RSS of the whole process tree at one moment, sampled every
             --interval seconds (default 0.05) by walking /proc for processes of COMMAND's
             session: for a pool of processes, the memory the pool holds at once (pages shared
             between processes are counted once per process; short peaks between samples
             can be missed)
  other_cores  CPU time used by everything else on the machine during the run (busy time
             from /proc/stat less the contender's own CPU), divided by wall: how many cores
             other work took from the contender (0.0 on a quiet machine)
  rc         exit status of COMMAND
"""
import json
import os
import resource
import subprocess
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def session_rss(sid):
    """(sum of RSS, max RSS, process count) of processes in session sid, in bytes."""
    total = biggest = count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            # fields after the command name in parentheses: state ppid pgrp session ... rss(24)
            rest = stat[stat.rindex(b")") + 2:].split()
            if int(rest[3]) != sid:
                continue
            rss = int(rest[21]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
        total += rss
        biggest = max(biggest, rss)
        count += 1
    return total, biggest, count


def busy_seconds():
    """Busy CPU time of the whole machine so far (all but idle and iowait), in seconds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def main(argv):
    interval = 0.05
    stdout_path = None
    while argv and argv[0] != "--":
        opt = argv.pop(0)
        if opt == "--interval":
            interval = float(argv.pop(0))
        elif opt == "--stdout":
            stdout_path = argv.pop(0)
        else:
            sys.exit(f"measure.py: unknown option {opt}")
    if not argv or argv[0] != "--" or len(argv) < 2:
        sys.exit("usage: measure.py [--interval S] [--stdout FILE] -- COMMAND ARGS...")
    cmd = argv[1:]

    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = busy_seconds()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=out, start_new_session=True)
    peak = {"sum": 0, "max": 0, "procs": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            total, biggest, count = session_rss(proc.pid)
            peak["sum"] = max(peak["sum"], total)
            peak["max"] = max(peak["max"], biggest)
            peak["procs"] = max(peak["procs"], count)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    wall = time.monotonic() - t0
    busy1 = busy_seconds()
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out is not subprocess.DEVNULL:
        out.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({
        "rc": rc,
        "wall": round(wall, 4),
        "cpu": round(cpu, 3),
        "user": round(after.ru_utime - before.ru_utime, 3),
        "sys": round(after.ru_stime - before.ru_stime, 3),
        "maxrss_mb": round(after.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
        "sum_rss_mb": round(peak["sum"] / 2**20, 1),
        "sampled_max_rss_mb": round(peak["max"] / 2**20, 1),
        "max_procs": peak["procs"],
        "other_cores": round(max(0.0, (busy1 - busy0) - cpu) / wall, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
