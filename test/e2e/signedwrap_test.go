package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestSignedWrappedFile: with an audit key, wrap signs the wrapped file;
// upload checks it against the audit public key, refuses an edited file
// before any change, and says "unsigned, not checked" without the key.
func TestSignedWrappedFile(t *testing.T) {
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "r.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	bundle, wrapped := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--key-spec", "HMAC_256", "--key-usage", "GENERATE_VERIFY_MAC", "--wrapping-algorithm", "RSA_AES_KEY_WRAP_SHA_1", "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare: %s", r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
		"--key-label", "k", "--generate", "--out", wrapped, "--record", rec, "--audit-key", "audit")
	if r.Code != 0 {
		t.Fatalf("wrap: %s", r.Stderr)
	}
	if _, err := os.Stat(wrapped + ".sig"); err != nil || !strings.Contains(r.Stdout, "--audit-public-key") {
		t.Fatalf("wrap with an audit key wrote no signature (%v) or did not say to check it:\n%s", err, r.Stdout)
	}

	// An edited HSM evidence field is refused before KMS is touched.
	var m map[string]any
	readJSON(t, wrapped, &m)
	m["Evidence"].(map[string]any)["Mac"] = base64.StdEncoding.EncodeToString(make([]byte, 32))
	edited := filepath.Join(dir, "edited.json")
	raw, _ := json.Marshal(m)
	os.WriteFile(edited, raw, 0o600)
	copyFile(t, wrapped+".sig", edited+".sig")
	r = kmsbridge(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", edited, "--audit-public-key", pub, "--no-expiry")
	if r.Code != 5 || !strings.Contains(r.Stderr, "altered after wrap") {
		t.Errorf("edited evidence: exit %d, want 5 naming the alteration:\n%s", r.Code, r.Stderr)
	}
	if st := keyState(t, emu, b.KeyId); st != "PendingImport" {
		t.Errorf("a refused upload changed the KMS key: %s", st)
	}

	// The unedited file passes, and the result says its evidence was signed.
	r = kmsbridge(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", wrapped, "--audit-public-key", pub, "--no-expiry")
	if r.Code != 0 || !strings.Contains(r.Stdout, "signature checked") {
		t.Fatalf("signed upload: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestUnsignedEvidenceSaysSo: an upload without --audit-public-key says
// the HSM's evidence was not checked.
func TestUnsignedEvidenceSaysSo(t *testing.T) {
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	bundle, wrapped := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare: %s", r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--key-label", "k", "--generate", "--out", wrapped); r.Code != 0 {
		t.Fatalf("wrap: %s", r.Stderr)
	}
	r := kmsbridge(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", wrapped, "--no-expiry")
	if r.Code != 0 || !strings.Contains(r.Stdout, "unsigned, not checked") {
		t.Errorf("unsigned upload: exit %d, want 0 saying 'unsigned, not checked':\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
