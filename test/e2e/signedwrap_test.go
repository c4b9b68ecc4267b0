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
	t.Parallel()
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

// TestUnsignedEvidenceSaysSo: an unsigned wrapped file is refused by
// default (exit 2, nothing changed); with --allow-unsigned it is uploaded,
// the result says the HSM's evidence was not checked, and the record
// carries the opt-out.
func TestUnsignedEvidenceSaysSo(t *testing.T) {
	t.Parallel()
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
	if r.Code != 2 || !strings.Contains(r.Stderr, "--allow-unsigned") {
		t.Errorf("unsigned upload by default: exit %d, want 2 naming --allow-unsigned:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if st := keyState(t, emu, b.KeyId); st != "PendingImport" {
		t.Errorf("a refused upload changed the KMS key: %s", st)
	}
	rec := filepath.Join(dir, "r.jsonl")
	r = kmsbridge(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", wrapped, "--no-expiry", "--allow-unsigned", "--record", rec)
	if !recordHas(t, rec, `"Command":"upload"`, `"AllowUnsigned":"true"`) {
		t.Error("the record does not carry --allow-unsigned")
	}
	if r.Code != 0 || !strings.Contains(r.Stdout, "unsigned, not checked") {
		t.Errorf("unsigned upload: exit %d, want 0 saying 'unsigned, not checked':\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestWrappedBlobSwapIsRefused: two HSM keys wrapped from one bundle, each
// signed by the audit key. A's wrapped file carrying B's blob (digest
// fixed up) with A's signature, and B's file with A's signature, are
// refused (exit 5) before KMS is touched; so is a signed file whose .sig
// was removed, even with --allow-unsigned. A bundle made with
// prepare --audit-public-key makes wrap refuse to run unsigned, and lets
// upload --bundle check the signature without the PEM.
func TestWrappedBlobSwapIsRefused(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	pub := filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	bundle := filepath.Join(dir, "b.json")
	b := prepareHMACBundle(t, emu, bundle, "--audit-public-key", pub)
	if b.AuditPublicKeySha256 == "" {
		t.Fatal("prepare --audit-public-key did not name the key in the bundle")
	}
	wrap := func(label, out string, extra ...string) run {
		return kmsbridge(t, tok, append([]string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
			"--key-label", label, "--generate", "--out", out}, extra...)...)
	}
	if r := wrap("unsigned", filepath.Join(dir, "u.json")); r.Code != 2 || !strings.Contains(r.Stderr, "--audit-key") || tokenHasLabel(t, tok, "unsigned") {
		t.Fatalf("wrap without the audit key the bundle names: exit %d, want 2 before any key is generated\n%s", r.Code, r.Stderr)
	}
	wa, wb := filepath.Join(dir, "a.json"), filepath.Join(dir, "b-wrapped.json")
	for label, out := range map[string]string{"key-a": wa, "key-b": wb} {
		if r := wrap(label, out, "--audit-key", "audit", "--record", filepath.Join(dir, "r.jsonl")); r.Code != 0 {
			t.Fatalf("wrap %s: %s", label, r.Stderr)
		}
	}
	upload := func(wrapped string, extra ...string) run {
		return kmsbridge(t, nil, append([]string{"upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", wrapped, "--no-expiry"}, extra...)...)
	}

	// A's file with B's blob, and A's signature beside it.
	var a, bw map[string]any
	readJSON(t, wa, &a)
	readJSON(t, wb, &bw)
	a["EncryptedKeyMaterial"], a["EncryptedKeyMaterialSha256"] = bw["EncryptedKeyMaterial"], bw["EncryptedKeyMaterialSha256"]
	swapped := filepath.Join(dir, "swapped.json")
	raw, _ := json.Marshal(a)
	os.WriteFile(swapped, raw, 0o600)
	copyFile(t, wa+".sig", swapped+".sig")
	for name, r := range map[string]run{
		"a's file with b's blob":          upload(swapped, "--audit-public-key", pub),
		"a's file with b's blob, bundle":  upload(swapped, "--bundle", bundle),
		"b's file with a's signature":     upload(wb, "--audit-public-key", pub, "--signature", wa+".sig"),
		"signature removed":               upload(copyTo(t, wa, filepath.Join(dir, "nosig.json")), "--bundle", bundle, "--allow-unsigned"),
		"signature removed, no bundle":    upload(copyTo(t, wa, filepath.Join(dir, "nosig2.json")), "--allow-unsigned"),
		"unsigned file, bundle names key": upload(copyTo(t, wa, filepath.Join(dir, "nosig3.json")), "--bundle", bundle),
	} {
		if r.Code != 5 {
			t.Errorf("%s: exit %d, want 5\n%s", name, r.Code, r.Stderr)
		}
	}
	if st := keyState(t, emu, b.KeyId); st != "PendingImport" {
		t.Fatalf("a refused upload changed the KMS key: %s", st)
	}
	// The genuine file, checked against the key the bundle names.
	r := upload(wa, "--bundle", bundle)
	if r.Code != 0 || !strings.Contains(r.Stdout, "signature checked") {
		t.Fatalf("genuine upload: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// copyTo copies the file from to to and returns to.
func copyTo(t *testing.T, from, to string) string {
	t.Helper()
	copyFile(t, from, to)
	return to
}
