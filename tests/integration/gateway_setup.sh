# The common start of the real-mount tests (test_gateway.sh, test_durability.sh), sourced with
# the test's own arguments once it has set:
#   test_name     short name for the scratch folder and the buckets ("gw" -> s3imgfs-gw-src-...)
#   needed_tools  commands the test uses besides the aws CLI and python3
# Checks the arguments (PATH/TO/s3imgfs), skips (77) without radosgw or FUSE unless
# S3IMGFS_REQUIRE_SERVERS=1, then sets fs, endpoint, access_key, secret_key, region, gw_timeout,
# AWS, PY, tmp, src, dst, mnt, log and conf, gives the test a private HOME and aws CLI setup
# (nothing from the user's AWS or s3imgfs configuration leaks in), and sources harness.sh and
# gateway_lib.sh.
# shellcheck shell=bash disable=SC2154,SC2034

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 PATH/TO/s3imgfs (an executable)" >&2
  exit 2
fi

# skip REASON: exit 77, or 1 when the servers and FUSE are required.
skip() {
  if [ "${S3IMGFS_REQUIRE_SERVERS:-0}" = 1 ]; then
    echo "$1, but S3IMGFS_REQUIRE_SERVERS=1: failing" >&2
    exit 1
  fi
  echo "$1: skipping" >&2
  exit 77
}
[ -n "${S3IMGFS_TEST_ENDPOINT:-}" ] ||
  skip "S3IMGFS_TEST_ENDPOINT is not set (start radosgw with scripts/servers/rgw-start.sh and source its env.sh)"
[ -c /dev/fuse ] || skip "/dev/fuse does not exist (no FUSE in this kernel or container)"
{ [ -r /dev/fuse ] && [ -w /dev/fuse ]; } || skip "/dev/fuse is not readable and writable by $(id -un)"
command -v fusermount3 >/dev/null 2>&1 || skip "fusermount3 is missing (Debian package fuse3)"

AWS=/usr/bin/aws # Debian's awscli; another aws may come first on PATH
PY=/usr/bin/python3
for tool in "$AWS" "$PY" "${needed_tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "$tool is missing: run scripts/install-deps.sh" >&2
    exit 1
  }
done

fs=$(readlink -f "$1")
endpoint=$S3IMGFS_TEST_ENDPOINT
access_key=${S3IMGFS_TEST_ACCESS_KEY:?S3IMGFS_TEST_ACCESS_KEY is not set}
secret_key=${S3IMGFS_TEST_SECRET_KEY:?S3IMGFS_TEST_SECRET_KEY is not set}
region=${S3IMGFS_TEST_REGION:-us-east-1}
gw_timeout=${S3IMGFS_GWTEST_TIMEOUT:-60}
export LC_ALL=C.UTF-8 VIPS_WARNING=0

tmp=$(mktemp -d "/tmp/s3imgfs-$test_name-test.XXXXXX")
suffix="$$-$RANDOM"
src=s3imgfs-$test_name-src-$suffix
dst=s3imgfs-$test_name-dst-$suffix
mnt=$tmp/mnt
log=$tmp/s3imgfs.log
conf=$tmp/config.ini
: >"$log"

# A private HOME, no AWS_* variables, an aws CLI config of our own (path-style addressing for
# radosgw). The keys reach the aws CLI through its credentials file and s3imgfs through its
# config file only.
for v in $(compgen -e | grep '^AWS_' || true); do unset "$v"; done
unset XDG_CONFIG_HOME
export HOME=$tmp/home
mkdir -p "$HOME"
export AWS_CONFIG_FILE=$tmp/aws-config AWS_SHARED_CREDENTIALS_FILE=$tmp/aws-credentials
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
printf '[default]\nregion = %s\ns3 =\n  addressing_style = path\n' "$region" >"$AWS_CONFIG_FILE"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$access_key" "$secret_key" \
  >"$AWS_SHARED_CREDENTIALS_FILE"
chmod 600 "$AWS_SHARED_CREDENTIALS_FILE"

# shellcheck source=tests/integration/harness.sh
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
# shellcheck source=tests/integration/gateway_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

# At exit: the buckets and the scratch folder go (S3IMGFS_GWTEST_KEEP=1 keeps them); a scratch
# folder with something still mounted under it stays.
remove_test_data() {
  if [ "${S3IMGFS_GWTEST_KEEP:-0}" = 1 ]; then
    echo "# S3IMGFS_GWTEST_KEEP=1: kept s3://$src, s3://$dst and $tmp (log: $log)" >&2
    return
  fi
  purge_bucket "$src"
  purge_bucket "$dst"
  if findmnt -rn -o TARGET | grep -qF -- "$tmp/"; then
    echo "# a mount is still in place under $tmp: leaving it" >&2
  else
    rm -rf --one-file-system "$tmp"
  fi
}
