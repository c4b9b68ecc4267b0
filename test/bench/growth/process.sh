#!/bin/bash
# Whole-process growth figure (BENCHMARKS.md, run G): one `kmsbridge import`
# process, and a 10-key `kmsbridge import --from`, into a token that is empty
# and into one holding many keys, with the token's own cost beside them:
# tokenfloor (test/bench/tokenfloor, no kmsbridge code) doing only
# C_Initialize, C_OpenSession, C_Login (and one label search), C_Logout,
# C_Finalize. Every figure is a whole process under /usr/bin/time (wall, user
# + system CPU, peak RSS from the kernel); the states are interleaved, rep by
# rep, alternating which goes first, so a change in the machine's load falls
# on both.
#
#   test/bench/growth/process.sh softhsm2 EMPTY_CONF FULL_CONF REPS
#   test/bench/growth/process.sh nss EMPTY_DIR FULL_DIR REPS
#
# EMPTY_* and FULL_* are a SoftHSM2 configuration file (SOFTHSM2_CONF) or an
# NSS sql database directory, each with a token of PIN $KMSBRIDGE_PIN; fill
# the full one with `tokenfloor -n 10000 fill` (see BENCHMARKS.md for how
# run G filled SoftHSM2). TOKEN_LABEL: the SoftHSM2 token's label (default grow). Binaries: bin/kmsbridge, bin/kms-emulator,
# bin/tokenfloor (`cd test && go build -o ../bin/tokenfloor ./bench/tokenfloor`).
# Prints one line per process: state what wall_s cpu_s rss_kib, then medians.
set -euo pipefail
kind=$1 empty=$2 full=$3 reps=${4:-5}
bin=${BIN:-bin}
: "${KMSBRIDGE_PIN:?set KMSBRIDGE_PIN to the tokens PIN}"
export TOKENFLOOR_PIN=$KMSBRIDGE_PIN AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=secret AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_CA_BUNDLE
work=$(mktemp -d)
trap 'kill $emu 2>/dev/null || true; rm -rf "$work"' EXIT

# One emulator, 30 ms a request, its pool holding a wrapping key for every
# GetParametersForImport of the run, never refilled: it generates nothing
# while a process is measured.
"$bin/kms-emulator" --listen 127.0.0.1:0 --lenient-pkcs8-padding --latency 27ms --latency-jitter 6ms \
	--wrapping-key-pool "RSA_2048=$((reps * 2 * 11 + 4))" --wrapping-key-pool-refill=false >"$work/emu.out" 2>"$work/emu.err" &
emu=$!
for _ in $(seq 600); do grep -q '^listening on ' "$work/emu.out" 2>/dev/null && break; sleep 0.2; done
url=$(sed -n 's/^listening on //p' "$work/emu.out" | head -1)
[ -n "$url" ] || { echo "emulator did not start" >&2; cat "$work/emu.err" >&2; exit 1; }

# tok STATE: the kmsbridge and tokenfloor flags (and env) of STATE's token.
tok() {
	local where=$empty
	[ "$1" = full ] && where=$full
	case $kind in
	softhsm2) export SOFTHSM2_CONF=$where
		kb=(--module /usr/lib/softhsm/libsofthsm2.so --token-label "${TOKEN_LABEL:-grow}")
		tf=(-module /usr/lib/softhsm/libsofthsm2.so -token "${TOKEN_LABEL:-grow}") ;;
	nss) local p="configdir='sql:$where' certPrefix='' keyPrefix='' secmod='secmod.db' flags="
		kb=(--module /usr/lib/x86_64-linux-gnu/libsoftokn3.so --module-params "$p" --token-label "NSS Certificate DB")
		tf=(-module /usr/lib/x86_64-linux-gnu/libsoftokn3.so -module-params "$p" -token "NSS Certificate DB") ;;
	*) echo "unknown token kind $kind" >&2; exit 2 ;;
	esac
}

# measure STATE WHAT CMD...: one process under /usr/bin/time.
measure() {
	local state=$1 what=$2; shift 2
	/usr/bin/time -f '%e %U %S %M' -o "$work/t" "$@" >"$work/out" 2>"$work/err" || { echo "$state $what failed:" >&2; tail -5 "$work/err" >&2; exit 1; }
	read -r e u s m <"$work/t"
	printf '%s %s %.2f %.2f %d\n' "$state" "$what" "$e" "$(echo "$u + $s" | bc)" "$m" | tee -a "$work/all"
}

for r in $(seq "$reps"); do
	order="empty full"
	[ $((r % 2)) = 0 ] && order="full empty"
	for state in $order; do
		tok "$state"
		label=g$$-$state-$r
		measure "$state" import "$bin/kmsbridge" import "${kb[@]}" --endpoint-url "$url" --allow-endpoint "$url" \
			--key-label "$label" --generate --no-expiry --wrapping-algorithm RSAES_OAEP_SHA_1 --wrapping-key-spec RSA_2048 --alias "alias/$label" -o json --log-level warn
		{ echo "hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry"
		  for i in $(seq -w 10); do echo "$label-b$i,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/$label-b$i,RSAES_OAEP_SHA_1,RSA_2048,true"; done; } >"$work/keys.csv"
		measure "$state" bulk10 "$bin/kmsbridge" import "${kb[@]}" --endpoint-url "$url" --allow-endpoint "$url" \
			--from "$work/keys.csv" --parallel 4 --kms-rate off -o json --log-level warn
		measure "$state" token-login "$bin/tokenfloor" "${tf[@]}" login
		measure "$state" token-login+search "$bin/tokenfloor" "${tf[@]}" -search "$label-free" login
	done
done

echo
echo "medians of $reps: state what wall_s cpu_s peak_rss_MiB"
for what in import bulk10 token-login token-login+search; do
	for state in empty full; do
		awk -v s="$state" -v w="$what" '$1==s && $2==w {print $3, $4, $5}' "$work/all" | sort -n >"$work/m"
		n=$(wc -l <"$work/m")
		wall=$(awk '{print $1}' "$work/m" | sort -n | sed -n "$(((n + 1) / 2))p")
		cpu=$(awk '{print $2}' "$work/m" | sort -n | sed -n "$(((n + 1) / 2))p")
		rss=$(awk '{print $3}' "$work/m" | sort -n | sed -n "$(((n + 1) / 2))p")
		wmin=$(awk '{print $1}' "$work/m" | sort -n | head -1); wmax=$(awk '{print $1}' "$work/m" | sort -n | tail -1)
		printf '%s %s %s (%s-%s) %s %.1f\n' "$state" "$what" "$wall" "$wmin" "$wmax" "$cpu" "$(echo "$rss / 1024" | bc -l)"
	done
done
