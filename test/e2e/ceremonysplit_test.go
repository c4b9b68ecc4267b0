package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestDualControlCeremonyThroughTheSplit: a ceremony file with dual
// control cannot run in one pass; its settings drive prepare, approve,
// wrap and upload instead, and the key ends up imported and proven.
func TestDualControlCeremonyThroughTheSplit(t *testing.T) {
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "record.jsonl")
	file := filepath.Join(dir, "dual.yaml")
	body := fmt.Sprintf(`hsm:
  module: %s
  token:
    label: %s
  pin-source:
    env: CEREMONY_PIN
kms:
  region: us-east-1
  endpoint: %[3]s
  allow-endpoint: %[3]s
record: %s
operators:
  - Alice (custodian)
  - Sam (security officer)
dual-control:
  wrap-with-trusted: true
keys:
  - hsm-label: guarded-mac
    generate: true
    key-spec: HMAC_384
    key-usage: GENERATE_VERIFY_MAC
    alias: alias/guarded-mac
    wrapping-algorithm: RSAES_OAEP_SHA_1
    wrapping-key-spec: RSA_2048
    no-expiry: true
`, tok.Module, tok.Label, emu.URL, rec)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env := "CEREMONY_PIN=" + tok.PIN
	r := kmsbridge(t, tok, env, "ceremony", "run", file)
	if r.Code != 2 || !strings.Contains(r.Stderr, "prepare, approve, wrap and upload") {
		t.Fatalf("ceremony run with dual control: exit %d\n%s", r.Code, r.Stderr)
	}

	bundle, wrapped := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json")
	if r := kmsbridge(t, nil, "prepare", "--ceremony", file, "--key", "guarded-mac", "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare --ceremony: %s", r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	if b.KeySpec != "HMAC_384" || b.WrappingAlgorithm != "RSAES_OAEP_SHA_1" || b.WrappingKeySpec != "RSA_2048" {
		t.Errorf("prepare did not take the key's settings from the file: %+v", b)
	}
	if r := kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "approve", "--ceremony", file, "--key", "guarded-mac", "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256); r.Code != 0 {
		t.Fatalf("approve --ceremony: %s", r.Stderr)
	}
	r = kmsbridge(t, tok, env, "KMSBRIDGE_PIN=", "wrap", "--ceremony", file, "--key", "guarded-mac", "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--out", wrapped)
	if r.Code != 0 {
		t.Fatalf("wrap --ceremony: %s", r.Stderr)
	}
	var w kmsimport.Wrapped
	readJSON(t, wrapped, &w)
	if w.HSMKey.KeyLabel != "guarded-mac" || !w.HSMKey.Generated {
		t.Errorf("wrap did not generate the file's key: %+v", w.HSMKey)
	}
	res := importJSONArgs(t, nil, "upload", "--ceremony", file, "--key", "guarded-mac", "--wrapped", wrapped)
	if !res.Verification.MaterialConfirmed || res.ExpirationModel != "KEY_MATERIAL_DOES_NOT_EXPIRE" {
		t.Errorf("upload: %+v %s", res.Verification, res.ExpirationModel)
	}
	for _, cmd := range []string{`"Command":"prepare"`, `"Command":"approve"`, `"Command":"wrap"`, `"Command":"upload"`} {
		if !recordHas(t, rec, cmd) {
			t.Errorf("the file's record lacks %s", cmd)
		}
	}
	if !tokenKeyIsGuarded(t, tok, "guarded-mac") {
		t.Error("the generated key lacks CKA_WRAP_WITH_TRUSTED although the file asks for dual control")
	}
	if r := kmsbridge(t, nil, "prepare", "--ceremony", file, "--key", "nosuch", "--out", filepath.Join(dir, "x.json")); r.Code != 2 || !strings.Contains(r.Stderr, "guarded-mac") {
		t.Errorf("--key not in the file: exit %d %s", r.Code, r.Stderr)
	}
}
