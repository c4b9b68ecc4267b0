package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestKeyAgreementKeyImportsAndVerifies imports a SoftHSM2 P-256 pair as a
// KEY_AGREEMENT key and proves it: public keys equal, and KMS's
// DeriveSharedSecret with a fresh peer key equals the peer's ECDH with the
// HSM's public key, and SoftHSM2's own CKM_ECDH1_DERIVE with another peer
// key (compared by HMAC in the token); `verify` shows the same.
func TestKeyAgreementKeyImportsAndVerifies(t *testing.T) {
	t.Parallel()
	// SoftHSM2 2.6 zero-pads a wrapped PKCS#8 (README, Support matrix).
	emu := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	res := importJSON(t, tok, "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "ka-2026", "--generate",
		"--key-spec", "ECC_NIST_P256", "--key-usage", "KEY_AGREEMENT", "--wrapping-algorithm", "RSA_AES_KEY_WRAP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--no-expiry")
	v := res.Verification
	if res.KeyUsage != "KEY_AGREEMENT" || !v.PublicKeyMatches || !v.SharedSecretMatches || !v.HSMAgreementMatches || !v.MaterialConfirmed {
		t.Fatalf("usage %s, verification %+v", res.KeyUsage, v)
	}
	r := kmsbridge(t, tok, "verify", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", res.KeyId, "--output", "json")
	var out struct{ Result awskms.VerifyResult }
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil || !out.Result.Verification.SharedSecretMatches || !out.Result.Verification.HSMAgreementMatches {
		t.Fatalf("verify: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// secp256k1 has no key agreement in KMS: refused before any change.
	r = kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "k1", "--generate",
		"--key-spec", "ECC_SECG_P256K1", "--key-usage", "KEY_AGREEMENT", "--no-expiry")
	if r.Code != exitInvalid || emu.keyCount(t) != 1 {
		t.Errorf("secp256k1 KEY_AGREEMENT: exit %d, %d keys\n%s", r.Code, emu.keyCount(t), r.Stderr)
	}
}

// TestKeyAgreementSplitUploadChecksTheHSMsECDH runs the air-gapped split
// for a KEY_AGREEMENT key: the wrap gathers the HSM's own ECDH with a
// throwaway peer key into the wrapped file, and the upload, with no HSM,
// checks KMS's DeriveSharedSecret for that peer against it. A wrapped
// file whose HSM HMAC was altered is refused by the upload's proof.
func TestKeyAgreementSplitUploadChecksTheHSMsECDH(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	dir := t.TempDir()
	emuArgs := []string{"--endpoint-url", emu.URL, "--allow-endpoint", emu.URL}
	split := func(name string, alter func(w map[string]any)) (run, awskms.Result) {
		bundle, wrapped := filepath.Join(dir, name+".bundle.json"), filepath.Join(dir, name+".wrapped.json")
		if r := kmsbridge(t, nil, append([]string{"prepare", "--key-spec", "ECC_NIST_P384", "--key-usage", "KEY_AGREEMENT",
			"--wrapping-algorithm", "RSA_AES_KEY_WRAP_SHA_1", "--wrapping-key-spec", "RSA_3072", "--out", bundle}, emuArgs...)...); r.Code != 0 {
			t.Fatalf("prepare: exit %d\n%s", r.Code, r.Stderr)
		}
		var b kmsimport.Bundle
		readJSON(t, bundle, &b)
		if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle,
			"--expect-fingerprint", awskms.FormatFingerprint(b.PublicKeySha256), "--key-label", name, "--generate", "--out", wrapped); r.Code != 0 {
			t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
		}
		var w map[string]any
		readJSON(t, wrapped, &w)
		ev, _ := w["Evidence"].(map[string]any)
		if ag, _ := ev["Agreement"].(map[string]any); ag == nil || ag["Mac"] == nil || ag["PeerPublicKey"] == nil {
			t.Fatalf("the wrapped file carries no HSM ECDH evidence: %v", ev)
		}
		if alter != nil {
			alter(w)
			raw, _ := json.Marshal(w)
			if err := os.WriteFile(wrapped, raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		r := runBinary(t, []string{"KMSBRIDGE_PKCS11_MODULE=/nonexistent"}, append([]string{"upload", "--wrapped", wrapped, "--bundle", bundle, "--no-expiry", "--allow-unsigned", "--output", "json"}, emuArgs...)...)
		var res awskms.Result
		_ = json.Unmarshal([]byte(r.Stdout), &res)
		return r, res
	}
	r, res := split("ka-split", nil)
	if v := res.Verification; r.Code != 0 || !v.PublicKeyMatches || !v.SharedSecretMatches || !v.HSMAgreementMatches {
		t.Fatalf("upload: exit %d, verification %+v\n%s", r.Code, v, r.Stderr)
	}
	r, _ = split("ka-altered", func(w map[string]any) {
		ag := w["Evidence"].(map[string]any)["Agreement"].(map[string]any)
		ag["Mac"] = base64.StdEncoding.EncodeToString(make([]byte, 32))
	})
	if r.Code != 5 || !strings.Contains(r.Stderr, "CKM_ECDH1_DERIVE") {
		t.Errorf("upload with an altered HSM ECDH HMAC: exit %d, want 5 naming the HSM's ECDH\n%s", r.Code, r.Stderr)
	}
}
