#!/usr/bin/env bash
# Release builds of scaiwave-auth: static, cgo-free binaries for Linux,
# with -version set and a SHA256SUMS file beside them.
#
#   scripts/release.sh [VERSION]
#
# VERSION defaults to `git describe --tags --always --dirty` (or "dev"
# outside a clone). The environment may set:
#   OUT      where the binaries go (default: dist)
#   TARGETS  GOARCH values to build, space-separated (default: "amd64 arm64 arm");
#            arm is built for GOARM=7 unless GOARM is set
#   TAGS     build tags (default: none; "postgres" builds in PostgreSQL support)
#
# Output: OUT/scaiwave-auth-linux-ARCH for each target, and OUT/SHA256SUMS
# (check a copy with: cd OUT && sha256sum -c SHA256SUMS). The first build on
# a machine compiles SQLite in pure Go, which takes a few minutes; later ones
# reuse Go's build cache.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [[ ! $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]]; then
  echo "release.sh: version \"$version\" must be letters, digits and . _ + - (it goes into -ldflags)" >&2
  exit 2
fi
out=${OUT:-dist}
targets=${TARGETS:-amd64 arm64 arm}
mkdir -p "$out"

built=()
for arch in $targets; do
  case $arch in
    amd64 | arm64 | arm) ;;
    *) echo "release.sh: unsupported target \"$arch\" (want amd64, arm64 or arm)" >&2; exit 2 ;;
  esac
  bin="scaiwave-auth-linux-$arch"
  echo "building $out/$bin ($version)" >&2
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=${GOARM:-7} \
    go build -trimpath -tags "${TAGS:-}" -ldflags "-s -w -X main.releaseVersion=$version" -o "$out/$bin" .
  built+=("$bin")
done

(cd "$out" && sha256sum "${built[@]}" >SHA256SUMS)
echo "wrote $out/SHA256SUMS:" >&2
cat "$out/SHA256SUMS"
