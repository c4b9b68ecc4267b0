#!/usr/bin/env bash
# Installs what `make release` needs beyond the test dependencies, when
# missing: Debian's cross toolchain for linux/arm64 (cgo is needed for
# PKCS#11), dpkg-deb and binutils' readelf, lintian (the package's
# check) and ssh-keygen (the checksums' signature) (Debian packages), and
# cyclonedx-gomod (the SBOM generator, from the Go module proxy, at a
# pinned version and built with -trimpath, so every rebuild writes the same
# SBOM: the SBOM names the generator by its own hash).
set -euo pipefail

CYCLONEDX_GOMOD_VERSION=v1.10.0

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/include/stdlib.h ] || need+=(libc6-dev-arm64-cross)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v readelf >/dev/null || need+=(binutils)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v git >/dev/null || need+=(git)
command -v xz >/dev/null || need+=(xz-utils)
command -v lintian >/dev/null || need+=(lintian)
command -v ssh-keygen >/dev/null || need+=(openssh-client)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-release-deps: missing Debian packages: ${need[*]}; run as root, or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "install-release-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "install-release-deps: go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
# Its own directory, which only this script writes: scripts/release.sh runs
# it from there.
gobin="$(go env GOPATH)/kmsbridge-release-tools"
if ! "$gobin/cyclonedx-gomod" version 2>/dev/null | grep -q "Version:[[:space:]]*$CYCLONEDX_GOMOD_VERSION\$"; then
  echo "install-release-deps: installing cyclonedx-gomod $CYCLONEDX_GOMOD_VERSION into $gobin"
  GOBIN="$gobin" GOFLAGS=-buildvcs=false go install -trimpath "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$CYCLONEDX_GOMOD_VERSION"
fi
exit 0
