package ceremony

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// A file without a kms section sends its keys to their targets only:
// no AWS field is needed, and the requests generate through the first
// target.
func TestTargetsOnlyExampleLoads(t *testing.T) {
	f, err := Load("testdata/targets-only.yaml", targetsNow)
	if err != nil {
		t.Fatal(err)
	}
	if f.HasKMS() || f.NeedsAWS() {
		t.Errorf("HasKMS %v NeedsAWS %v, want false", f.HasKMS(), f.NeedsAWS())
	}
	for _, k := range f.Keys {
		if f.GoesToAWS(k) {
			t.Errorf("key %s goes to AWS", k.HSMLabel)
		}
	}
	g, err := f.Keys[0].GCPRequest(f.Keys[0].Targets[0].GCP, nil)
	if err != nil || !g.Generate || g.KeyLabel != "signer-2026" {
		t.Errorf("gcp request %+v, %v", g, err)
	}
	a, err := f.Keys[0].AzureRequest(f.Keys[0].Targets[1].Azure, []byte{1})
	if err != nil || a.Generate || a.Expires == nil || a.Tags["owner"] != "payments" {
		t.Errorf("azure request %+v, %v", a, err)
	}
}

// The example with kms added and aws: false on one key: that key goes to
// its targets only; a key without aws goes to AWS KMS as before.
func TestAWSFalseKeyInAFileWithKMS(t *testing.T) {
	base, _ := os.ReadFile("testdata/multicloud.yaml")
	text := strings.Replace(string(base), "keys:\n", "keys:\n  - hsm-label: google-only\n    generate: true\n    key-spec: HMAC_256\n    aws: false\n"+
		"    targets:\n      - gcp:\n          project: payments-prod\n          location: europe-west1\n          key-ring: mac\n          crypto-key: google-only\n          protection-level: SOFTWARE\n", 1)
	f, err := Load(writeTemp(t, text), targetsNow)
	if err != nil {
		t.Fatal(err)
	}
	if f.GoesToAWS(f.Keys[0]) || !f.GoesToAWS(f.Keys[1]) || !f.NeedsAWS() {
		t.Errorf("GoesToAWS %v %v", f.GoesToAWS(f.Keys[0]), f.GoesToAWS(f.Keys[1]))
	}
}

func writeTemp(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Bad combinations are refused at load with the field to fix.
func TestTargetsOnlyBadCombinations(t *testing.T) {
	base, err := os.ReadFile("testdata/targets-only.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, from, to, field, want string }{
		{"AWS field without kms", "    key-spec: ECC_NIST_P256\n", "    key-spec: ECC_NIST_P256\n    alias: alias/signer\n", "keys[0].alias", "AWS KMS field"},
		{"wrapping without kms", "    key-spec: SYMMETRIC_DEFAULT\n", "    key-spec: SYMMETRIC_DEFAULT\n    wrapping-algorithm: RSAES_OAEP_SHA_256\n", "keys[1].wrapping-algorithm", "add a kms section"},
		{"rotate-to without kms", "    key-spec: SYMMETRIC_DEFAULT\n", "    key-spec: SYMMETRIC_DEFAULT\n    rotate-to: data-2027\n", "keys[1].rotate-to", "AWS KMS field"},
		{"no targets", "    targets:\n      - gcp:\n          project: payments-prod\n          location: europe-west1\n          key-ring: data\n", "    tgt:\n      - gcp:\n          project: payments-prod\n          location: europe-west1\n          key-ring: data\n", "keys[1].tgt", "unknown field"},
		{"aws true without kms", "    key-spec: SYMMETRIC_DEFAULT\n", "    key-spec: SYMMETRIC_DEFAULT\n    aws: true\n", "kms.region", "is required"},
		{"tags on a Google-only key", "    key-spec: SYMMETRIC_DEFAULT\n", "    key-spec: SYMMETRIC_DEFAULT\n    tags:\n      a: b\n", "keys[1].tags", "neither"},
		{"valid-to in the past", "valid-to: 2027-06-30", "valid-to: 2020-01-01", "keys[0].valid-to", "not in the future"},
		{"both expiries", "valid-to: 2027-06-30", "valid-to: 2027-06-30\n    no-expiry: true", "keys[0]", "both valid-to and no-expiry"},
		{"no key-spec", "    key-spec: SYMMETRIC_DEFAULT\n", "", "keys[1].key-spec", "is required"},
		{"no generate", "    generate: true\n    key-spec: SYMMETRIC_DEFAULT\n", "    key-spec: SYMMETRIC_DEFAULT\n", "keys[1].generate", "is required"},
		{"wrap-with-trusted", "wrap-with-trusted: false", "wrap-with-trusted: true", "keys[0].generate", "CKA_WRAP_WITH_TRUSTED"},
		{"AES to Key Vault", "          key-ring: data\n          crypto-key: data-2026\n          manufacturer-root: roots/marvell_root.pem\n          owner-root: roots/google_hawksbill_root.pem\n",
			"          key-ring: data\n          crypto-key: data-2026\n          manufacturer-root: roots/marvell_root.pem\n          owner-root: roots/google_hawksbill_root.pem\n      - azure:\n          vault-url: https://contoso-payments.vault.azure.net\n          key-name: data-2026\n",
			"keys[1].targets[1].azure", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Replace(string(base), c.from, c.to, 1)
			if text == string(base) {
				t.Fatalf("%q is not in the example", c.from)
			}
			_, err := Load(writeTemp(t, text), targetsNow)
			if err == nil || !errors.Is(err, kmsimport.ErrInvalidInput) {
				t.Fatalf("Load: %v, want invalid input", err)
			}
			if !strings.Contains(err.Error(), c.field) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error lacks %q / %q:\n%v", c.field, c.want, err)
			}
		})
	}
}

// aws: false on a key with no targets sends it nowhere.
func TestAWSFalseWithoutTargetsRefused(t *testing.T) {
	base, _ := os.ReadFile("testdata/example.yaml")
	text := strings.Replace(string(base), "    generate: true\n", "    generate: true\n    aws: false\n", 1)
	if text == string(base) {
		t.Fatal("no generate: true in the example")
	}
	_, err := Load(writeTemp(t, text), targetsNow)
	if err == nil || !strings.Contains(err.Error(), ".targets is required") || !strings.Contains(err.Error(), "aws: false") {
		t.Errorf("Load: %v", err)
	}
}

// A key list (import --from) sends every key to AWS KMS: aws is refused.
func TestKeyListRefusesAWSField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	text := "- hsm-label: k\n  generate: true\n  key-spec: SYMMETRIC_DEFAULT\n  key-usage: ENCRYPT_DECRYPT\n  alias: alias/k\n  wrapping-algorithm: RSAES_OAEP_SHA_256\n  wrapping-key-spec: RSA_4096\n  no-expiry: true\n  aws: false\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKeys(path, targetsNow)
	if err == nil || !strings.Contains(err.Error(), "keys[0].aws is for ceremony files") {
		t.Errorf("LoadKeys: %v", err)
	}
}
