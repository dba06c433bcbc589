#!/usr/bin/python3
"""report.py: the table of resize-bench.sh, from the JSON lines measure.py left (one per run)."""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import time

OURS = "ours-j2"
OURS_REF = "ours-j1"
TUTORIAL = "pillow-tutorial"
FLOOR = "floor"  # a reference line, not a peer (floor.py)
PILLOW_HP = "pillow-tuned-hp"  # a reference line: pillow-tuned with malloc on huge pages
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")


def sh(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, "VIPS_WARNING": "0"})
    return r.stdout.strip() if r.returncode == 0 else ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def mem_gib():
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        return f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "? GiB"


def corpus(photos):
    files = sorted(os.path.join(photos, f) for f in os.listdir(photos)
                   if f.lower().endswith(IMAGE_EXT))
    hdr = sh("vipsheader", *files).splitlines()
    kinds, mps, total = {}, [], 0
    for line in hdr:
        m = re.match(r"^(.*): (\d+)x(\d+) .*, (\w+)$", line)
        if not m:
            continue
        path, w, h, loader = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        mps.append(w * h / 1e6)
        total += os.path.getsize(path)
        kind = loader.replace("load", "").upper()
        if kind == "JPEG":
            kind = "progressive JPEG" if sh("vipsheader", "-f", "interlaced", path) else "baseline JPEG"
        kinds[kind] = kinds.get(kind, 0) + 1
    order = ["baseline JPEG", "progressive JPEG", "PNG", "WEBP"]
    parts = [f"{kinds[k]} {k if k != 'WEBP' else 'WebP'}" for k in order if k in kinds]
    parts += [f"{v} {k}" for k, v in kinds.items() if k not in order]
    return len(files), parts, mps, total


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    for a in ("photos", "results", "meta", "ours-version", "vips", "sharp"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--reps", type=int, required=True)
    o = ap.parse_args()

    runs = [json.loads(line) for line in open(o.results) if line.strip()]
    meta = [line.rstrip("\n").split("\t", 1) for line in open(o.meta) if line.strip()]
    n, kinds, mps, total = corpus(o.photos)
    import PIL

    print(f"s3imgfs resize benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine : {cpu_model()}, {os.cpu_count()} cores, {mem_gib()}, "
          f"Linux {platform.release()}, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"corpus  : {o.photos}: {n} images ({', '.join(kinds)}), "
          f"{min(mps):.1f}-{max(mps):.1f} MP (median {median(mps):.1f}), {total / 2**20:.0f} MB")
    print("task    : every image -> thumbnail 150x150 cover (centre crop), medium 640x640 fit, "
          f"large 1280x1280 fit, JPEG q80 ({3 * n} files per run)")
    print(f"runs    : {o.reps} per contender, round-robin, page cache warm; each figure is the "
          f"median of the {o.reps} runs; parallelism {o.jobs} for every contender")
    print(f"versions: s3imgfs-resize: {o.ours_version}; libvips {o.vips} (Debian); "
          f"Pillow {PIL.__version__} (Debian); {o.sharp}")
    print("measures: images/s = images / wall time; CPU = user+sys of the whole process tree "
          "(getrusage of children);")
    print("          max RSS = peak RSS of the largest single process (ru_maxrss, as "
          "/usr/bin/time -v 'Maximum resident set size');")
    print("          sum RSS = highest total RSS of all the contender's processes at one moment "
          "(sampled every 50 ms; = max RSS for one process)")
    print("          outputs = every rendition checked with vipsheader: JPEG, expected size +-1 px")
    print()
    print("contenders:")
    for name, desc in meta:
        print(f"  {name:<16} {desc}")
    print()

    rows = {}
    for name, _ in meta:
        rs = [r for r in runs if r["contender"] == name]
        if not rs:
            continue
        ips = [n / r["wall"] for r in rs]
        bad = [r for r in rs if r["rc"] != 0 or not r["check"].startswith("ok")]
        if name.startswith("ours-"):  # and one line per rendition on stdout
            for r in rs:
                if r["stdout_lines"] != 3 * n and r["rc"] == 0:
                    r["check"] += f" ({r['stdout_lines']} stdout lines, expected {3 * n})"
        rows[name] = {
            "ips": median(ips), "ips_min": min(ips), "ips_max": max(ips),
            "wall": median([r["wall"] for r in rs]),
            "cpu": median([r["cpu"] for r in rs]),
            "maxrss": median([r["maxrss_mb"] for r in rs]),
            "maxrss_worst": max(r["maxrss_mb"] for r in rs),
            "sumrss": median([r["sum_rss_mb"] for r in rs]),
            "procs": max(r["max_procs"] for r in rs),
            "others": median([r.get("other_cores", 0.0) for r in rs]),
            "check": (f"rc {bad[0]['rc']}, {bad[0]['check']}" + (f" [{bad[0]['stderr']}]" if bad[0]['stderr'] else ""))
            if bad else rs[0]["check"],
        }
    ours = rows.get(OURS)

    head = (f"{'contender':<16} {'images/s':>8} {'(min-max)':>11} {'wall s':>7} {'CPU s':>6} "
            f"{'CPU ms/img':>10} {'max RSS MB':>10} {'sum RSS MB':>10} {'vs ours':>7} "
            f"{'vs ours CPU':>11} {'others':>6}  outputs")
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        vs = f"{r['ips'] / ours['ips']:.2f}x" if ours else "n/a"
        vs_cpu = f"{ours['cpu'] / r['cpu']:.2f}x" if ours else "n/a"
        rng = f"{r['ips_min']:.1f}-{r['ips_max']:.1f}"
        summ = f"{r['sumrss']:.0f}" + (f" ({r['procs']}p)" if r["procs"] > 1 else "")
        print(f"{name:<16} {r['ips']:>8.2f} {rng:>11} {r['wall']:>7.2f} {r['cpu']:>6.2f} "
              f"{1000 * r['cpu'] / n:>10.0f} {r['maxrss']:>10.0f} {summ:>10} {vs:>7} {vs_cpu:>11} {r['others']:>6.2f}  {r['check']}")
    print()
    print("vs ours = this contender's images/s / s3imgfs-resize -j 2's; vs ours CPU = the same "
          "on CPU time (s3imgfs-resize's CPU s / this one's),")
    print("  which other load on the machine disturbs much less than wall time; "
          "(Np) = most processes seen at once;")
    print("others = cores' worth of CPU that other processes on the machine used during the run "
          "(0 on a quiet machine)")
    busy = max((r["others"] for r in rows.values()), default=0.0)
    if busy > 0.1:
        print(f"WARNING: the machine was not quiet (up to {busy:.2f} cores taken by other work "
              "during a contender's runs): the figures are lower and noisier than they should be")

    peers = {k: v for k, v in rows.items() if not k.startswith("ours-") and k not in (FLOOR, PILLOW_HP)}
    print()
    print("targets (issue #3):")
    if not ours:
        print("  s3imgfs-resize was not measured (not built): targets n/a. Peers above; rerun "
              "bench/resize-bench.sh [BUILD_DIR] once it links.")
        return 0
    if peers:
        best = max(peers, key=lambda k: peers[k]["ips"])
        ratio = ours["ips"] / peers[best]["ips"]
        best_cpu = min(peers, key=lambda k: peers[k]["cpu"])
        print(f"  {'PASS' if ratio >= 1.5 else 'MISS'}  images/s >= 1.5x the best peer: "
              f"{ours['ips']:.2f} vs {best} {peers[best]['ips']:.2f} = {ratio:.2f}x"
              f"  (on CPU time: {peers[best_cpu]['cpu'] / ours['cpu']:.2f}x {best_cpu})")
        if FLOOR in rows:
            floor, goal = rows[FLOOR], 1.5 * peers[best]["ips"]
            room = peers[best]["cpu"] / 1.5 - floor["cpu"]
            print(f"        the floor (decode + encode, no resampling, huge pages): {floor['ips']:.2f} images/s "
                  f"= {floor['ips'] / peers[best]['ips']:.2f}x {best}, {floor['cpu']:.2f} CPU s; "
                  f"1.5x {best} ({goal:.2f} images/s) leaves {room:+.2f} CPU s")
            print("        beyond the floor for all the resampling (the floor's Python start-up "
                  "and pool: about 0.15 CPU s more)")
    if PILLOW_HP in rows:
        hp = rows[PILLOW_HP]
        print(f"        not a target: with malloc on huge pages Pillow does {hp['ips']:.2f} images/s, "
              f"ours {ours['ips'] / hp['ips']:.2f}x that (on CPU time: {hp['cpu'] / ours['cpu']:.2f}x)")
    if TUTORIAL in rows:
        ratio = ours["ips"] / rows[TUTORIAL]["ips"]
        print(f"  {'PASS' if ratio >= 2.5 else 'MISS'}  images/s >= 2.5x tutorial Pillow: "
              f"{ours['ips']:.2f} vs {rows[TUTORIAL]['ips']:.2f} = {ratio:.2f}x"
              f"  (on CPU time: {rows[TUTORIAL]['cpu'] / ours['cpu']:.2f}x)")
    worst = ours["maxrss_worst"]
    print(f"  {'PASS' if worst < 200 else 'MISS'}  peak RSS < 200 MB: {worst:.0f} MB "
          f"(s3imgfs-resize -j {o.jobs}, one process; the highest of the {o.reps} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
