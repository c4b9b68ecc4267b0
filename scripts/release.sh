#!/usr/bin/env bash
# make release: build the release of the checked-out commit into dist/:
#   kmsbridge-VERSION-linux-{amd64,arm64}       the binaries (cgo, PKCS#11)
#   kms-emulator-VERSION-linux-{amd64,arm64}    the test KMS emulator
#   kmsbridge_DEBVERSION_{amd64,arm64}.deb      the Debian packages
#   *-VERSION-linux-ARCH.cdx.json               CycloneDX SBOM of each binary
#   SHA256SUMS                                  sha256sum of all of the above
# Reproducible: the same commit gives the same bytes in any directory, at
# any time (see README "Verifying a release"). Refuses a dirty tree (set
# ALLOW_DIRTY=1 to build one anyway, marked +dirty) and a CHANGELOG.md
# without a section for the version. DIST=dir writes elsewhere;
# RELEASE_CHECK_ONLY=1 stops after those checks, printing the version.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
die() { echo "release: $*" >&2; exit 2; }

git rev-parse --verify -q HEAD >/dev/null || die "not a git checkout with a commit: a release is built from a commit"
# The version, commit, commit time and dirty flag: the same computation
# `make build` stamps (scripts/buildvars.sh).
. ./scripts/buildvars.sh
buildvars
if [ "$dirty" = true ] && [ "${ALLOW_DIRTY:-}" != 1 ]; then
  die "the tree has uncommitted changes (git status): a release is built from a clean checkout of a commit; commit or stash them, or set ALLOW_DIRTY=1 for a build marked +dirty"
fi
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]] || die "version $version is not v<major>.<minor>.<patch>: tag releases as v0.1.0"

# The changelog must say what this version is.
if ! grep -qE "^## \[${changelog_section//./\\.}\]" CHANGELOG.md 2>/dev/null; then
  if [ "$changelog_section" = Unreleased ]; then
    die "CHANGELOG.md has no '## [Unreleased]' section: an untagged build ($version) lists its changes there"
  fi
  die "CHANGELOG.md has no '## [$changelog_section]' section for tag $version: add one (Keep a Changelog format) saying what changed, commit, and tag again"
fi

if [ "${RELEASE_CHECK_ONLY:-}" = 1 ]; then
  echo "version=$version debversion=$debversion commit=$commit"
  exit 0
fi

./scripts/install-release-deps.sh
tools="$(go env GOPATH)/kmsbridge-release-tools"

dist=${DIST:-dist}
rm -rf "$dist"
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "release: $version ($commit, $commit_time) into $dist"

# -extldflags: the C linker (cgo) makes relocations read-only and binds every
# symbol at start (RELRO, BIND_NOW), and CGO_CFLAGS compiles the cgo part
# with _FORTIFY_SOURCE, as Debian's hardening flags do (lintian checks both).
ldflags="-s -w -buildid= -extldflags=-Wl,-z,relro,-z,now $(buildvars_ldflags)"
# -trimpath: no build directory in the binary; -buildid=: no random build
# ID; -buildvcs=false: the commit comes from the -X values above;
# -buildmode=pie: position-independent, so ASLR places the code too
# (Debian builds every binary so, and lintian expects it).
build() { # GOARCH CC OUT PKG CGO
  CGO_CFLAGS="-g -O2 -D_FORTIFY_SOURCE=2" CGO_ENABLED=$5 GOOS=linux GOARCH=$1 CC=$2 go build -trimpath -buildvcs=false -buildmode=pie -ldflags "$ldflags" -o "$3" "$4"
}

# Documentation is the same for every architecture: generated once, by the
# CLI itself.
go run -trimpath ./cmd/kmsbridge gen-docs --man-dir "$work/man" --completion-dir "$work/completion"

for arch in amd64 arm64; do
  case $arch in
    amd64) cc=x86_64-linux-gnu-gcc ;;
    arm64) cc=aarch64-linux-gnu-gcc ;;
  esac
  bin="$dist/kmsbridge-$version-linux-$arch"
  echo "release: building linux/$arch"
  build $arch $cc "$bin" ./cmd/kmsbridge 1
  build $arch $cc "$dist/kms-emulator-$version-linux-$arch" ./cmd/kms-emulator 0

  # Depends: the shared libraries the binary links, from its ELF header.
  libs=$(readelf -d "$bin" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p' | sort -u | tr '\n' ' ')
  for lib in $libs; do
    case $lib in
      libc.so.6) ;;
      *) die "kmsbridge-linux-$arch links $lib, which this script does not map to a Debian package: add it to Depends" ;;
    esac
  done
  glibc=$(readelf --dyn-syms -W "$bin" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/GLIBC_//' | sort -uV | tail -1)
  depends="libc6 (>= $glibc)"

  root="$work/deb-$arch"
  doc="$root/usr/share/doc/kmsbridge"
  install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" "$doc" "$root/usr/share/lintian/overrides" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
  install -m 0755 "$bin" "$root/usr/bin/kmsbridge"
  for page in "$work"/man/*.1; do
    gzip -9n < "$page" > "$root/usr/share/man/man1/$(basename "$page").gz"
  done
  install -m 0644 "$work/completion/kmsbridge.bash" "$root/usr/share/bash-completion/completions/kmsbridge"
  install -m 0644 "$work/completion/_kmsbridge" "$root/usr/share/zsh/vendor-completions/_kmsbridge"
  install -m 0644 "$work/completion/kmsbridge.fish" "$root/usr/share/fish/vendor_completions.d/kmsbridge.fish"
  install -m 0644 README.md "$doc/README.md"
  # The project's changelog, under its own name; changelog.gz is the
  # package's Debian changelog (a native package has only that one, in
  # Debian's format), one entry pointing to it.
  gzip -9n < CHANGELOG.md > "$doc/CHANGELOG.md.gz"
  cat <<DEBCHANGELOG | gzip -9n > "$doc/changelog.gz"
kmsbridge ($debversion) unstable; urgency=medium

  * Built from upstream commit $commit;
    what changed is in /usr/share/doc/kmsbridge/CHANGELOG.md.gz.

 -- kmsbridge maintainers <kmsbridge@users.noreply.github.com>  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
DEBCHANGELOG
  # What lintian reports that is not a fault, each with its reason.
  cat > "$root/usr/share/lintian/overrides/kmsbridge" <<'OVERRIDES'
# Go stores its string constants end to end with no separator, so lintian
# reads words across two messages ("...to compare the attestation with" and
# "the attested key's..." become "withthe"); no message is misspelt.
kmsbridge: spelling-error-in-binary * [usr/bin/kmsbridge]
# .comment holds the C compiler's version, from the cgo objects of the
# PKCS#11 binding; -s -w strips symbols and DWARF, and Go's linker keeps it.
kmsbridge: binary-has-unneeded-section .comment [usr/bin/kmsbridge]
OVERRIDES
  cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kmsbridge
Source: https://github.com/kmsbridge/kmsbridge

Files: *
Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) the kmsbridge authors (see the Git history)
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0; it is also LICENSE in the source.
COPYRIGHT
  # Modes by rule, not by the umask: directories and the binary 0755,
  # everything else 0644.
  find "$root" -type d -exec chmod 0755 {} +
  find "$root" -type f -exec chmod 0644 {} +
  chmod 0755 "$root/usr/bin/kmsbridge"
  # Installed-Size in KiB as dpkg-gencontrol counts it (each file rounded
  # up, 1 per directory), from the files alone: du would count the build
  # file system's directory sizes.
  installed_size=$(find "$root/usr" -type f -printf '%s\n' | awk '{ k += int(($1 + 1023) / 1024) } END { print k }')
  installed_size=$((installed_size + $(find "$root/usr" -type d | wc -l)))
  cat > "$root/DEBIAN/control" <<CONTROL
Package: kmsbridge
Version: $debversion
Architecture: $arch
Maintainer: kmsbridge maintainers <kmsbridge@users.noreply.github.com>
Installed-Size: $installed_size
Depends: $depends
Suggests: softhsm2, opensc
Section: admin
Priority: optional
Homepage: https://github.com/kmsbridge/kmsbridge
Description: import HSM key material into AWS KMS without it leaving the HSM
 kmsbridge generates or finds a key inside a PKCS#11 HSM, wraps it there
 under the wrapping public key AWS KMS hands out for an import, and uploads
 only the wrapped blob; the plaintext never leaves the HSM. It keeps a
 hash-chained, HSM-signed ceremony record.
 .
 Built from commit $commit.
CONTROL
  (cd "$root" && find usr -type f | LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
  # Deterministic package: modes set above, every mtime the commit's time,
  # owner root; dpkg-deb sorts the members and takes the ar timestamps from
  # SOURCE_DATE_EPOCH.
  chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$root" "$dist/kmsbridge_${debversion}_$arch.deb" >/dev/null

  # -licenses: each module's licence, detected from its source in the
  # module cache, so the SBOM says what may be redistributed.
  "$tools/cyclonedx-gomod" bin -json -noserial -notimestamp -licenses -version "$version" \
    -output "$dist/kmsbridge-$version-linux-$arch.cdx.json" "$bin" 2>/dev/null
  "$tools/cyclonedx-gomod" bin -json -noserial -notimestamp -licenses -version "$version" \
    -output "$dist/kms-emulator-$version-linux-$arch.cdx.json" "$dist/kms-emulator-$version-linux-$arch" 2>/dev/null
done

(cd "$dist" && LC_ALL=C sha256sum -- $(LC_ALL=C ls | grep -v '^SHA256SUMS') > SHA256SUMS)
# The signature over SHA256SUMS (and so over every file it lists), made with
# the release key: an OpenSSH signing key (ssh-keygen -Y sign, namespace
# "file"), kept offline by the release manager and named by
# RELEASE_SIGNING_KEY; its public half is docs/release-signers, the
# allowed-signers file README's "Verifying a release" checks with. Without
# RELEASE_SIGNING_KEY the release is built unsigned, and says so.
if [ -n "${RELEASE_SIGNING_KEY:-}" ]; then
  ssh-keygen -q -Y sign -f "$RELEASE_SIGNING_KEY" -n file "$dist/SHA256SUMS" >/dev/null
  echo "release: signed SHA256SUMS with $(ssh-keygen -l -f "$RELEASE_SIGNING_KEY" | awk '{print $2}') -> SHA256SUMS.sig"
else
  echo "release: RELEASE_SIGNING_KEY is not set: SHA256SUMS is NOT signed (a release for others must be)"
fi
echo "release: done"
cat "$dist/SHA256SUMS"
