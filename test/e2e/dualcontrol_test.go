package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// prepareHMACBundle runs prepare for an HMAC_256 key against emu (with
// extra arguments), writing the bundle to path, and returns the bundle: the
// start of the dual-control and approval tests.
func prepareHMACBundle(t *testing.T, emu *emulator, path string, extra ...string) kmsimport.Bundle {
	t.Helper()
	return preparedBundle(t, path, append([]string{"prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-spec", "HMAC_256",
		"--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", path}, extra...)...)
}

// preparedBundle runs kmsbridge with args (a prepare; leading K=V
// arguments are environment), which must succeed and write a bundle at
// path, and returns that bundle.
func preparedBundle(t *testing.T, path string, args ...string) kmsimport.Bundle {
	t.Helper()
	if r := kmsbridge(t, nil, args...); r.Code != 0 {
		t.Fatalf("prepare: exit %d\n%s", r.Code, r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, path, &b)
	return b
}

// TestDualControl: a key generated with --wrap-with-trusted is wrapped only
// under a wrapping key the Security Officer approved. Unapproved, wrap is
// refused before any key is generated; approved, the import completes.
func TestDualControl(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "b.json")
	b := prepareHMACBundle(t, emu, bundle)
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
	r = kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.PIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--key-label", "guarded")
	if r.Code != 3 || !strings.Contains(r.Stderr, "CKR_PIN_INCORRECT") {
		t.Fatalf("approve with the user PIN as SO PIN: exit %d\n%s", r.Code, r.Stderr)
	}
	r = kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--key-label", "guarded")
	if r.Code != 0 || !strings.Contains(r.Stdout, "approved as a trusted wrapping key") {
		t.Fatalf("approve: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	r = kmsbridge(t, tok, wrap...)
	if r.Code != 0 {
		t.Fatalf("approved wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	res := importJSONArgs(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", wrapped, "--bundle", bundle, "--no-expiry", "--allow-unsigned")
	if !res.Verification.MaterialConfirmed {
		t.Errorf("dual-control import not confirmed: %+v", res.Verification)
	}

	// A one-command import cannot have its wrapping key approved in time.
	r = kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "guarded", "--no-expiry")
	if r.Code != 2 || !strings.Contains(r.Stderr, "dual control") {
		t.Errorf("import of a dual-control key: exit %d\n%s", r.Code, r.Stderr)
	}
}

// TestApprovalCoversOneWrapOfOneKey: an approval is for the wrap of the
// one HSM key it names; doctor and status list it while it is
// outstanding; the wrap ends it, so a second wrap under it is refused; a
// wrap killed after writing its file and before ending the approval is
// finished by the same command again, wrapping nothing twice; and
// approve --revoke ends an unused approval.
func TestApprovalCoversOneWrapOfOneKey(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	prepare := func(name string) (string, kmsimport.Bundle) {
		p := filepath.Join(dir, name)
		return p, prepareHMACBundle(t, emu, p)
	}
	approve := func(bundle string, b kmsimport.Bundle, extra ...string) run {
		return kmsbridge(t, tok, append([]string{"KMSBRIDGE_SO_PIN=" + tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256}, extra...)...)
	}
	wrap := func(bundle string, b kmsimport.Bundle, label, out string, env ...string) run {
		return kmsbridge(t, tok, append(env, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
			"--key-label", label, "--generate", "--wrap-with-trusted", "--out", out, "--record", filepath.Join(dir, "r.jsonl"))...)
	}
	outstanding := func() string {
		r := kmsbridge(t, tok, "doctor", "--token-label", tok.Label, "--key-spec", "SYMMETRIC_DEFAULT")
		if r.Code != 0 {
			t.Fatalf("doctor: exit %d\n%s", r.Code, r.Stderr)
		}
		return r.Stdout
	}

	bundle, b := prepare("b.json")
	if r := approve(bundle, b, "--key-label", "guarded"); r.Code != 0 {
		t.Fatalf("approve: %s", r.Stderr)
	}
	if out := outstanding(); !strings.Contains(out, "Outstanding dual-control approvals") || !strings.Contains(out, `HSM key "guarded"`) {
		t.Errorf("doctor does not list the outstanding approval:\n%s", out)
	}
	if r := kmsbridge(t, tok, "status", "--no-kms", "--token-label", tok.Label); !strings.Contains(r.Stdout, `HSM key "guarded"`) {
		t.Errorf("status does not list the outstanding approval: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// Another key cannot use it.
	r := wrap(bundle, b, "intruder", filepath.Join(dir, "i.json"))
	if r.Code != 3 || !strings.Contains(r.Stderr, `for the wrap of HSM key "guarded", not of "intruder"`) || tokenHasLabel(t, tok, "intruder") {
		t.Fatalf("wrap of another key under the approval: exit %d, want 3 before any key is generated\n%s", r.Code, r.Stderr)
	}
	// The wrap of the named key, killed after its file is written and
	// before the approval is ended.
	out := filepath.Join(dir, "w.json")
	r = wrap(bundle, b, "guarded", out, killAt("before:end-approval"), killGuard)
	if r.Code == 0 || !fileExists(out) {
		t.Fatalf("the killed wrap: exit %d, file written %v\n%s", r.Code, fileExists(out), r.Stderr)
	}
	if !strings.Contains(outstanding(), `HSM key "guarded"`) {
		t.Fatal("the approval is gone although the wrap was killed before ending it")
	}
	before, _ := os.ReadFile(out)
	r = wrap(bundle, b, "guarded", out)
	if r.Code != 0 || !strings.Contains(r.Stdout, "already wrapped") {
		t.Fatalf("re-run after the crash: exit %d, want 0 saying it was already wrapped\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Error("the re-run rewrote the wrapped file")
	}
	if strings.Contains(outstanding(), "Outstanding dual-control approvals") {
		t.Error("the approval is still outstanding after the wrap finished")
	}
	if n := countRecord(t, filepath.Join(dir, "r.jsonl"), `"Step":"end-approval"`, `"ApprovalEnded":"true"`); n != 1 {
		t.Errorf("%d end-approval entries, want 1", n)
	}
	// The approval is spent: the same key cannot be wrapped under it again.
	if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
		"--key-label", "guarded", "--out", filepath.Join(dir, "again.json")); r.Code != 3 || !strings.Contains(r.Stderr, "is not approved") {
		t.Errorf("second wrap under a spent approval: exit %d, want 3\n%s", r.Code, r.Stderr)
	}
	res := importJSONArgs(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", out, "--bundle", bundle, "--no-expiry", "--allow-unsigned")
	if !res.Verification.MaterialConfirmed {
		t.Errorf("upload not confirmed: %+v", res.Verification)
	}

	// An unused approval is revoked by the SO.
	bundle2, b2 := prepare("b2.json")
	if r := approve(bundle2, b2, "--key-label", "later"); r.Code != 0 {
		t.Fatalf("approve: %s", r.Stderr)
	}
	if r := approve(bundle2, b2, "--key-label", "someone-else"); r.Code != 2 || !strings.Contains(r.Stderr, "--revoke") {
		t.Errorf("re-approving for another key: exit %d, want 2 naming --revoke\n%s", r.Code, r.Stderr)
	}
	if r := kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle2, "--revoke"); r.Code != 0 || !strings.Contains(r.Stdout, "is ended") {
		t.Fatalf("approve --revoke: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(outstanding(), "Outstanding dual-control approvals") {
		t.Error("a revoked approval is still listed")
	}
}

// TestWrapWithTrustedRefusesAnUnguardedKey: --wrap-with-trusted on an
// existing key without CKA_WRAP_WITH_TRUSTED is refused before the wrap,
// since the token would wrap it under anything.
func TestWrapWithTrustedRefusesAnUnguardedKey(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "b.json")
	b := prepareHMACBundle(t, emu, bundle)
	// An unguarded key, made by an earlier wrap without dual control.
	if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
		"--key-label", "plain", "--generate", "--out", filepath.Join(dir, "first.json")); r.Code != 0 {
		t.Fatalf("wrap: %s", r.Stderr)
	}
	if r := kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--key-label", "plain"); r.Code != 0 {
		t.Fatalf("approve: %s", r.Stderr)
	}
	out := filepath.Join(dir, "w.json")
	r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
		"--key-label", "plain", "--wrap-with-trusted", "--out", out)
	if r.Code != 2 || !strings.Contains(r.Stderr, "CKA_WRAP_WITH_TRUSTED=false") || fileExists(out) {
		t.Errorf("--wrap-with-trusted on an unguarded key: exit %d, want 2 and no file\n%s", r.Code, r.Stderr)
	}
}

// TestApproveSignsItsRecordEntryWithTheAuditKey: approve --audit-key
// signs its entries (the user logs in after the SO to sign), so a whole
// dual-control ceremony with an audit key verifies: every entry of a
// command that held the token signed, the online upload accepted unsigned
// only with --allow-unsigned and the paper head.
func TestApproveSignsItsRecordEntryWithTheAuditKey(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "r.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	bundle := filepath.Join(dir, "b.json")
	b := prepareHMACBundle(t, emu, bundle, "--audit-public-key", pub)
	// A wrong user PIN is found before the SO changes anything.
	r := kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "KMSBRIDGE_PIN=0000", "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle,
		"--expect-fingerprint", b.PublicKeySha256, "--key-label", "guarded", "--audit-key", "audit", "--record", rec)
	if r.Code != 3 || !strings.Contains(r.Stderr, "CKR_PIN_INCORRECT") || strings.Contains(doctorOut(t, tok), "Outstanding dual-control approvals") {
		t.Fatalf("approve with a wrong user PIN: exit %d, want 3 and no approval\n%s", r.Code, r.Stderr)
	}
	r = kmsbridge(t, tok, "KMSBRIDGE_SO_PIN="+tok.SOPIN, "approve", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle,
		"--expect-fingerprint", b.PublicKeySha256, "--key-label", "guarded", "--audit-key", "audit", "--record", rec)
	if r.Code != 0 {
		t.Fatalf("approve --audit-key: exit %d\n%s", r.Code, r.Stderr)
	}
	if !recordHas(t, rec, `"Command":"approve"`, `"Step":"approve-wrapping-key"`, `"Signature":{`) {
		t.Fatal("the approve entry is not signed")
	}
	out := filepath.Join(dir, "w.json")
	if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--key-label", "guarded",
		"--generate", "--wrap-with-trusted", "--out", out, "--audit-key", "audit", "--record", rec); r.Code != 0 {
		t.Fatalf("wrap: %s", r.Stderr)
	}
	if r := kmsbridge(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", out, "--bundle", bundle, "--no-expiry", "--record", rec); r.Code != 0 {
		t.Fatalf("upload: %s", r.Stderr)
	}
	head := ""
	if r := kmsbridge(t, nil, "record", "verify", "--chain-only", rec); r.Code == 0 {
		head = lastField(r.Stdout, "head ")
	}
	r = kmsbridge(t, nil, "record", "verify", "--public-key", pub, "--allow-unsigned", "--expect-head", head, rec)
	if r.Code != 0 || !strings.Contains(r.Stdout, "the record verifies") {
		t.Errorf("the dual-control ceremony's record: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

func doctorOut(t *testing.T, tok *softhsm.Token) string {
	t.Helper()
	r := kmsbridge(t, tok, "doctor", "--token-label", tok.Label, "--key-spec", "SYMMETRIC_DEFAULT")
	if r.Code != 0 {
		t.Fatalf("doctor: exit %d\n%s", r.Code, r.Stderr)
	}
	return r.Stdout
}
