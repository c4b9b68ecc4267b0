package e2e

import (
	"encoding/json"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestKeyAgreementKeyImportsAndVerifies imports a SoftHSM2 P-256 pair as a
// KEY_AGREEMENT key and proves it: public keys equal, and KMS's
// DeriveSharedSecret with a fresh peer key equals the peer's ECDH with the
// HSM's public key; `verify` shows the same.
func TestKeyAgreementKeyImportsAndVerifies(t *testing.T) {
	t.Parallel()
	// SoftHSM2 2.6 zero-pads a wrapped PKCS#8 (README, Support matrix).
	emu := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	res := importJSON(t, tok, "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "ka-2026", "--generate",
		"--key-spec", "ECC_NIST_P256", "--key-usage", "KEY_AGREEMENT", "--wrapping-algorithm", "RSA_AES_KEY_WRAP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--no-expiry")
	v := res.Verification
	if res.KeyUsage != "KEY_AGREEMENT" || !v.PublicKeyMatches || !v.SharedSecretMatches || !v.MaterialConfirmed {
		t.Fatalf("usage %s, verification %+v", res.KeyUsage, v)
	}
	r := kmsbridge(t, tok, "verify", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", res.KeyId, "--output", "json")
	var out struct{ Result kmsimport.VerifyResult }
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil || !out.Result.Verification.SharedSecretMatches {
		t.Fatalf("verify: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// secp256k1 has no key agreement in KMS: refused before any change.
	r = kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "k1", "--generate",
		"--key-spec", "ECC_SECG_P256K1", "--key-usage", "KEY_AGREEMENT", "--no-expiry")
	if r.Code != exitInvalid || emu.keyCount(t) != 1 {
		t.Errorf("secp256k1 KEY_AGREEMENT: exit %d, %d keys\n%s", r.Code, emu.keyCount(t), r.Stderr)
	}
}
