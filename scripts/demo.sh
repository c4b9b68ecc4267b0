#!/usr/bin/env bash
# make demo: a full import ceremony on a fresh SoftHSM2 token against the
# local KMS emulator, then the key at work in KMS, the check values side by
# side, and a delete + re-import from the HSM's master copy.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
work=$(mktemp -d /tmp/kmsbridge-demo.XXXXXX)
emu_pid=
cleanup() {
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*" >&2; "$@"; }

go build -o "$bin/softhsm-token" ./cmd/softhsm-token

say "1. Start the local KMS emulator (127.0.0.1 only)"
"$bin/kms-emulator" --listen 127.0.0.1:0 --test-operations >"$work/emulator.out" 2>"$work/emulator.log" &
emu_pid=$!
for _ in $(seq 50); do grep -q '^listening on ' "$work/emulator.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on //p' "$work/emulator.out" | head -1)
[ -n "$endpoint" ] || { echo "the emulator did not start:"; cat "$work/emulator.log"; exit 1; }
echo "KMS endpoint: $endpoint"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
# kmsbridge sends key material only to AWS's endpoints unless another one is
# named and confirmed (docs/endpoint-policy.md); it never takes one from
# AWS_ENDPOINT_URL_KMS. The emulator is named and confirmed on each command.
emu=(--endpoint-url "$endpoint" --allow-endpoint "$endpoint")
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true

say "2. Provision a fresh SoftHSM2 token"
export KMSBRIDGE_PIN=1234 KMSBRIDGE_SO_PIN=5678   # throwaway token: demo PINs
eval "$("$bin/softhsm-token" --dir "$work/softhsm" --label ceremony)"
export KMSBRIDGE_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so

say "3. Generate the key in the HSM, wrap it there, import it into KMS"
valid_to=$(date -u -d '+180 days' +%Y-%m-%dT00:00:00Z)
show "$bin/kmsbridge" import "${emu[@]}" --token-label ceremony \
  --key-label payments-2026 --generate \
  --alias alias/payments --description "payments data key" --tag owner=payments \
  --valid-to "$valid_to" --output json >"$work/result.json"
key_id=$(jq -r .KeyId "$work/result.json")
hsm_kcv=$(jq -r .Hsm.KeyCheckValue "$work/result.json")
hsm_id=$(jq -r .Hsm.KeyId "$work/result.json")
echo "Result (kmsbridge import --output json, abridged):"
jq '{KeyId, Arn, AliasName, KeyState, KeyMaterialId, ExpirationModel, ValidTo, WrappingAlgorithm, WrappingKeySpec, WrappingPublicKeySha256, KmsEndpoint, Hsm, Warnings}' "$work/result.json"

say "4. The key works in KMS"
if command -v aws >/dev/null; then
  printf 'hello from the HSM' >"$work/plain.txt"
  show aws kms encrypt --endpoint-url "$endpoint" --key-id alias/payments --plaintext "fileb://$work/plain.txt" \
    --query CiphertextBlob --output text >"$work/ct.b64"
  base64 -d "$work/ct.b64" >"$work/ct.bin"
  printf '$ aws kms decrypt --ciphertext-blob fileb://ct.bin\nDecrypted: ' >&2
  aws kms decrypt --endpoint-url "$endpoint" --ciphertext-blob "fileb://$work/ct.bin" --query Plaintext --output text | base64 -d; echo
else
  echo "(the aws CLI is not installed; kmsbridge's own verify step already round-tripped Encrypt/Decrypt)"
fi

say "5. The material in KMS is the HSM's: check values side by side"
kms_kcv=$(curl -s -X POST "$endpoint/" -H 'X-Amz-Target: TrentService.KmsBridgeGetKeyCheckValue' \
  -H 'Content-Type: application/x-amz-json-1.1' -d "{\"KeyId\":\"$key_id\"}" |
  jq -r .KeyCheckValue)
echo "HSM key check value (CKA_CHECK_VALUE):        $hsm_kcv"
echo "KMS emulator check value of imported material: $kms_kcv"
[ "$hsm_kcv" = "$kms_kcv" ] && echo "MATCH" || { echo "MISMATCH"; exit 1; }
echo "(real KMS exposes no check value; the emulator's test-only operation stands in here)"

say "6. Delete the material in KMS, then re-import it from the HSM's master copy"
show "$bin/kmsbridge" delete-material "${emu[@]}" --kms-key-id "$key_id" --yes
show "$bin/kmsbridge" import "${emu[@]}" --token-label ceremony --hsm-key-id "$hsm_id" --kms-key-id "$key_id" --valid-to "$valid_to"

say "7. A key ceremony from one reviewed file, with a record signed in the HSM"
show "$bin/kmsbridge" audit-key create --token-label ceremony --label ceremony-audit \
  --out "$work/audit.pem" --record "$work/ceremony.jsonl"
cat >"$work/ceremony.yaml" <<YAML
hsm:
  module: /usr/lib/softhsm/libsofthsm2.so
  token:
    label: ceremony
  pin-source:
    env: KMSBRIDGE_PIN
kms:
  region: us-east-1
  endpoint: $endpoint
  allow-endpoint: $endpoint   # a rehearsal against the emulator, on purpose
record: $work/ceremony.jsonl
audit-key:
  label: ceremony-audit
operators:
  - Alice Example (key custodian)
  - Bob Example (witness)
dual-control:
  wrap-with-trusted: false
keys:
  - hsm-label: tokenization-2026
    generate: true
    key-spec: SYMMETRIC_DEFAULT
    key-usage: ENCRYPT_DECRYPT
    alias: alias/tokenization
    wrapping-algorithm: RSAES_OAEP_SHA_1
    wrapping-key-spec: RSA_4096
    valid-to: "$valid_to"
  - hsm-label: card-mac-2026
    generate: true
    key-spec: HMAC_256
    key-usage: GENERATE_VERIFY_MAC
    alias: alias/card-mac
    wrapping-algorithm: RSA_AES_KEY_WRAP_SHA_1
    wrapping-key-spec: RSA_4096
    no-expiry: true
YAML
show "$bin/kmsbridge" ceremony run --dry-run "$work/ceremony.yaml" --log-level warn
show "$bin/kmsbridge" ceremony run "$work/ceremony.yaml" --log-level warn
show "$bin/kmsbridge" record verify --public-key "$work/audit.pem" "$work/ceremony.jsonl" | tail -3
echo "Run it again and it only verifies:"
"$bin/kmsbridge" ceremony run --dry-run "$work/ceremony.yaml" --log-level warn | grep 'will:'

say "Demo complete"
