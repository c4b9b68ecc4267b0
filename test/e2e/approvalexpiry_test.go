package e2e

import (
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// approveInProcess stores an approval of the bundle's wrapping key for
// keyLabel as the SO would, with the given CKA_LABEL: to make one that
// has expired (or one of an earlier version) without waiting.
func approveInProcess(t *testing.T, tok *softhsm.Token, b kmsimport.Bundle, label string) {
	t.Helper()
	defer useTokenInProcess(tok)()
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, err := m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.LoginSOPIN([]byte(tok.SOPIN)); err != nil {
		t.Fatal(err)
	}
	pub, err := kmsimport.ParseWrappingPublicKey(b.PublicKey, kmsimport.WrappingKeySpec(b.WrappingKeySpec))
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := hex.DecodeString(b.PublicKeySha256)
	if _, err := tk.ApproveWrappingKey(pub, label, fp[:16]); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredApprovalIsRefusedAndReplaced: approvals expire. An expired
// approval (or one of an earlier kmsbridge, which named no expiry) is
// refused by wrap before any key is generated, with the approve command
// to run again; doctor and status show it as unusable; approving again
// replaces it with one that lasts --valid-for (bounded), shown by doctor
// with its expiry, and the wrap then goes through.
func TestExpiredApprovalIsRefusedAndReplaced(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "b.json")
	b := prepareHMACBundle(t, emu, bundle)
	wrap := []string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
		"--key-label", "guarded", "--generate", "--wrap-with-trusted", "--out", filepath.Join(dir, "w.json")}
	approve := []string{"KMSBRIDGE_SO_PIN=" + tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle,
		"--expect-fingerprint", b.PublicKeySha256, "--key-label", "guarded"}

	for _, c := range []struct{ name, label, want string }{
		{"expired", hsm.ApprovalLabel("guarded", time.Now().Add(-time.Minute)), "expired at"},
		{"of an earlier version, with no expiry", "kmsbridge approval for guarded", "names no expiry"},
	} {
		approveInProcess(t, tok, b, c.label)
		if r := kmsbridge(t, tok, "doctor", "--token-label", tok.Label, "--key-spec", "SYMMETRIC_DEFAULT"); !strings.Contains(r.Stdout, "UNUSABLE: it "+strings.Split(c.want, " ")[0]) {
			t.Errorf("%s: doctor does not show the approval as unusable:\n%s", c.name, r.Stdout)
		}
		if r := kmsbridge(t, tok, "status", "--no-kms", "--token-label", tok.Label); !strings.Contains(r.Stdout, "UNUSABLE") {
			t.Errorf("%s: status does not show the approval as unusable:\n%s", c.name, r.Stdout)
		}
		r := kmsbridge(t, tok, wrap...)
		if r.Code != 3 || !strings.Contains(r.Stderr, c.want) || !strings.Contains(r.Stderr, "kmsbridge approve --bundle FILE --key-label guarded again") {
			t.Fatalf("%s: wrap exit %d, want 3 saying %q and naming approve:\n%s", c.name, r.Code, c.want, r.Stderr)
		}
		if tokenHasLabel(t, tok, "guarded") || fileExists(filepath.Join(dir, "w.json")) {
			t.Fatalf("%s: the refused wrap generated a key or wrote a file", c.name)
		}
		// Approving again replaces it.
		r = kmsbridge(t, tok, append(approve, "--valid-for", "2h")...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "approved as a trusted wrapping key") || !strings.Contains(r.Stdout, "until ") {
			t.Fatalf("%s: approve again: exit %d\n%s%s", c.name, r.Code, r.Stdout, r.Stderr)
		}
		out := kmsbridge(t, tok, "doctor", "--token-label", tok.Label, "--key-spec", "SYMMETRIC_DEFAULT").Stdout
		if strings.Contains(out, "UNUSABLE") || !strings.Contains(out, `HSM key "guarded", until `) {
			t.Errorf("%s: after approving again doctor shows:\n%s", c.name, out)
		}
		if r := kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--revoke"); r.Code != 0 {
			t.Fatalf("revoke: %s", r.Stderr)
		}
	}

	// The validity is bounded.
	if r := kmsbridge(t, tok, append(approve, "--valid-for", "200h")...); r.Code != 2 || !strings.Contains(r.Stderr, "--valid-for") || !strings.Contains(r.Stderr, "168h") {
		t.Errorf("approve --valid-for 200h: exit %d, want 2 naming the range:\n%s", r.Code, r.Stderr)
	}
	// A fresh approval lets the wrap through.
	if r := kmsbridge(t, tok, approve...); r.Code != 0 {
		t.Fatalf("approve: %s", r.Stderr)
	}
	if r := kmsbridge(t, tok, wrap...); r.Code != 0 {
		t.Fatalf("wrap under a fresh approval: exit %d\n%s", r.Code, r.Stderr)
	}
}
