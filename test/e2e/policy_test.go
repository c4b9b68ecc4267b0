package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// makeRawAESKey creates an AES-256 token key with the given policy
// directly through PKCS#11, as another tool might have: the keys
// kmsbridge must refuse or describe honestly.
func makeRawAESKey(t *testing.T, tok *softhsm.Token, label string, sensitive, extractable bool) {
	t.Helper()
	withUserSession(t, tok, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		_, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label)),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, sensitive),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, extractable),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// withUserSession runs fn on a read-write session of tok, logged in as
// the user, straight through PKCS#11.
func withUserSession(t *testing.T, tok *softhsm.Token, fn func(*pkcs11.Ctx, pkcs11.SessionHandle)) {
	t.Helper()
	// In-process token access takes turns with parallel tests and token
	// provisioning (softhsm.Token.InProcess).
	defer useTokenInProcess(tok)()
	p := pkcs11.New(tok.Module)
	if p == nil {
		t.Fatalf("cannot load %s", tok.Module)
	}
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer func() { p.Finalize(); p.Destroy() }()
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		info, err := p.GetTokenInfo(s)
		if err != nil || strings.TrimRight(info.Label, " ") != tok.Label {
			continue
		}
		sh, err := p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseSession(sh)
		if err := p.Login(sh, pkcs11.CKU_USER, tok.PIN); err != nil {
			t.Fatal(err)
		}
		fn(p, sh)
		return
	}
	t.Fatalf("no token labelled %s", tok.Label)
}

// TestKeyPolicyRefusals: an HSM key whose value the token hands out in the
// clear is refused unless --allow-non-sensitive, which the result and the
// record then carry; a non-extractable key is refused for what it is; and
// provenance is reported only as the token states it.
func TestKeyPolicyRefusals(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	makeRawAESKey(t, tok, "clear", false, true)
	makeRawAESKey(t, tok, "stuck", true, false)
	rec := filepath.Join(t.TempDir(), "r.jsonl")
	imp := func(extra ...string) []string {
		return append([]string{"import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048", "--no-expiry", "--record", rec}, extra...)
	}

	r := kmsbridge(t, tok, imp("--key-label", "clear")...)
	if r.Code != 3 || !strings.Contains(r.Stderr, "CKA_SENSITIVE=false") || !strings.Contains(r.Stderr, "--allow-non-sensitive") {
		t.Errorf("non-sensitive key: exit %d, want 3 naming CKA_SENSITIVE and the override:\n%s", r.Code, r.Stderr)
	}
	r = kmsbridge(t, tok, imp("--key-label", "stuck")...)
	if r.Code != 3 || !strings.Contains(r.Stderr, "CKA_EXTRACTABLE=false") || strings.Contains(r.Stderr, "not the material of any KMS key spec") {
		t.Errorf("non-extractable key: exit %d, want 3 saying CKA_EXTRACTABLE=false:\n%s", r.Code, r.Stderr)
	}
	if n := emu.keyCount(t); n != 0 {
		t.Fatalf("refused imports left %d KMS keys", n)
	}

	// A key once readable in the clear is no master copy kmsbridge can
	// vouch for: --allow-non-sensitive accepts the policy, --adopt takes
	// the key over on purpose (recorded with its provenance).
	r = kmsbridge(t, tok, imp("--key-label", "clear", "--allow-non-sensitive")...)
	if r.Code != 3 || !strings.Contains(r.Stderr, "CKA_ALWAYS_SENSITIVE=false") || !strings.Contains(r.Stderr, "--adopt") {
		t.Errorf("key once in the clear without --adopt: exit %d, want 3 naming its provenance and --adopt:\n%s", r.Code, r.Stderr)
	}
	res := importJSON(t, tok, imp("--key-label", "clear", "--allow-non-sensitive", "--adopt")[1:]...)
	if !res.HSM.Adopted {
		t.Error("the result does not say the key was adopted")
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "CKA_SENSITIVE=false") {
		t.Errorf("the override is not in the result's warnings: %q", res.Warnings)
	}
	if !strings.Contains(res.HSM.Provenance, "CKA_ALWAYS_SENSITIVE=false") || strings.Contains(res.HSM.Provenance, "never in the clear") {
		t.Errorf("provenance of a key once in the clear: %q", res.HSM.Provenance)
	}
	if !recordHas(t, rec, `"AllowNonSensitive":"true"`) {
		t.Error("the record does not carry --allow-non-sensitive")
	}

	gen := importJSON(t, tok, imp("--key-label", "made-here", "--generate")[1:]...)
	if !strings.Contains(gen.HSM.Provenance, "generated in this HSM and never in the clear") {
		t.Errorf("provenance of a key kmsbridge generated: %q", gen.HSM.Provenance)
	}
}
