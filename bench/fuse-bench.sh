#!/usr/bin/env bash
# fuse-bench.sh [BUILD_DIR]: the s3imgfs file system against s3fs and rclone mount, side by side,
# on one local radosgw that the script starts (its own state folder and ports) and stops.
#
# A benchmark, not a test: it prints a table on stdout and exits 0 once it could measure (1 only
# when it could not run at all); progress goes to stderr. Temporary files are removed at exit.
#
# Contenders, each on its own fresh bucket (s3imgfs also on a fresh destination bucket):
#   s3imgfs        BUILD_DIR/fuse/s3imgfs -f (defaults of [gateway]; sizes thumbnail, medium, large)
#   s3fs           Debian's s3fs (1.90) with its defaults: -o url=... -o use_path_request_style
#   rclone-writes  Debian's rclone (1.60) mount --vfs-cache-mode writes
#   rclone-off     rclone mount --vfs-cache-mode off
# Measured, per contender (every "until durable" is checked with a direct S3 listing, polled every
# 50 ms by a small standard-library Python client, independent of the file systems):
#   (a) cp -r of 1,000 files of 4 KiB: files/s until all are listed with their size
#   (b) cp -r of the photo corpus (bench/.photos): seconds until all are listed; for s3imgfs also
#       until every rendition is in the destination bucket, compared with s3imgfs-resize on the
#       same files (-j = number of CPUs)
#   (c) 1 GiB sequential write (dd bs=1M from a file in /dev/shm): MB/s until listed with its size
#   (d) cold read of that 1 GiB (remounted, fresh cache folder): MB/s
#   (e) cold ls -l of 10,000 objects (one bucket shared by all, mounted fresh): seconds
#   (f) mv of a 100 MiB file: seconds until the new key is listed and the old one gone
#   (g) rm -r of the 1,000 files of (a): seconds until none is listed
#   (h) peak RSS of the file system process (VmHWM, read before each unmount; the highest)
# Every figure is the median of BENCH_RUNS runs (round-robin: run 1 of every contender, then
# run 2, ...); the last columns are s3imgfs's figure divided by each peer's.
#
# BUILD_DIR: the Meson build folder holding fuse/s3imgfs and tools/s3imgfs-resize (default: build
# at the top of the repository). It is not built here: `ninja -C BUILD_DIR` first. Without
# fuse/s3imgfs the peers are still measured and s3imgfs's column says n/a.
#
# Environment:
#   BENCH_RUNS=1                runs of each contender
#   BENCH_TOOLS="..."           a subset of: s3imgfs s3fs rclone-writes rclone-off
#   BENCH_PORT=7489             radosgw's port; BENCH_MON_PORT=3389, BENCH_MON_V1_PORT=3390
#                               (the monitor's; change all three to run two benchmarks at once)
#   PHOTOS=DIR                  the photo corpus (default bench/.photos, made by get-photos.sh)
#   BENCH_BIG_MIB=1024          size of the big file of (c) and (d), MiB
#   BENCH_TIMEOUT=600           seconds any wait for "durable" may take
#   BENCH_KEEP_LOGS=DIR         copy the file systems' logs there
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" 2>/dev/null && pwd) || build=${1:-$repo/build}
runs=${BENCH_RUNS:-1}
all_tools="s3imgfs s3fs rclone-writes rclone-off"
tools=${BENCH_TOOLS:-$all_tools}
columns=$tools # the table shows every tool asked for, measured or not
port=${BENCH_PORT:-7489}
mon_port=${BENCH_MON_PORT:-3389}
mon_v1_port=${BENCH_MON_V1_PORT:-3390}
photos=${PHOTOS:-$here/.photos}
big_mib=${BENCH_BIG_MIB:-1024}
limit=${BENCH_TIMEOUT:-600}
small_n=1000 small_size=4096 ls_n=10000 mv_mib=100
sizes='thumbnail:150x150:cover, medium:640x640, large:1280x1280'
PY=/usr/bin/python3 # Debian's python
export LC_ALL=C.UTF-8 VIPS_WARNING=0

note() { printf 'fuse-bench: %s\n' "$*" >&2; }
die() { note "error: $*"; exit 1; }

for t in $tools; do
  case " $all_tools " in *" $t "*) ;; *) die "unknown tool '$t' in BENCH_TOOLS (known: $all_tools)" ;; esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number"

# ---- tools --------------------------------------------------------------------------------
[ -c /dev/fuse ] || die "/dev/fuse does not exist: no FUSE here"
need_pkgs=()
for p in s3fs rclone fuse3 radosgw ceph-mon ceph-osd ceph-common libvips-tools; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  [ "$(id -u)" = 0 ] || die "missing packages ${need_pkgs[*]}: run scripts/install-deps.sh"
  note "installing ${need_pkgs[*]}"
  apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null
  }
fi
ours=$build/fuse/s3imgfs
resize_cli=$build/tools/s3imgfs-resize
if [[ " $tools " == *" s3imgfs "* ]] && [ ! -x "$ours" ]; then
  note "$ours does not exist (build it with: ninja -C $build fuse/s3imgfs): measuring the peers only"
  tools=$(tr ' ' '\n' <<<"$tools" | grep -vx s3imgfs | tr '\n' ' ' || true)
  ours_missing=1
else
  ours_missing=0
fi
[ -n "${tools// /}" ] || die "nothing to measure"

if [ ! -d "$photos" ] || [ -z "$(ls -A "$photos" 2>/dev/null)" ]; then
  note "laying out the photo corpus in $photos (bench/get-photos.sh)"
  "$here/get-photos.sh" "$photos" >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuse-bench.XXXXXX")
shm=$(mktemp -d /dev/shm/fuse-bench.XXXXXX 2>/dev/null) || shm=$tmp/shm
mkdir -p "$shm"
state=$tmp/rgw
mpid="" # the process of the mounted file system
mnt=""

cleanup() {
  set +e
  cd /
  if [ -n "$mnt" ] && findmnt -rn -M "$mnt" >/dev/null 2>&1; then
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
  fi
  if [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null; then
    kill -TERM "$mpid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$mpid" 2>/dev/null
  fi
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
    mkdir -p "$BENCH_KEEP_LOGS" && cp "$tmp"/log-* "$BENCH_KEEP_LOGS"/ 2>/dev/null
  fi
  [ -d "$state" ] && "$repo/scripts/servers/rgw-stop.sh" --purge "$state" >/dev/null 2>&1
  rm -rf --one-file-system "$tmp" "$shm"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- radosgw and a direct S3 client ----------------------------------------------------------
note "starting radosgw on 127.0.0.1:$port (state in $state)"
RGW_MON_PORT=$mon_port RGW_MON_V1_PORT=$mon_v1_port "$repo/scripts/servers/rgw-start.sh" "$state" "$port" \
  >"$tmp/rgw-start.log" 2>&1 || { cat "$tmp/rgw-start.log" >&2; die "radosgw did not start"; }
# shellcheck disable=SC1091 # written by rgw-start.sh
. "$state/env.sh"
endpoint=$S3IMGFS_TEST_ENDPOINT
access_key=$S3IMGFS_TEST_ACCESS_KEY
secret_key=$S3IMGFS_TEST_SECRET_KEY
region=${S3IMGFS_TEST_REGION:-us-east-1}
export S3Q_ENDPOINT=$endpoint S3Q_ACCESS_KEY=$access_key S3Q_SECRET_KEY=$secret_key S3Q_REGION=$region

cat >"$tmp/s3q.py" <<'PYEOF'
"""s3q: a small S3 client (standard library only) for the benchmark's direct checks.
Endpoint and keys from S3Q_ENDPOINT, S3Q_ACCESS_KEY, S3Q_SECRET_KEY, S3Q_REGION; path-style,
SigV4 with UNSIGNED-PAYLOAD, one keep-alive connection per thread.
  mb BUCKET | ls BUCKET [PREFIX] | rmprefix BUCKET [PREFIX] | putmany BUCKET PREFIX N SIZE [THREADS]
  wait BUCKET SECONDS [--want FILE] [--absent-prefix P]... [--absent-key K]...
    polls every 50 ms until each "key<TAB>size" line of FILE is listed with that size ("-": any)
    and nothing is listed under P or at K; exit 1 at the timeout, saying what is missing
"""
import base64, datetime, hashlib, hmac, http.client, os, sys, threading, time
import urllib.parse, xml.etree.ElementTree as ET

EP = urllib.parse.urlsplit(os.environ["S3Q_ENDPOINT"])
AK, SK = os.environ["S3Q_ACCESS_KEY"], os.environ["S3Q_SECRET_KEY"]
REGION = os.environ.get("S3Q_REGION", "us-east-1")
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_local = threading.local()


def q(s, safe="~"):
    return urllib.parse.quote(s, safe=safe)


def request(method, bucket, key="", query=None, body=b"", headers=None):
    query, headers = query or {}, dict(headers or {})
    now = datetime.datetime.now(datetime.timezone.utc)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    path = "/" + q(bucket) + ("/" + q(key, "/~") if key else "")
    qs = "&".join(f"{q(k)}={q(str(v))}" for k, v in sorted(query.items()))
    headers.update({"host": EP.netloc, "x-amz-date": amzdate, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    lower = {k.lower(): str(v).strip() for k, v in headers.items()}
    names = sorted(lower)
    canon = "\n".join([method, path, qs, "".join(f"{n}:{lower[n]}\n" for n in names),
                       ";".join(names), "UNSIGNED-PAYLOAD"])
    scope = f"{day}/{REGION}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + SK).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders={';'.join(names)}, "
                                f"Signature={hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()}")
    for attempt in range(3):
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = http.client.HTTPConnection(EP.hostname, EP.port or 80, timeout=60)
        try:
            conn.request(method, path + ("?" + qs if qs else ""), body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            _local.conn = None
            if attempt == 2:
                raise
    raise RuntimeError("unreachable")


def check(status, body, what):
    if status // 100 != 2:
        sys.exit(f"s3q: {what}: HTTP {status} {body[:300]!r}")


def listing(bucket, prefix=""):
    out, token = {}, None
    while True:
        query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
        if token:
            query["continuation-token"] = token
        status, body = request("GET", bucket, query=query)
        check(status, body, f"list s3://{bucket}/{prefix}")
        root = ET.fromstring(body)
        for c in root.iter(NS + "Contents"):
            out[c.find(NS + "Key").text] = int(c.find(NS + "Size").text)
        if root.findtext(NS + "IsTruncated") != "true":  # radosgw may send short pages
            return out
        token = root.findtext(NS + "NextContinuationToken")


def parallel(items, fn, threads):
    items, lock, errors = list(items), threading.Lock(), []

    def worker():
        while True:
            with lock:
                if not items or errors:
                    return
                item = items.pop()
            try:
                fn(item)
            except BaseException as e:  # reported below
                errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        sys.exit(f"s3q: {errors[0]}")


def rmprefix(bucket, prefix=""):
    while True:
        keys = sorted(listing(bucket, prefix))
        if not keys:
            return
        for i in range(0, len(keys), 1000):
            objs = "".join("<Object><Key>%s</Key></Object>" % k.replace("&", "&amp;").replace("<", "&lt;")
                           for k in keys[i:i + 1000])
            body = f"<Delete><Quiet>true</Quiet>{objs}</Delete>".encode()
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            status, resp = request("POST", bucket, query={"delete": ""}, body=body,
                                   headers={"Content-MD5": md5, "Content-Type": "application/xml"})
            check(status, resp, f"delete in s3://{bucket}")


def wait(args):
    bucket, limit = args[0], float(args[1])
    want, absent_prefixes, absent_keys = {}, [], []
    for opt, val in zip(args[2::2], args[3::2]):
        if opt == "--want":
            for line in open(val):
                if line.strip():
                    k, s = line.rstrip("\n").split("\t")
                    want[k] = None if s == "-" else int(s)
        elif opt == "--absent-prefix":
            absent_prefixes.append(val)
        elif opt == "--absent-key":
            absent_keys.append(val)
        else:
            sys.exit(f"s3q: wait: unknown option {opt}")
    prefix = os.path.commonprefix(list(want) + absent_prefixes + absent_keys)
    deadline = time.monotonic() + limit
    while True:
        have = listing(bucket, prefix)
        missing = [k for k, s in want.items() if k not in have or (s is not None and have[k] != s)]
        present = [k for k in have if any(k.startswith(p) for p in absent_prefixes)]
        present += [k for k in absent_keys if k in have]
        if not missing and not present:
            return
        if time.monotonic() > deadline:
            sys.exit(f"s3q: wait s3://{bucket}/{prefix}: after {limit:g} s still missing {len(missing)} "
                     f"(e.g. {missing[:3]}), still present {len(present)} (e.g. {present[:3]})")
        time.sleep(0.05)


def main(argv):
    cmd, args = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "mb":
        check(*request("PUT", args[0]), f"create bucket {args[0]}")
    elif cmd == "ls":
        for k, s in sorted(listing(args[0], args[1] if len(args) > 1 else "").items()):
            print(f"{k}\t{s}")
    elif cmd == "rmprefix":
        rmprefix(args[0], args[1] if len(args) > 1 else "")
    elif cmd == "putmany":
        bucket, prefix, n, size = args[0], args[1], int(args[2]), int(args[3])
        data = b"x" * size

        def put(i):
            key = f"{prefix}f{i:06d}"
            check(*request("PUT", bucket, key, body=data, headers={"Content-Length": str(size)}), f"put {key}")
        parallel(range(1, n + 1), put, int(args[4]) if len(args) > 4 else 16)
    elif cmd == "wait":
        wait(args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
PYEOF
s3q() { "$PY" "$tmp/s3q.py" "$@"; }
# Deleted objects keep their RADOS data until radosgw's garbage collector runs (hours by
# default); the OSD keeps objects in RAM (2 GiB): collect at once after each contender.
rgw_gc() {
  timeout 120 radosgw-admin -c "$state/ceph.conf" gc process --include-all >/dev/null 2>&1 ||
    note "radosgw-admin gc process failed (ignored)"
}

# ---- data ---------------------------------------------------------------------------------
note "making the data (${big_mib} MiB + ${mv_mib} MiB in $shm, $small_n small files)"
data=$tmp/data
mkdir -p "$data/small"
"$PY" - "$data/small" "$small_n" "$small_size" <<'EOF'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(1, n + 1):
    with open(os.path.join(d, f"f{i:04d}"), "wb") as f:
        f.write(os.urandom(size))
EOF
(cd "$data" && find small -type f -printf '%p\t%s\n') >"$data/small.want"
(cd "$photos" && find . -maxdepth 1 -type f -printf 'photos/%P\t%s\n') >"$data/photos.want"
photo_count=$(wc -l <"$data/photos.want")
photo_mb=$(du -sm "$photos" | cut -f1)
: >"$data/renditions.want"
for s in thumbnail medium large; do
  cut -f1 "$data/photos.want" | sed "s|^|$s/|; s|\$|\t-|" >>"$data/renditions.want"
done
head -c $((big_mib * 1048576)) /dev/urandom >"$shm/big.bin"
head -c $((mv_mib * 1048576)) /dev/urandom >"$shm/m100.bin"
printf 'big.bin\t%s\n' $((big_mib * 1048576)) >"$data/big.want"
printf 'm100.bin\t%s\n' $((mv_mib * 1048576)) >"$data/m100.want"
printf 'm100-moved.bin\t%s\n' $((mv_mib * 1048576)) >"$data/moved.want"

# The shared bucket of (e): 10,000 small objects at the top.
note "putting $ls_n objects into the shared bucket fb-ls"
s3q mb fb-ls
s3q mb fb-ls-dst
s3q putmany fb-ls "" "$ls_n" 100 16

# Credentials and configurations of the contenders.
printf '%s:%s\n' "$access_key" "$secret_key" >"$tmp/s3fs.passwd"
chmod 600 "$tmp/s3fs.passwd"
cat >"$tmp/rclone.conf" <<EOF
[rgw]
type = s3
provider = Ceph
access_key_id = $access_key
secret_access_key = $secret_key
endpoint = $endpoint
region = $region
force_path_style = true
EOF
chmod 600 "$tmp/rclone.conf"

# ---- mounting -------------------------------------------------------------------------------
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
hwm_kb=0 # highest VmHWM seen for the current contender
sample_hwm() {
  local kb
  kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$mpid/status" 2>/dev/null || echo 0)
  [ "${kb:-0}" -le "$hwm_kb" ] || hwm_kb=$kb
}
mounted() { grep -q '^fuse' <<<"$(findmnt -rn -M "$1" -o FSTYPE 2>/dev/null)"; }

# mount_tool TOOL BUCKET: mounts BUCKET on a fresh $mnt with a fresh cache folder; sets mpid.
mount_tool() {
  local tool=$1 bucket=$2 n
  n=$((${mount_seq:-0} + 1))
  mount_seq=$n
  mnt=$tmp/mnt-$tool-$n
  local cache=$tmp/cache-$tool-$n log=$tmp/log-$tool
  mkdir -p "$mnt" "$cache"
  echo "---- mount $bucket ($(date +%T))" >>"$log"
  case $tool in
  s3imgfs)
    cat >"$tmp/s3imgfs-$n.ini" <<EOF
[s3]
endpoint = $endpoint
region = $region
path_style = true
source_bucket = $bucket
destination_bucket = $bucket-dst
access_key_id = $access_key
secret_access_key = $secret_key
[resize]
sizes = $sizes
[gateway]
cache_dir = $cache
EOF
    chmod 600 "$tmp/s3imgfs-$n.ini"
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$ours" -f -o "config=$tmp/s3imgfs-$n.ini" "$mnt" \
      >>"$log" 2>&1 </dev/null &
    ;;
  s3fs)
    s3fs "$bucket" "$mnt" -f -o "url=$endpoint" -o use_path_request_style \
      -o "passwd_file=$tmp/s3fs.passwd" -o "endpoint=$region" >>"$log" 2>&1 </dev/null &
    ;;
  rclone-writes | rclone-off)
    # rclone 1.60 refuses to start while AWS_CA_BUNDLE is set.
    env -u AWS_CA_BUNDLE rclone --config "$tmp/rclone.conf" mount "rgw:$bucket" "$mnt" \
      --vfs-cache-mode "${tool#rclone-}" --cache-dir "$cache" >>"$log" 2>&1 </dev/null &
    ;;
  esac
  mpid=$!
  local deadline=$((SECONDS + 30))
  until mounted "$mnt"; do
    if ! kill -0 "$mpid" 2>/dev/null || [ "$SECONDS" -gt "$deadline" ]; then
      note "$tool did not mount s3://$bucket; its log:"
      tail -n 15 "$log" >&2
      return 1
    fi
    sleep 0.1
  done
}

unmount_tool() {
  [ -n "$mpid" ] || return 0
  sample_hwm
  local deadline=$((SECONDS + 60))
  until fusermount3 -u "$mnt" 2>/dev/null || ! mounted "$mnt"; do
    [ "$SECONDS" -lt "$deadline" ] || { fusermount3 -uz "$mnt" 2>/dev/null || true; break; }
    sleep 0.2
  done
  while kill -0 "$mpid" 2>/dev/null; do
    if [ "$SECONDS" -gt "$deadline" ]; then
      note "the file system (pid $mpid) did not exit after the unmount: KILL"
      kill -KILL "$mpid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait "$mpid" 2>/dev/null || true
  mpid=""
}

# ---- measuring ------------------------------------------------------------------------------
results=$tmp/results.tsv
: >"$results"
rec() { # tool metric value
  printf '%s\t%s\t%s\t%s\n' "$run" "$1" "$2" "$3" >>"$results"
  note "  run $run $1: $2 = $3"
}

bench_tool() {
  local tool=$1 b="fb-$1-r$run" t0 t1 t2 out
  hwm_kb=0
  note "run $run: $tool"
  s3q mb "$b"
  [ "$tool" != s3imgfs ] || s3q mb "$b-dst"
  mount_tool "$tool" "$b" || return 0

  # (a) 1,000 small files, then (g) their rm -r
  t0=$(now)
  if cp -r "$data/small" "$mnt/"; then
    t1=$(now)
    if s3q wait "$b" "$limit" --want "$data/small.want"; then
      t2=$(now)
      rec "$tool" small_files_per_s "$(div "$small_n" "$(secs "$t0" "$t2")")"
      rec "$tool" small_cp_s "$(secs "$t0" "$t1")"
      t0=$(now)
      if rm -r "$mnt/small"; then
        t1=$(now)
        if s3q wait "$b" "$limit" --absent-prefix small/; then
          t2=$(now)
          rec "$tool" rm_s "$(secs "$t0" "$t2")"
          rec "$tool" rm_cmd_s "$(secs "$t0" "$t1")"
        fi
      else
        note "$tool: rm -r failed"
      fi
    fi
  else
    note "$tool: cp -r of the small files failed"
  fi

  # (f) mv of a 100 MiB file (written and made durable first, not timed)
  if dd if="$shm/m100.bin" of="$mnt/m100.bin" bs=1M status=none &&
    s3q wait "$b" "$limit" --want "$data/m100.want"; then
    t0=$(now)
    if mv "$mnt/m100.bin" "$mnt/m100-moved.bin"; then
      t1=$(now)
      if s3q wait "$b" "$limit" --want "$data/moved.want" --absent-key m100.bin; then
        rec "$tool" mv_s "$(secs "$t0" "$(now)")"
        rec "$tool" mv_cmd_s "$(secs "$t0" "$t1")"
      fi
    else
      note "$tool: mv failed"
    fi
  fi

  # (c) 1 GiB sequential write
  t0=$(now)
  if dd if="$shm/big.bin" of="$mnt/big.bin" bs=1M status=none; then
    t1=$(now)
    if s3q wait "$b" "$limit" --want "$data/big.want"; then
      rec "$tool" write_mb_per_s "$(div $((big_mib * 1048576 / 1000000)) "$(secs "$t0" "$(now)")")"
      rec "$tool" write_cmd_s "$(secs "$t0" "$t1")"
    fi
  else
    note "$tool: dd of ${big_mib} MiB failed"
  fi
  unmount_tool

  # (d) cold read, on a fresh mount with an empty cache
  if mount_tool "$tool" "$b"; then
    t0=$(now)
    out=$(dd if="$mnt/big.bin" of=/dev/null bs=1M 2>&1) || note "$tool: reading big.bin failed: $out"
    t1=$(now)
    if grep -q "^$((big_mib * 1048576)) bytes" <<<"$out"; then
      rec "$tool" read_mb_per_s "$(div $((big_mib * 1048576 / 1000000)) "$(secs "$t0" "$t1")")"
    else
      note "$tool: the cold read did not give ${big_mib} MiB: $out"
    fi
    unmount_tool
  fi
  s3q rmprefix "$b" || note "emptying s3://$b failed"
  [ "$tool" != s3imgfs ] || s3q rmprefix "$b-dst" || note "emptying s3://$b-dst failed"
  rgw_gc

  # (e) cold ls -l of the shared bucket
  if mount_tool "$tool" fb-ls; then
    t0=$(now)
    # shellcheck disable=SC2010 # ls -l is what is measured
    out=$(ls -l "$mnt" | grep -c '^-' || true)
    t1=$(now)
    if [ "$out" = "$ls_n" ]; then
      rec "$tool" ls_s "$(secs "$t0" "$t1")"
    else
      note "$tool: ls -l showed $out files, expected $ls_n"
    fi
    unmount_tool
  fi
  rec "$tool" rss_mb "$(awk -v k="$hwm_kb" 'BEGIN { printf "%.1f", k / 1024 }')"

  # (b) the photos, in a mount of their own: the peak RSS above is the file system's alone,
  # this one includes resizing (s3imgfs)
  hwm_kb=0
  b="$b-ph" # fresh buckets: the first pair was emptied, not removed
  s3q mb "$b"
  [ "$tool" != s3imgfs ] || s3q mb "$b-dst"
  if mount_tool "$tool" "$b"; then
    # (b) the photos
    t0=$(now)
    if cp -r "$photos" "$mnt/photos"; then
      t1=$(now)
      if s3q wait "$b" "$limit" --want "$data/photos.want"; then
        rec "$tool" photos_s "$(secs "$t0" "$(now)")"
        rec "$tool" photos_cp_s "$(secs "$t0" "$t1")"
      fi
      if [ "$tool" = s3imgfs ] && s3q wait "$b-dst" "$limit" --want "$data/renditions.want"; then
        rec "$tool" renditions_s "$(secs "$t0" "$(now)")"
      fi
    else
      note "$tool: cp -r of the photos failed"
    fi
    unmount_tool
    rec "$tool" rss_photos_mb "$(awk -v k="$hwm_kb" 'BEGIN { printf "%.1f", k / 1024 }')"
  fi
  s3q rmprefix "$b" || note "emptying s3://$b failed"
  [ "$tool" != s3imgfs ] || s3q rmprefix "$b-dst" || note "emptying s3://$b-dst failed"
  rgw_gc
}

resize_reference() { # s3imgfs-resize over the same photos
  local empty=$tmp/empty.ini t0 out=$tmp/resize-out
  [ -x "$resize_cli" ] || { note "$resize_cli missing: no reference for the renditions"; return 0; }
  printf '[resize]\n' >"$empty"
  rm -rf "$out"
  t0=$(now)
  if "$resize_cli" -c "$empty" --sizes "$sizes" -j "$(nproc)" -o "$out" "$photos"/* >/dev/null 2>"$tmp/resize.err"; then
    rec s3imgfs resize_cli_s "$(secs "$t0" "$(now)")"
  else
    note "s3imgfs-resize failed: $(head -c 300 "$tmp/resize.err")"
  fi
  rm -rf "$out"
}

for run in $(seq "$runs"); do
  for tool in $tools; do
    bench_tool "$tool"
  done
  [[ " $tools " != *" s3imgfs "* ]] || resize_reference
done

# ---- report ---------------------------------------------------------------------------------
s3fs_v=$(s3fs --version 2>/dev/null | head -1 | sed 's/^Amazon Simple Storage Service File System //; s/ (.*//')
rclone_v=$(rclone version 2>/dev/null | head -1 | awk '{ print $2 }')
ours_v=n/a
[ -x "$ours" ] && ours_v="$("$ours" --version 2>/dev/null | head -1 | sed 's/^s3imgfs //' || echo '?'), built $(date -u -r "$ours" '+%Y-%m-%d %H:%M UTC')"
cat <<EOF
fuse-bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), median of $runs run(s)
contenders: s3imgfs ($ours_v$([ "$ours_missing" = 1 ] && echo ", not built")), s3fs $s3fs_v, rclone $rclone_v (mount, --vfs-cache-mode writes / off); radosgw $(radosgw --version 2>/dev/null | awk '{ print $3 }') (memstore) on 127.0.0.1
photos: $photo_count files, $photo_mb MB ($photos); big file: $big_mib MiB; MB = 10^6 bytes
"durable" = listed with its size by a direct S3 listing (polled every 50 ms)

EOF
"$PY" - "$results" "$columns" "$big_mib" <<'EOF'
import statistics, sys
from collections import defaultdict
big = int(sys.argv[3])
big = "1 GiB" if big == 1024 else f"{big} MiB"
rows = [  # metric, label, better
    ("small_files_per_s", "(a) cp -r 1,000 x 4 KiB: files/s until durable", "higher"),
    ("small_cp_s", "    cp -r returned after, s", "lower"),
    ("photos_s", "(b) cp -r of the photos: s until durable", "lower"),
    ("photos_cp_s", "    cp -r returned after, s", "lower"),
    ("renditions_s", "    every rendition in DST after, s", "lower"),
    ("resize_cli_s", "    s3imgfs-resize -j NCPU, same photos, s", "lower"),
    ("write_mb_per_s", f"(c) {big} write: MB/s until durable", "higher"),
    ("write_cmd_s", "    dd returned after, s", "lower"),
    ("read_mb_per_s", f"(d) {big} cold read: MB/s", "higher"),
    ("ls_s", "(e) cold ls -l of 10,000 objects: s", "lower"),
    ("mv_s", "(f) mv of 100 MiB: s until durable", "lower"),
    ("mv_cmd_s", "    mv returned after, s", "lower"),
    ("rm_s", "(g) rm -r of 1,000 files: s until gone", "lower"),
    ("rm_cmd_s", "    rm -r returned after, s", "lower"),
    ("rss_mb", "(h) peak RSS of the process, MB (all but the photos)", "lower"),
    ("rss_photos_mb", "(h') peak RSS while the photos are copied (s3imgfs: resizing), MB", "lower"),
]
vals = defaultdict(list)
for line in open(sys.argv[1]):
    run, tool, metric, value = line.rstrip("\n").split("\t")
    try:
        vals[tool, metric].append(float(value))
    except ValueError:
        pass
tools = sys.argv[2].split()
peers = [t for t in tools if t != "s3imgfs"]
med = {k: statistics.median(v) for k, v in vals.items()}
fmt = lambda x: "n/a" if x is None else (f"{x:.0f}" if x >= 100 else f"{x:.2f}" if x < 10 else f"{x:.1f}")
head = ["measure".ljust(46)] + [" " + t.rjust(13) for t in tools] + [" " + ("s3imgfs/" + p).rjust(21) for p in peers] + ["  better"]
print("".join(head))
print("-" * len("".join(head)))
for metric, label, better in rows:
    cells = [label.ljust(46)]
    for t in tools:
        cells.append(" " + fmt(med.get((t, metric))).rjust(13))
    ours = med.get(("s3imgfs", metric))
    for p in peers:
        peer = med.get((p, metric))
        cells.append(" " + (f"{ours / peer:.2f}x" if ours is not None and peer else "n/a").rjust(21))
    cells.append("  " + better)
    print("".join(cells))
ren, cli = med.get(("s3imgfs", "renditions_s")), med.get(("s3imgfs", "resize_cli_s"))
if ren and cli:
    print(f"\nrenditions through the gateway (cp -r to the last rendition in DST) / s3imgfs-resize on the same "
          f"files: {ren:.2f} s / {cli:.2f} s = {ren / cli:.2f}x")
print("\ns3imgfs/peer = s3imgfs's figure / the peer's; read it with the 'better' column "
      "(higher: above 1 is s3imgfs ahead; lower: below 1 is s3imgfs ahead)")
EOF
