#!/usr/bin/env bash
# make release-test: installs the .deb for this machine's architecture from
# dist/ with dpkg -i, checks what it installed (kmsbridge --version, the man
# pages, the completion scripts), removes it with dpkg -r and checks every
# file is gone. Builds dist/ with scripts/release.sh first when it has no
# package. Needs root; refuses to touch a kmsbridge package it did not
# install.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
fail() { echo "release-test: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "release-test: needs root (dpkg -i): run as root" >&2; exit 2; }
arch=$(dpkg --print-architecture)
shopt -s nullglob
debs=(dist/kmsbridge_*_"$arch".deb)
if [ ${#debs[@]} -eq 0 ]; then
  ./scripts/release.sh
  debs=(dist/kmsbridge_*_"$arch".deb)
fi
[ ${#debs[@]} -eq 1 ] || fail "expected one dist/kmsbridge_*_$arch.deb, found ${#debs[@]}"
deb=${debs[0]}
if dpkg-query -W -f='${Status}' kmsbridge 2>/dev/null | grep -q 'install ok installed'; then
  echo "release-test: a kmsbridge package is already installed; remove it first (dpkg -r kmsbridge): this test does not replace it" >&2
  exit 2
fi

# Debian's own check of the package: no error, warning or info tag that is
# not overridden (the overrides, each with its reason, are in the package).
command -v lintian >/dev/null || fail "lintian is not installed (scripts/install-release-deps.sh installs it)"
echo "release-test: lintian $deb"
lintian --fail-on error,warning,info --display-info "$deb" || fail "lintian reports the tags above"

installed=false
cleanup() { if $installed; then dpkg -P kmsbridge >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

echo "release-test: dpkg -i $deb"
dpkg -i "$deb" >/dev/null
installed=true
mapfile -t files < <(dpkg -L kmsbridge | while read -r f; do [ -f "$f" ] && echo "$f"; done)

[ "$(command -v kmsbridge)" = /usr/bin/kmsbridge ] || fail "kmsbridge is not /usr/bin/kmsbridge on PATH"
kmsbridge --version | head -1 | grep -qE '^kmsbridge v[0-9]+\.[0-9]+\.[0-9]+' || fail "kmsbridge --version: $(kmsbridge --version | head -1)"
built_from=$(dpkg-deb -f "$deb" Description | grep -oE 'commit [0-9a-f]{40}' | cut -d' ' -f2)
json=$(kmsbridge --version --output json)
echo "$json" | grep -q "\"commit\":\"$built_from\"" || fail "kmsbridge --version --output json ($json) does not name the commit the package was built from ($built_from)"
echo "release-test: installed: $(kmsbridge --version | head -1)"

for f in /usr/share/man/man1/kmsbridge.1.gz /usr/share/man/man1/kmsbridge-import.1.gz /usr/share/man/man1/kmsbridge-record-verify.1.gz \
  /usr/share/bash-completion/completions/kmsbridge /usr/share/zsh/vendor-completions/_kmsbridge \
  /usr/share/fish/vendor_completions.d/kmsbridge.fish /usr/share/doc/kmsbridge/copyright /usr/share/doc/kmsbridge/README.md; do
  [ -f "$f" ] || fail "$f is not installed"
done
zcat /usr/share/man/man1/kmsbridge-import.1.gz | grep -q '^\.SH EXAMPLES' || fail "man page kmsbridge-import has no EXAMPLES"
if command -v man >/dev/null; then
  MANPAGER=cat man kmsbridge-import 2>/dev/null | grep -q -- '--key-label' || fail "man kmsbridge-import does not show --key-label"
fi
# The bash completion script loads and completes the commands.
out=$(bash -c 'source /usr/share/bash-completion/completions/kmsbridge && complete -p kmsbridge && COMP_WORDS=(kmsbridge imp) COMP_CWORD=1 && _kmsbridge_bash_autocomplete && echo "${COMPREPLY[@]}"') || fail "the bash completion does not load"
echo "$out" | grep -qx 'import' || fail "bash completion of 'kmsbridge imp' gave: $out"

echo "release-test: dpkg -r kmsbridge"
dpkg -r kmsbridge >/dev/null
installed=false
dpkg -P kmsbridge >/dev/null 2>&1 || true # nothing left unless a later version adds conffiles
for f in "${files[@]}"; do
  [ ! -e "$f" ] || fail "$f is still there after dpkg -r"
done
! command -v kmsbridge >/dev/null || fail "kmsbridge is still on PATH after dpkg -r"
echo "release-test: ok: ${#files[@]} files installed, checked and removed"
