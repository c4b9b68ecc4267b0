package e2e

import (
	"encoding/json"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// TestGCPImportFromNSS runs the Google import on NSS softokn, which wraps
// with OAEP SHA-256 and pads nothing: the strongest methods are chosen and
// the emulator parses PKCS#8 strictly.
func TestGCPImportFromNSS(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tok := softhsm.NewNSSTestToken(t)
	env := []string{"KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PKCS11_MODULE_PARAMS=" + tok.Params, "KMSBRIDGE_PIN=" + tok.PIN}
	for _, c := range []struct{ alg, method string }{
		{"GOOGLE_SYMMETRIC_ENCRYPTION", "RSA_OAEP_4096_SHA256_AES_256"},
		{"HMAC_SHA256", "RSA_OAEP_4096_SHA256_AES_256"},
		{"EC_SIGN_P256_SHA256", "RSA_OAEP_4096_SHA256_AES_256"},
	} {
		t.Run(c.alg, func(t *testing.T) {
			r := runBinary(t, env, append(emu.args(tok.Label, t.TempDir(), "nss-"+c.alg[:4], "--key-label", "nss-"+c.alg, "--generate", "--gcp-algorithm", c.alg), "--output", "json")...)
			if r.Code != 0 {
				t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
			}
			var res gcp.Result
			if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
				t.Fatal(err)
			}
			if res.ImportMethod != c.method || res.VersionState != "ENABLED" || !res.Attestation.Verified || (c.alg != "GOOGLE_SYMMETRIC_ENCRYPTION" && !res.Proof.MaterialConfirmed) {
				t.Fatalf("%+v", res)
			}
		})
	}
}
