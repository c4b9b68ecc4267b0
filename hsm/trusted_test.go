package hsm_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// TestDualControlOnSoftHSM shows SoftHSM2 enforcing CKA_WRAP_WITH_TRUSTED:
// the key wraps under nothing until the SO approves the wrapping key, and
// kmsbridge says so clearly before the token has to refuse.
func TestDualControlOnSoftHSM(t *testing.T) {
	tok := softhsm.NewTestToken(t, "dual")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	open := func() *hsm.Token {
		tk, err := m.OpenToken(hsm.TokenSelector{Label: "dual"})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	user := open()
	if err := user.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	k, err := user.Generate("guarded", hsm.AES256(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !k.WrapWithTrusted {
		t.Fatal("generated key lacks CKA_WRAP_WITH_TRUSTED")
	}
	priv := kmsWrappingKey(t)
	if _, err := user.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA1); !errors.Is(err, hsm.ErrNotApproved) {
		t.Fatalf("unapproved wrap: got %v, want ErrNotApproved", err)
	}
	// Without kmsbridge's check, the token itself refuses: wrap the guarded
	// key under an untrusted session copy.
	unguarded := *k
	unguarded.WrapWithTrusted = false
	_, err = user.WrapOAEP(&unguarded, &priv.PublicKey, hsm.OAEPSHA1)
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_NOT_WRAPPABLE)) {
		t.Fatalf("SoftHSM2 must refuse an untrusted wrap with CKR_KEY_NOT_WRAPPABLE: %v", err)
	}
	user.Close()

	so := open()
	if err := so.LoginSO(tok.SOPIN); err != nil {
		t.Fatal(err)
	}
	created, err := so.ApproveWrappingKey(&priv.PublicKey, "approved", []byte{1})
	if err != nil || !created {
		t.Fatalf("approve: %v created=%v", err, created)
	}
	if again, err := so.ApproveWrappingKey(&priv.PublicKey, "approved", []byte{1}); err != nil || again {
		t.Fatalf("a second approval must find the first: %v %v", err, again)
	}
	so.Close()

	user = open()
	defer user.Close()
	if err := user.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	if ok, err := user.IsApproved(&priv.PublicKey); err != nil || !ok {
		t.Fatalf("user session does not see the approval: %v %v", ok, err)
	}
	// Handles of private objects do not survive a logout: find it again.
	k, err = user.FindKey(hsm.KeySelector{ID: k.ID}, hsm.AES256())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := user.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA1); err != nil {
		t.Fatalf("approved wrap: %v", err)
	}
}

func TestUserCannotApprove(t *testing.T) {
	tok := softhsm.NewTestToken(t, "noso")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, err := m.OpenToken(hsm.TokenSelector{Label: "noso"})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	priv := kmsWrappingKey(t)
	if _, err := tk.ApproveWrappingKey(&priv.PublicKey, "x", []byte{1}); err == nil {
		t.Fatal("a normal user set CKA_TRUSTED; only the SO may")
	}
}

// TestApprovalNamesItsKeyIsListedAndEndsOnSoftHSM: an approval carries the
// label of the one key it is for, is listed while outstanding, and the
// user's EndApproval destroys it, after which the guarded key wraps under
// nothing again.
func TestApprovalNamesItsKeyIsListedAndEndsOnSoftHSM(t *testing.T) {
	tok := softhsm.NewTestToken(t, "ends")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	open := func() *hsm.Token {
		tk, err := m.OpenToken(hsm.TokenSelector{Label: "ends"})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	priv := kmsWrappingKey(t)
	so := open()
	if err := so.LoginSOPIN([]byte(tok.SOPIN)); err != nil {
		t.Fatal(err)
	}
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	// A key label with " for " in it still reads back whole.
	if _, err := so.ApproveWrappingKey(&priv.PublicKey, hsm.ApprovalLabel("payments for 2026", expires), []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	so.Close()

	user := open()
	defer user.Close()
	if err := user.LoginPIN([]byte(tok.PIN)); err != nil {
		t.Fatal(err)
	}
	as, err := user.Approvals()
	if err != nil || len(as) != 1 || as[0].KeyLabel != "payments for 2026" || as[0].ModulusBits != priv.N.BitLen() || !as[0].Expires.Equal(expires) {
		t.Fatalf("Approvals = %+v, %v", as, err)
	}
	if why := as[0].Usable(expires.Add(-time.Second)); why != "" {
		t.Errorf("Usable before expiry: %q", why)
	}
	if why := as[0].Usable(expires); !strings.Contains(why, "expired at 2030-01-02T03:04:05Z") {
		t.Errorf("Usable at expiry: %q, want expired", why)
	}
	if why := (hsm.Approval{KeyLabel: "old"}).Usable(expires); !strings.Contains(why, "no expiry") {
		t.Errorf("Usable of an approval without expiry: %q", why)
	}
	k, err := user.Generate("guarded", hsm.AES256(), true)
	if err != nil {
		t.Fatal(err)
	}
	if ended, err := user.EndApproval(&priv.PublicKey); err != nil || !ended {
		t.Fatalf("EndApproval: %v %v", ended, err)
	}
	if ended, err := user.EndApproval(&priv.PublicKey); err != nil || ended {
		t.Fatalf("a second EndApproval must find none: %v %v", ended, err)
	}
	if as, err := user.Approvals(); err != nil || len(as) != 0 {
		t.Fatalf("after EndApproval: %+v, %v", as, err)
	}
	if _, err := user.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA1); !errors.Is(err, hsm.ErrNotApproved) {
		t.Fatalf("wrap after the approval ended: %v, want ErrNotApproved", err)
	}
}
