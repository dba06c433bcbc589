#!/usr/bin/env bash
# Builds the s3imgfs-lambda container image (deploy/Dockerfile) for one architecture, pushes it
# to an Amazon ECR repository (created when missing) and prints the ImageUri to give to
# deploy/template.yaml: REGISTRY/REPOSITORY@sha256:DIGEST on stdout, everything else on stderr,
# so that IMAGE_URI=$(deploy/build-image.sh eu-west-1) works.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/build-image.sh [-a ARCH] [-r REPOSITORY] [-t TAG] [-p PROFILE] REGION

Builds the s3imgfs-lambda image with docker buildx, pushes it to Amazon ECR in REGION and
prints its ImageUri (by digest) for the template's ImageUri parameter.

  REGION          AWS region of the stack, e.g. eu-west-1 (the image must be in the same one)
  -a ARCH         x86_64 (default) or arm64; pass the same as the template's Architecture
  -r REPOSITORY   ECR repository name (default s3imgfs-lambda); created when missing, with
                  scan on push and AES256 encryption
  -t TAG          image tag (default: git describe of the sources, the architecture and the
                  time, e.g. 1a2b3c4-x86_64-20260101T120000Z)
  -p PROFILE      AWS CLI profile (default: the AWS CLI's usual choice)
  -h              this text

Needs: docker with buildx (cross-building arm64 on x86_64 needs QEMU binfmt, which Docker
Desktop has; on Linux: docker run --privileged --rm tonistiigi/binfmt --install arm64), and the
AWS CLI v2 with rights to ECR (create-repository, get-login-password, push, describe-images).

Example:
  IMAGE_URI=$(deploy/build-image.sh -a arm64 eu-west-1)
  aws cloudformation deploy --region eu-west-1 --template-file deploy/template.yaml \
    --stack-name s3imgfs --capabilities CAPABILITY_IAM \
    --parameter-overrides ImageUri="$IMAGE_URI" Architecture=arm64
EOF
}

die() {
  echo "build-image: $*" >&2
  exit 1
}

arch=x86_64
repo=s3imgfs-lambda
tag=""
profile=()
while getopts ":a:r:t:p:h" opt; do
  case "$opt" in
    a) arch=$OPTARG ;;
    r) repo=$OPTARG ;;
    t) tag=$OPTARG ;;
    p) profile=(--profile "$OPTARG") ;;
    h) usage; exit 0 ;;
    :) usage >&2; die "option -$OPTARG needs a value" ;;
    *) usage >&2; die "unknown option -$OPTARG" ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { usage >&2; exit 2; }
region=$1

[[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "'$region' is not a region name such as eu-west-1"
case "$arch" in
  x86_64) platform=linux/amd64 ;;
  arm64) platform=linux/arm64 ;;
  *) die "architecture '$arch': expected x86_64 or arm64" ;;
esac
[[ $repo =~ ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$ ]] ||
  die "'$repo' is not an ECR repository name (lowercase letters, digits, '.', '_', '-', '/')"

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker buildx version >/dev/null 2>&1 || die "docker buildx is missing (the docker-buildx-plugin package)"
docker info >/dev/null 2>&1 || die "cannot reach the docker daemon (is it running, may you use it?)"
command -v aws >/dev/null 2>&1 || die "the AWS CLI (v2) is not installed"
aws --version 2>&1 | grep -q '^aws-cli/2\.' || die "the AWS CLI must be version 2 ($(aws --version 2>&1))"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -f "$root/deploy/Dockerfile" ] || [ ! -f "$root/lambda/lambda.h" ]; then
  die "cannot find the repository around $0"
fi

if [ -z "$tag" ]; then
  rev=$(git -C "$root" describe --always --dirty 2>/dev/null || echo local)
  tag="${rev}-${arch}-$(date -u +%Y%m%dT%H%M%SZ)"
fi
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'$tag' is not an image tag"

aws_() { aws ${profile[@]+"${profile[@]}"} --region "$region" "$@"; }

account=$(aws_ sts get-caller-identity --query Account --output text) ||
  die "no AWS credentials that work (aws sts get-caller-identity failed)"
domain=amazonaws.com
[[ $region == cn-* ]] && domain=amazonaws.com.cn
registry="$account.dkr.ecr.$region.$domain"

if ! aws_ ecr describe-repositories --repository-names "$repo" >/dev/null 2>&1; then
  echo "build-image: creating the ECR repository $repo in $region" >&2
  aws_ ecr create-repository --repository-name "$repo" \
    --image-scanning-configuration scanOnPush=true \
    --encryption-configuration encryptionType=AES256 >/dev/null
fi

echo "build-image: logging in to $registry" >&2
aws_ ecr get-login-password | docker login --username AWS --password-stdin "$registry" >&2

image="$registry/$repo:$tag"
echo "build-image: building $image for $platform" >&2
# --provenance=false --sbom=false: no attestations, so the push is one image manifest and not
# an index with "unknown/unknown" entries, which Lambda refuses.
docker buildx build \
  --platform "$platform" \
  --provenance=false --sbom=false \
  --file "$root/deploy/Dockerfile" \
  --tag "$image" \
  --push \
  "$root" >&2

digest=$(aws_ ecr describe-images --repository-name "$repo" --image-ids imageTag="$tag" \
  --query 'imageDetails[0].imageDigest' --output text)
[[ $digest == sha256:* ]] || die "cannot find the digest of $image in ECR (got '$digest')"

echo "build-image: pushed $image ($digest); Architecture=$arch" >&2
echo "$registry/$repo@$digest"
