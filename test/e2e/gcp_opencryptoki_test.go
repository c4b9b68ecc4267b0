package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// opencryptoki 3.8's soft token lists RSA-OAEP (SHA-1 and SHA-256) with
// CKF_WRAP but no AES key wrap with padding (so no CKM_RSA_AES_KEY_WRAP),
// and generates no EC keys (docs/tokens.md). For Google that leaves the
// direct RSA_OAEP_*_SHA256 methods, which Cloud KMS offers for raw
// symmetric material only; everything else must be refused naming the
// token's limitation, before any change.

func TestGCPImportOnOpencryptoki(t *testing.T) {
	emu := startGCPEmulator(t)
	tok := softhsm.NewOCKTestToken(t, "gcp")
	env := []string{"KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PIN=" + tok.PIN}
	state := t.TempDir() // one host: one journal for every run
	gcpRun := func(name, alg string) run {
		return runBinary(t, env, append(emu.args(tok.Label, state, name, "--key-label", name, "--generate", "--gcp-algorithm", alg), "--output", "json")...)
	}

	// Refusals first, so "nothing was changed" includes the key ring.
	for _, c := range []struct {
		alg  string
		code int
		want []string
	}{
		// PKCS#8 of RSA is too long for direct OAEP: only the RSA-AES methods carry it.
		{"RSA_SIGN_PKCS1_2048_SHA256", 2, []string{"none of the methods Google Cloud KMS accepts", "CKM_AES_KEY_WRAP_KWP"}},
		{"RSA_DECRYPT_OAEP_2048_SHA256", 2, []string{"none of the methods Google Cloud KMS accepts", "CKM_AES_KEY_WRAP_KWP"}},
		{"EC_SIGN_P256_SHA256", 3, []string{`token "gcp" cannot do generation of EC P-256`, "CKM_EC_KEY_PAIR_GEN"}},
	} {
		name := "ock-" + strings.ToLower(strings.ReplaceAll(c.alg, "_", "-"))
		r := gcpRun(name, c.alg)
		out := r.Stdout + r.Stderr
		for _, w := range append(c.want, "Nothing was changed") {
			if !strings.Contains(out, w) {
				t.Errorf("%s: missing %q in:\n%s", c.alg, w, out)
			}
		}
		if r.Code != c.code || emu.exists(t, gcpRing) || strings.Contains(r.Stderr, "step=generate-hsm-key") {
			t.Errorf("%s: exit %d (want %d), key ring made %v\n%s", c.alg, r.Code, c.code, emu.exists(t, gcpRing), r.Stderr)
		}
	}

	for _, alg := range []string{"GOOGLE_SYMMETRIC_ENCRYPTION", "HMAC_SHA256", "HMAC_SHA512"} {
		name := "ock-" + strings.ToLower(strings.ReplaceAll(alg, "_", "-"))
		r := gcpRun(name, alg)
		var res gcp.Result
		if err := json.Unmarshal([]byte(r.Stdout), &res); r.Code != 0 || err != nil {
			t.Fatalf("%s: exit %d %v\n%s", alg, r.Code, err, r.Stderr)
		}
		proved := res.Proof.EncryptDecrypt
		if alg != "GOOGLE_SYMMETRIC_ENCRYPTION" {
			proved = res.Proof.MaterialConfirmed // MacSign equals the token's own HMAC
		}
		// The strongest method the token can do; the result says why the
		// stronger RSA-AES ones were passed over.
		if res.ImportMethod != "RSA_OAEP_4096_SHA256" || res.VersionState != "ENABLED" || !res.Attestation.Verified || !proved ||
			res.HSM.Token.Model != "IBM SoftTok" || !strings.Contains(strings.Join(res.Warnings, "\n"), "no RSA_OAEP_4096_SHA256_AES_256") {
			t.Errorf("%s: %+v", alg, res)
		}
		if alg == "HMAC_SHA256" {
			// Exactly once: the same command again creates nothing.
			again := gcpRun(name, alg)
			if n := len(emu.versions(t, res.CryptoKey)); again.Code != 0 || n != 1 {
				t.Errorf("re-run: exit %d, %d versions\n%s", again.Code, n, again.Stderr)
			}
		}
	}
	// Google's client uses the imported AES key independently.
	key := gcpRing + "/cryptoKeys/ock-google-symmetric-encryption"
	ctx := context.Background()
	enc, err := emu.KMS.Encrypt(ctx, &kmspb.EncryptRequest{Name: key, Plaintext: []byte("ock")})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := emu.KMS.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: enc.Ciphertext}); err != nil || string(dec.Plaintext) != "ock" {
		t.Fatalf("decrypt %v %v", dec, err)
	}
}

// Azure's BYOK accepts CKM_RSA_AES_KEY_WRAP only, which opencryptoki's
// soft token cannot perform: every key type is refused naming that (or,
// for EC, that it generates no EC keys), and neither the KEK nor the key
// is created.
func TestAzureImportOnOpencryptokiRefusedNamingTheToken(t *testing.T) {
	v := startAzure(t, azkvemu.ManagedHSM, false)
	tok := softhsm.NewOCKTestToken(t, "azure")
	env := append([]string{"KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PIN=" + tok.PIN}, v.env...)
	for _, c := range []struct {
		kt   string
		code int
		want []string
	}{
		{"RSA-2048", 2, []string{"CKM_AES_KEY_WRAP_KWP"}},
		{"AES-256", 2, []string{"CKM_AES_KEY_WRAP_KWP"}},
		{"EC-P256", 3, []string{"CKM_EC_KEY_PAIR_GEN"}},
	} {
		name := "ock-" + strings.ToLower(c.kt)
		args := []string{"import", "--cloud", "azure", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(), "--managed-hsm",
			"--token-label", tok.Label, "--output", "json", "--kek-size", "2048", "--state-dir", v.state,
			"--key-name", name, "--key-label", name, "--generate", "--azure-key-type", c.kt}
		r := runBinary(t, env, args...)
		out := r.Stdout + r.Stderr
		for _, w := range append(c.want, `token "azure"`, "Nothing was changed") {
			if !strings.Contains(out, w) {
				t.Errorf("%s: missing %q in:\n%s", c.kt, w, out)
			}
		}
		if r.Code != c.code || v.Versions(name) != 0 || v.Versions(azure.DefaultKEKName) != 0 {
			t.Errorf("%s: exit %d (want %d), key versions %d, KEK versions %d", c.kt, r.Code, c.code, v.Versions(name), v.Versions(azure.DefaultKEKName))
		}
	}
}
