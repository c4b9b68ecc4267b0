package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestDualControl: a key generated with --wrap-with-trusted is wrapped only
// under a wrapping key the Security Officer approved. Unapproved, wrap is
// refused before any key is generated; approved, the import completes.
func TestDualControl(t *testing.T) {
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "b.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-spec", "HMAC_256",
		"--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare: %s", r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	wrapped := filepath.Join(dir, "w.json")
	wrap := []string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
		"--key-label", "guarded", "--generate", "--wrap-with-trusted", "--out", wrapped}

	r := kmsbridge(t, tok, wrap...)
	if r.Code != 3 || !strings.Contains(r.Stderr, "is not approved") || !strings.Contains(r.Stderr, "kmsbridge approve") {
		t.Fatalf("unapproved wrap: exit %d, want 3 naming approve:\n%s", r.Code, r.Stderr)
	}
	if tokenHasLabel(t, tok, "guarded") {
		t.Fatal("a key was generated although the wrap could not happen")
	}

	// The user's PIN cannot approve: approve logs in as the SO.
	r = kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.PIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256)
	if r.Code != 3 || !strings.Contains(r.Stderr, "CKR_PIN_INCORRECT") {
		t.Fatalf("approve with the user PIN as SO PIN: exit %d\n%s", r.Code, r.Stderr)
	}
	r = kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256)
	if r.Code != 0 || !strings.Contains(r.Stdout, "approved as a trusted wrapping key") {
		t.Fatalf("approve: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	r = kmsbridge(t, tok, wrap...)
	if r.Code != 0 {
		t.Fatalf("approved wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	res := importJSONArgs(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", wrapped, "--bundle", bundle, "--no-expiry")
	if !res.Verification.MaterialConfirmed {
		t.Errorf("dual-control import not confirmed: %+v", res.Verification)
	}

	// A one-command import cannot have its wrapping key approved in time.
	r = kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "guarded", "--no-expiry")
	if r.Code != 2 || !strings.Contains(r.Stderr, "dual control") {
		t.Errorf("import of a dual-control key: exit %d\n%s", r.Code, r.Stderr)
	}
}
