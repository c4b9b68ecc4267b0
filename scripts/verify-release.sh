#!/usr/bin/env bash
# make verify-release: proves the checked-out commit builds reproducibly.
# It clones the commit twice into two different directories and runs
# scripts/release.sh in each, one after the other (so at different times);
# the second build has an empty Go build cache (every package compiled
# afresh), another time zone and another umask. The two SHA256SUMS must be
# byte-identical, and so must every file they list. Exit 0 when they are, 5
# when not. Only committed work is built: commit first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
root=$(pwd)
commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain)" ]; then
  echo "verify-release: note: uncommitted changes are not part of the check; it builds commit $commit" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clone() { # DIR
  git clone -q --no-checkout "$root" "$1"
  git -C "$1" checkout -q --detach "$commit"
}

start=$SECONDS
clone "$tmp/first/kmsbridge"
echo "verify-release: build 1 of $commit in $tmp/first/kmsbridge"
(cd "$tmp/first/kmsbridge" && DIST="$tmp/dist-1" ./scripts/release.sh >"$tmp/build-1.log" 2>&1) || { cat "$tmp/build-1.log" >&2; exit 1; }

clone "$tmp/second/elsewhere/src"
echo "verify-release: build 2 of $commit in $tmp/second/elsewhere/src (empty build cache, TZ=Pacific/Auckland, umask 077)"
(cd "$tmp/second/elsewhere/src" && umask 077 && TZ=Pacific/Auckland GOCACHE="$tmp/gocache-2" DIST="$tmp/dist-2" ./scripts/release.sh >"$tmp/build-2.log" 2>&1) || { cat "$tmp/build-2.log" >&2; exit 1; }

if ! cmp -s "$tmp/dist-1/SHA256SUMS" "$tmp/dist-2/SHA256SUMS"; then
  echo "verify-release: NOT reproducible: the two builds of $commit differ:" >&2
  diff "$tmp/dist-1/SHA256SUMS" "$tmp/dist-2/SHA256SUMS" >&2 || true
  exit 5
fi
(cd "$tmp/dist-2" && sha256sum --quiet -c SHA256SUMS) || { echo "verify-release: build 2's files do not match its SHA256SUMS" >&2; exit 5; }
echo "verify-release: reproducible: both builds of $commit give these bytes ($((SECONDS - start)) s):"
cat "$tmp/dist-1/SHA256SUMS"
