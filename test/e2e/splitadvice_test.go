package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestWrapAdviceForABundleTheTokenCannotWrap: prepare cannot probe the
// token across the air gap, so its default (RSAES_OAEP_SHA_256) may be one
// SoftHSM2 cannot do. wrap refuses before generating anything, and its
// advice can be followed: a new bundle from prepare with an algorithm the
// token was checked to do, since the bundle fixes the algorithm.
func TestWrapAdviceForABundleTheTokenCannotWrap(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "k.bundle.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048", "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare: exit %d\n%s", r.Code, r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	if b.WrappingAlgorithm != "RSAES_OAEP_SHA_256" {
		t.Fatalf("prepare chose %s; this test needs a default SoftHSM2 cannot wrap with", b.WrappingAlgorithm)
	}
	r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle,
		"--expect-fingerprint", b.PublicKeySha256, "--key-label", "k", "--generate", "--out", filepath.Join(dir, "k.wrapped.json"))
	if r.Code != 2 {
		t.Fatalf("wrap: exit %d, want 2\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{"RSAES_OAEP_SHA_1", "run kmsbridge prepare again", "--wrapping-algorithm", "nothing was changed"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("wrap's advice lacks %q:\n%s", want, r.Stderr)
		}
	}
	if tokenHasLabel(t, tok, "k") {
		t.Error("wrap generated the HSM key before refusing")
	}
	// The advice works: a new bundle with the algorithm it names wraps.
	again := filepath.Join(dir, "k2.bundle.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048", "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--out", again); r.Code != 0 {
		t.Fatalf("prepare again: exit %d\n%s", r.Code, r.Stderr)
	}
	readJSON(t, again, &b)
	if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", again,
		"--expect-fingerprint", b.PublicKeySha256, "--key-label", "k", "--generate", "--out", filepath.Join(dir, "k2.wrapped.json")); r.Code != 0 {
		t.Fatalf("wrap of the new bundle: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestApproveRefusesABundleDualControlCannotUse: RSA-AES wraps under a
// one-use AES key the Security Officer cannot approve, so approving an
// RSA-AES bundle would leave a trusted key in the token for a wrap that can
// never happen. approve refuses it before logging in, with the prepare that
// works, and the token gets no approval.
func TestApproveRefusesABundleDualControlCannotUse(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	bundle := filepath.Join(t.TempDir(), "k.bundle.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048",
		"--wrapping-algorithm", "RSA_AES_KEY_WRAP_SHA_1", "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare: exit %d\n%s", r.Code, r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	r := kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle,
		"--expect-fingerprint", b.PublicKeySha256, "--key-label", "k")
	if r.Code != 2 {
		t.Fatalf("approve: exit %d, want 2\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{"RSA_AES_KEY_WRAP_SHA_1 cannot serve dual control", "run kmsbridge prepare again with --wrapping-algorithm RSAES_OAEP_SHA_256", "nothing was changed"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("approve's refusal lacks %q:\n%s", want, r.Stderr)
		}
	}
	// No approval for k, whatever its expiry: doctor lists every one.
	var doc struct{ OutstandingApprovals []hsm.Approval }
	d := kmsbridge(t, tok, "doctor", "--token-label", tok.Label, "--key-spec", "SYMMETRIC_DEFAULT", "--output", "json")
	if err := json.Unmarshal([]byte(d.Stdout), &doc); err != nil {
		t.Fatalf("doctor --output json: %v\n%s", err, d.Stdout)
	}
	if len(doc.OutstandingApprovals) != 0 {
		t.Errorf("approve left approvals in the token: %+v", doc.OutstandingApprovals)
	}
}
