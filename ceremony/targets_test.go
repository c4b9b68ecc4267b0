package ceremony

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

var targetsNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func TestMultiCloudExampleLoads(t *testing.T) {
	f, err := Load("testdata/multicloud.yaml", targetsNow)
	if err != nil {
		t.Fatal(err)
	}
	k := f.Keys[0]
	if len(k.Targets) != 2 || k.Targets[0].Cloud() != "gcp" || k.Targets[1].Cloud() != "azure" {
		t.Fatalf("targets %+v", k.Targets)
	}
	if got := k.Targets[0].Name(); got != "projects/payments-prod/locations/europe-west1/keyRings/signing/cryptoKeys/signer-2026" {
		t.Errorf("gcp target name %q", got)
	}
	g, err := k.GCPRequest(k.Targets[0].GCP, nil)
	if err != nil || g.Algorithm != "EC_SIGN_P256_SHA256" || !g.Generate || g.KeyLabel != "signer-2026" {
		t.Errorf("gcp request %+v, %v", g, err)
	}
	a, err := k.AzureRequest(k.Targets[1].Azure, []byte{1, 2})
	if err != nil || a.KeyType != "EC-P256" || a.Expires == nil || !a.Expires.Equal(time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)) || a.Tags["owner"] != "payments" || a.Generate {
		t.Errorf("azure request %+v, %v", a, err)
	}
}

// An AWS-only file has no targets and parses as before.
func TestAWSOnlyFileHasNoTargets(t *testing.T) {
	f, err := Load("testdata/example.yaml", targetsNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range f.Keys {
		if len(k.Targets) != 0 {
			t.Errorf("key %s has targets", k.HSMLabel)
		}
	}
}

func TestBadTargetsAreRefusedWithTheirField(t *testing.T) {
	base, err := os.ReadFile("testdata/multicloud.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, from, to, field, want string }{
		{"bad project", "project: payments-prod", "project: Payments_Prod", "keys[0].targets[0].gcp", "project"},
		{"no location", "location: europe-west1", "location: ''", "keys[0].targets[0].gcp", "location"},
		{"bad ring", "key-ring: signing", "key-ring: 'sign ing'", "keys[0].targets[0].gcp", "key-ring"},
		{"gcp endpoint not allowed", "# endpoint: http://127.0.0.1:9090", "endpoint: http://127.0.0.1:9090", "keys[0].targets[0].gcp.endpoint", "allow-endpoint"},
		{"wrong algorithm", "# algorithm: EC_SIGN_P256_SHA256", "algorithm: HMAC_SHA256", "keys[0].targets[0].gcp.algorithm", "HMAC_SHA256"},
		{"no roots", "manufacturer-root: roots/marvell_root.pem", "", "keys[0].targets[0].gcp", "manufacturer-root"},
		{"not a vault", "vault-url: https://contoso-payments.vault.azure.net", "vault-url: https://evil.example.com", "keys[0].targets[1].azure.vault-url", "not a Key Vault"},
		{"azure endpoint not allowed", "vault-url: https://contoso-payments.vault.azure.net", "endpoint: https://127.0.0.1:8443", "keys[0].targets[1].azure.endpoint", "allow-endpoint"},
		{"azure endpoint and vault differ", "# endpoint: https://127.0.0.1:8443", "endpoint: https://127.0.0.1:8443", "keys[0].targets[1].azure.endpoint", "differ"},
		{"gcp allow without endpoint", "# allow-endpoint: http://127.0.0.1:9090", "allow-endpoint: http://127.0.0.1:9090", "keys[0].targets[0].gcp.allow-endpoint", "endpoint"},
		{"bad key name", "key-name: signer-2026", "key-name: signer_2026", "keys[0].targets[1].azure", "key-name"},
		{"bad kek size", "kek-size: 4096", "kek-size: 1024", "keys[0].targets[1].azure", "kek-size"},
		{"unknown field", "kek-name: kmsbridge-kek", "kek-label: x", "keys[0].targets[1].azure.kek-label", "unknown field"},
		{"both clouds", "      - azure:\n", "        azure:\n", "keys[0].targets[0]", "both gcp and azure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Replace(string(base), c.from, c.to, 1)
			if text == string(base) {
				t.Fatalf("%q is not in the example", c.from)
			}
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, targetsNow)
			if err == nil || !errors.Is(err, kmsimport.ErrInvalidInput) {
				t.Fatalf("loaded, or not invalid input: %v", err)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("not Errors: %v", err)
			}
			for _, e := range es {
				if e.Field == c.field && strings.Contains(e.Msg, c.want) {
					return
				}
			}
			t.Errorf("no problem at %s mentioning %q:\n%v", c.field, c.want, err)
		})
	}
}

// A key whose material a cloud does not import is refused for that
// target: AES for Key Vault, RSA without a named Cloud KMS algorithm.
func TestTargetMustImportTheKeysMaterial(t *testing.T) {
	base, _ := os.ReadFile("testdata/multicloud.yaml")
	text := strings.Replace(string(base), "key-spec: ECC_NIST_P256\n    key-usage: SIGN_VERIFY", "key-spec: SYMMETRIC_DEFAULT\n    key-usage: ENCRYPT_DECRYPT", 1)
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(text), 0o600)
	_, err := Load(path, targetsNow)
	if err == nil || !strings.Contains(err.Error(), "keys[0].targets[1].azure") || strings.Contains(err.Error(), "targets[0].gcp") {
		t.Errorf("an AES key to Key Vault: %v", err)
	}
	text = strings.Replace(string(base), "key-spec: ECC_NIST_P256", "key-spec: RSA_3072", 1)
	os.WriteFile(path, []byte(text), 0o600)
	_, err = Load(path, targetsNow)
	if err == nil || !strings.Contains(err.Error(), "keys[0].targets[0].gcp.algorithm") {
		t.Errorf("an RSA key to Cloud KMS without an algorithm: %v", err)
	}
}

func TestTwoKeysToOneTargetRefused(t *testing.T) {
	base, _ := os.ReadFile("testdata/multicloud.yaml")
	s := string(base)
	i := strings.Index(s, "  - hsm-label:")
	second := strings.NewReplacer("hsm-label: signer-2026", "hsm-label: signer-b", "alias/signer-2026", "alias/signer-b").Replace(s[i:])
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(s+second), 0o600)
	_, err := Load(path, targetsNow)
	if err == nil || !strings.Contains(err.Error(), "keys[1].targets[0]") || !strings.Contains(err.Error(), "one HSM key only") {
		t.Errorf("two keys into one crypto key: %v", err)
	}
}

// A key list for import --from imports into AWS only: targets are refused,
// and a CSV has no targets column.
func TestKeyListRefusesTargets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.yaml")
	os.WriteFile(path, []byte(`- hsm-label: k1
  generate: true
  key-spec: SYMMETRIC_DEFAULT
  key-usage: ENCRYPT_DECRYPT
  alias: alias/k1
  wrapping-algorithm: RSAES_OAEP_SHA_256
  wrapping-key-spec: RSA_4096
  no-expiry: true
  targets:
    - gcp:
        project: payments-prod
        location: europe-west1
        key-ring: r
        crypto-key: k1
        skip-attestation: true
`), 0o600)
	if _, err := LoadKeys(path, targetsNow); err == nil || !strings.Contains(err.Error(), "keys[0].targets") || !strings.Contains(err.Error(), "ceremony files") {
		t.Errorf("a key list with targets: %v", err)
	}
	for _, c := range csvFields() {
		if c == "targets" {
			t.Error("the CSV columns include targets")
		}
	}
}

// TestTargetOutcomeJSONShape: the report's shape of a target does not
// depend on where the code keeps each cloud's result.
func TestTargetOutcomeJSONShape(t *testing.T) {
	to := &TargetOutcome{Cloud: "gcp", Target: "projects/p", Done: true, Proof: "ok", hsmKey: "01"}
	to.Gcp = &gcp.Result{}
	b, err := json.Marshal(to)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"Cloud":"gcp","Target":"projects/p","Done":true,"Proof":"ok","Gcp":{`) || strings.Contains(string(b), "Azure") || strings.Contains(string(b), "hsmKey") {
		t.Errorf("TargetOutcome JSON = %s", b)
	}
}
