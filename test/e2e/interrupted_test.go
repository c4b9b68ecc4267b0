package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// sigintAt makes the command send itself SIGINT at its step boundary
// "before:STEP" (kmsimport.CrashPoint).
func sigintAt(step string) []string {
	return []string{killAt("sigint:before:" + step), killGuard}
}

// approve stopped by SIGINT before it stores the trusted key: exit 4, an
// "interrupted" entry in the record, nothing in the token, and the same
// approve again finishes.
func TestInterruptedApproveIsRecorded(t *testing.T) {
	t.Parallel()
	e := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	bundle, rec := filepath.Join(dir, "b.json"), filepath.Join(dir, "r.jsonl")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--key-spec", "SYMMETRIC_DEFAULT", "--wrapping-algorithm", "RSAES_OAEP_SHA_1",
		"--wrapping-key-spec", "RSA_2048", "--state-dir", dir, "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare: %s", r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	args := []string{"KMSBRIDGE_SO_PIN=" + tok.SOPIN, "approve", "--allow-endpoint", e.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--key-label", "k", "--record", rec}
	r := kmsbridge(t, tok, append(sigintAt("approve-wrapping-key"), args...)...)
	if r.Code != 4 || !strings.Contains(r.Stderr, "interrupted") || !strings.Contains(r.Stderr, "run the same kmsbridge approve again") {
		t.Fatalf("approve interrupted: exit %d, want 4 saying how to finish\n%s", r.Code, r.Stderr)
	}
	if !recordHas(t, rec, `"Command":"approve"`, `"Step":"interrupted"`, `"BeforeStep":"approve-wrapping-key"`) {
		t.Error("the record has no interrupted entry for approve")
	}
	if recordHas(t, rec, `"Step":"approve-wrapping-key"`) {
		t.Error("the record says the approval happened although the signal came first")
	}
	r = kmsbridge(t, tok, args...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "approved as a trusted wrapping key") {
		t.Fatalf("the same approve again: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if vr := kmsbridge(t, nil, "record", "verify", "--chain-only", rec); vr.Code != 0 {
		t.Errorf("record verify: exit %d\n%s%s", vr.Code, vr.Stdout, vr.Stderr)
	}
}

// audit-key create stopped by SIGINT before it makes the key: exit 4, an
// "interrupted" entry, no key, no PEM, and the same command again makes it.
func TestInterruptedAuditKeyCreateIsRecorded(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	dir := t.TempDir()
	pem, rec := filepath.Join(dir, "audit.pem"), filepath.Join(dir, "r.jsonl")
	args := []string{"audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pem, "--record", rec}
	r := kmsbridge(t, tok, append(sigintAt("audit-key-create"), args...)...)
	if r.Code != 4 || !strings.Contains(r.Stderr, "interrupted") || !strings.Contains(r.Stderr, "no audit key was made") {
		t.Fatalf("audit-key create interrupted: exit %d, want 4\n%s", r.Code, r.Stderr)
	}
	if !recordHas(t, rec, `"Step":"interrupted"`, `"BeforeStep":"audit-key-create"`) {
		t.Error("the record has no interrupted entry for audit-key create")
	}
	if hsmHasLabel(t, tok, "audit") || fileExists(pem) {
		t.Fatal("an audit key or its PEM exists although the signal came before the key was made")
	}
	if r := kmsbridge(t, tok, args...); r.Code != 0 {
		t.Fatalf("the same audit-key create again: exit %d\n%s", r.Code, r.Stderr)
	}
	if !hsmHasLabel(t, tok, "audit") || !fileExists(pem) {
		t.Error("the re-run made no audit key")
	}
}

// A manual rotation (an HMAC key: a new KMS key, the alias moved) whose
// CreateKey answer is lost: the call took effect, kmsbridge never learnt
// the new key's id. Re-running the same rotate takes that key up (by its
// attempt tag and link tags) instead of making a second one.
func TestRotateManualLostCreateKeyAnswer(t *testing.T) {
	t.Parallel()
	for _, kill := range []bool{false, true} {
		name := "answer lost"
		if kill {
			name = "answer lost, then killed before the outcome"
		}
		t.Run(name, func(t *testing.T) {
			e := startEmulator(t)
			sc := home(e)
			tok := newToken(t)
			dir := t.TempDir()
			common := append(lifeArgs(e, tok), "--state-dir", dir, "--kms-timeout", noHangKMSTimeout)
			mac := importJSON(t, tok, append(common, "--key-label", "mac", "--generate", "--key-spec", "HMAC_256", "--alias", "alias/mac", "--no-expiry")...)
			sc.inject(t, "CreateKey", "LostResponse", 1)
			args := append([]string{"rotate", "--kms-key-id", "alias/mac", "--no-expiry", "--record", filepath.Join(dir, "r.jsonl")}, common...)
			first := args
			if kill {
				first = append([]string{killAt("called:CreateKey"), killGuard}, args...)
			}
			r := kmsbridge(t, tok, first...)
			if kill && r.Code != -1 {
				t.Fatalf("the crash point did not fire: exit %d\n%s", r.Code, r.Stderr)
			}
			saidNothingChanged(t, r, sc, nil)
			if r.Code != 0 {
				if again := kmsbridge(t, tok, args...); again.Code != 0 {
					t.Fatalf("re-running the same rotate: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, r.Stderr, again.Stderr)
				}
			}
			wantExactlyOnce(t, sc, tok, dir, filepath.Join(dir, "r.jsonl"), "mac", "mac-r2")
			if n := len(allKeys(t, sc)); n != 2 {
				t.Errorf("%d KMS keys, want 2 (the old key and its one successor)", n)
			}
			target, err := awskms.AliasTarget(context.Background(), e.KMS, "alias/mac")
			if err != nil || target == mac.KeyId {
				t.Errorf("alias/mac -> %s (%v): not moved to the successor", target, err)
			}
		})
	}
}

// An on-demand rotation whose RotateKeyOnDemand answer is lost: re-running
// the same rotate finishes it, rotating once (one new material, CURRENT)
// and generating no second HSM key.
func TestRotateLostRotateKeyOnDemandAnswer(t *testing.T) {
	t.Parallel()
	for _, kill := range []bool{false, true} {
		name := "answer lost"
		if kill {
			name = "answer lost, then killed before the outcome"
		}
		t.Run(name, func(t *testing.T) {
			e := startEmulator(t, "--rotation-delay", "1s")
			sc := home(e)
			tok := newToken(t)
			dir := t.TempDir()
			common := append(lifeArgs(e, tok), "--state-dir", dir, "--kms-timeout", noHangKMSTimeout)
			data := importJSON(t, tok, append(common, "--key-label", "data", "--generate", "--alias", "alias/data", "--valid-to", validTo(10*24*time.Hour))...)
			sc.inject(t, "RotateKeyOnDemand", "LostResponse", 1)
			rec := filepath.Join(dir, "r.jsonl")
			args := append([]string{"rotate", "--kms-key-id", data.KeyId, "--no-expiry", "--record", rec}, common...)
			first := args
			if kill {
				first = append([]string{killAt("called:RotateKeyOnDemand"), killGuard}, args...)
			}
			r := kmsbridge(t, tok, first...)
			if kill && r.Code != -1 {
				t.Fatalf("the crash point did not fire: exit %d\n%s", r.Code, r.Stderr)
			}
			saidNothingChanged(t, r, sc, nil)
			if r.Code != 0 {
				if again := kmsbridge(t, tok, args...); again.Code != 0 {
					t.Fatalf("re-running the same rotate: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, r.Stderr, again.Stderr)
				}
			}
			ms := materials(t, e, data.KeyId)
			current := 0
			for _, m := range ms {
				if m.KeyMaterialState == types.KeyMaterialStateCurrent {
					current++
				}
			}
			if len(ms) != 2 || current != 1 {
				t.Errorf("%d materials (%d CURRENT), want 2 with 1 CURRENT: %+v", len(ms), current, ms)
			}
			if hsmHasLabel(t, tok, "data-r3") || !hsmHasLabel(t, tok, "data-r2") {
				t.Error("the HSM holds not exactly one new generation (data-r2)")
			}
			if n := len(allKeys(t, sc)); n != 1 {
				t.Errorf("%d KMS keys, want 1", n)
			}
			if vr := kmsbridge(t, nil, "record", "verify", "--chain-only", rec); vr.Code != 0 {
				t.Errorf("record verify: exit %d\n%s%s", vr.Code, vr.Stdout, vr.Stderr)
			}
		})
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
