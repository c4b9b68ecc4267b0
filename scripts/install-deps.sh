#!/usr/bin/env bash
# Installs what kmsbridge's tests and demo need on Debian, when missing:
# SoftHSM2 (the token), OpenSC (pkcs11-tool, for looking at tokens), NSS
# tools (a second software token), opencryptoki (a third: its soft token
# and slot daemon), p11-kit (its proxy module and RPC client/server, two
# more PKCS#11 stacks the suite runs on), tpm2-pkcs11 over a software TPM
# (swtpm, tpm2-abrmd, tpm2-tools), Caml Crush and gnome-keyring (three more
# stacks the suite refuses cleanly on), OpenSSL (the independent decoder).
# The aws CLI and Go are expected on the image; their absence is reported.
set -euo pipefail

need=()
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
command -v certutil >/dev/null || need+=(libnss3-tools)
[ -x /usr/sbin/pkcsslotd ] || need+=(opencryptoki)
command -v p11-kit >/dev/null || need+=(p11-kit)
ls /usr/lib/*/p11-kit-proxy.so >/dev/null 2>&1 || need+=(p11-kit-modules)
[ -e /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so ] || need+=(libtpm2-pkcs11-1)
command -v tpm2_ptool >/dev/null || need+=(libtpm2-pkcs11-tools)
command -v swtpm >/dev/null || need+=(swtpm)
[ -x /usr/sbin/tpm2-abrmd ] || need+=(tpm2-abrmd libtss2-tcti-tabrmd0)
command -v tpm2_getcap >/dev/null || need+=(tpm2-tools)
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
[ -x /usr/bin/pkcs11proxyd ] || need+=(caml-crush-server)
[ -x /usr/bin/gnome-keyring-daemon ] || need+=(gnome-keyring)
[ -e /usr/lib/x86_64-linux-gnu/pkcs11/gnome-keyring-pkcs11.so ] || need+=(gnome-keyring-pkcs11)
[ -e /usr/lib/x86_64-linux-gnu/caml-crush/libp11clientunix.so ] || need+=(caml-crush-clients)
command -v openssl >/dev/null || need+=(openssl)
command -v xxd >/dev/null || need+=(xxd)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
command -v ip >/dev/null || need+=(iproute2)  # ip netns: the network stand-in for a network HSM

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${need[*]}; run as root, or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "install-deps: go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
command -v aws >/dev/null || echo "install-deps: note: the aws CLI is not on PATH; the tests that drive it will say so and skip"
exit 0
