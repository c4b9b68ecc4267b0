#!/usr/bin/env bash
# The identity of the checked-out commit, computed one way for every build:
# `make build` (scripts/buildvars.sh --ldflags) and `make release` (which
# sources this file) stamp the same version, commit, commit time and dirty
# flag into internal/buildinfo, so a ceremony record names the build that
# wrote it whichever way the binary was made.
#
# Sets: dirty commit commit_time SOURCE_DATE_EPOCH version debversion
# changelog_section. Outside a git checkout it sets version=(devel) and
# leaves the rest empty: the binary then says it does not know.

buildvars() {
  dirty=false commit="" commit_time="" version="(devel)" debversion="" changelog_section=Unreleased
  git rev-parse --verify -q HEAD >/dev/null 2>&1 || return 0
  if [ -n "$(git status --porcelain --untracked-files=normal 2>/dev/null)" ]; then dirty=true; fi
  commit=$(git rev-parse HEAD)
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD)
  export SOURCE_DATE_EPOCH
  commit_time=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  local tag desc
  if tag=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null); then
    version=$tag
    debversion=${tag#v}
    changelog_section=${tag#v}
  elif desc=$(git describe --tags --match 'v[0-9]*' HEAD 2>/dev/null); then
    # v0.1.0-3-gabcdef1: three commits after v0.1.0
    version=$desc
    debversion=$(echo "${desc#v}" | sed -E 's/-([0-9]+)-g([0-9a-f]+)$/+\1.g\2/')
  else
    version="v0.0.0-$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S)-${commit:0:12}"
    debversion="0.0.0~$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).${commit:0:12}"
  fi
  if [ "$dirty" = true ]; then version+="+dirty"; debversion+="+dirty"; fi
}

# buildvars_ldflags prints the -X flags that stamp the identity.
buildvars_ldflags() {
  local pkg=github.com/kmsbridge/kmsbridge/internal/buildinfo
  printf -- '-X %s.version=%s -X %s.commit=%s -X %s.commitTime=%s -X %s.dirty=%s' \
    "$pkg" "$version" "$pkg" "$commit" "$pkg" "$commit_time" "$pkg" "$dirty"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  buildvars
  case "${1:-}" in
    --ldflags) buildvars_ldflags; echo ;;
    *) echo "version=$version commit=$commit commit_time=$commit_time dirty=$dirty" ;;
  esac
fi
