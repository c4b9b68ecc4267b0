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
	t.Parallel()
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
	res := importJSONArgs(t, nil, "upload", "--ceremony", file, "--key", "guarded-mac", "--wrapped", wrapped, "--allow-unsigned")
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

// TestCeremonyFileAuditKeyProtectsTheSplit: a ceremony file whose
// audit-key names its public key makes the split signed end to end
// without extra flags: prepare --ceremony names the key in the bundle,
// wrap --ceremony signs, upload --ceremony checks the signature (and
// refuses the file with its .sig removed).
func TestCeremonyFileAuditKeyProtectsTheSplit(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "record.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	file := filepath.Join(dir, "c.yaml")
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
record: %[4]s
audit-key:
  label: audit
  public-key: %[5]s
operators:
  - Alice (custodian)
dual-control:
  wrap-with-trusted: false
keys:
  - hsm-label: mac
    generate: true
    key-spec: HMAC_256
    key-usage: GENERATE_VERIFY_MAC
    alias: alias/ceremony-mac
    wrapping-algorithm: RSAES_OAEP_SHA_1
    wrapping-key-spec: RSA_2048
    no-expiry: true
`, tok.Module, tok.Label, emu.URL, rec, pub)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env := "CEREMONY_PIN=" + tok.PIN
	bundle, wrapped := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json")
	if r := kmsbridge(t, nil, "prepare", "--ceremony", file, "--key", "mac", "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare --ceremony: %s", r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	if b.AuditPublicKeySha256 == "" {
		t.Fatal("the bundle does not name the ceremony file's audit key")
	}
	if r := kmsbridge(t, tok, env, "wrap", "--ceremony", file, "--key", "mac", "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--out", wrapped); r.Code != 0 {
		t.Fatalf("wrap --ceremony: %s", r.Stderr)
	}
	stripped := filepath.Join(dir, "stripped.json")
	copyFile(t, wrapped, stripped)
	if r := kmsbridge(t, nil, "upload", "--ceremony", file, "--key", "mac", "--wrapped", stripped, "--allow-unsigned"); r.Code != 5 {
		t.Errorf("upload --ceremony of the file without its .sig: exit %d, want 5\n%s", r.Code, r.Stderr)
	}
	r := kmsbridge(t, nil, "upload", "--ceremony", file, "--key", "mac", "--wrapped", wrapped)
	if r.Code != 0 || !strings.Contains(r.Stdout, "signature checked") {
		t.Fatalf("upload --ceremony: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
