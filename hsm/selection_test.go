package hsm_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// dupToken is a SoftHSM2 token where the label "dup" names an AES key and
// an RSA key pair (GenerateAfterSearch does not look for the label, as a
// key another tool made would not), and "solo" names one AES key.
func dupToken(t *testing.T) (tk *hsm.Token, secret, private *hsm.Key) {
	t.Helper()
	tk = openSoftHSM(t)
	var err error
	if secret, err = tk.GenerateAfterSearch("dup", hsm.AES256(), false); err != nil {
		t.Fatal(err)
	}
	if private, err = tk.GenerateAfterSearch("dup", hsm.RSAKey(2048), false); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.GenerateAfterSearch("solo", hsm.AES256(), false); err != nil {
		t.Fatal(err)
	}
	return tk, secret, private
}

// TestSelectionIsExact: every attribute a selection gives must match, a
// label naming a secret and a private key is ambiguous unless the CKA_ID
// or the type narrows it, and the wrong type is never taken instead.
func TestSelectionIsExact(t *testing.T) {
	tk, secret, private := dupToken(t)
	aes, rsa := hsm.AES256(), hsm.RSAKey(0)

	// Ambiguous: both candidates are listed with their type and CKA_ID.
	for _, p := range []hsm.KeyParams{aes, rsa} {
		_, err := tk.FindKey(hsm.KeySelector{Label: "dup"}, p)
		if !errors.Is(err, hsm.ErrKeyAmbiguous) {
			t.Fatalf("label dup for %s: %v, want ErrKeyAmbiguous", p, err)
		}
		for _, want := range []string{"type=secret-key", "type=private", "CKA_ID " + secret.IDHex(), "CKA_ID " + private.IDHex()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ambiguity error does not list %q: %v", want, err)
			}
		}
	}
	_, _, err := tk.FindByLabel("dup", aes)
	if !errors.Is(err, hsm.ErrKeyAmbiguous) {
		t.Errorf("FindByLabel dup: %v, want ErrKeyAmbiguous", err)
	}

	// Narrowed by type or by CKA_ID: exactly that key.
	k, err := tk.FindKey(hsm.KeySelector{Label: "dup", Type: "private"}, rsa)
	if err != nil || k.IDHex() != private.IDHex() {
		t.Errorf("dup;type=private: %v, %v", k, err)
	}
	k, err = tk.FindKey(hsm.KeySelector{Label: "dup", Type: "secret-key"}, aes)
	if err != nil || k.IDHex() != secret.IDHex() {
		t.Errorf("dup;type=secret-key: %v, %v", k, err)
	}
	k, err = tk.FindKey(hsm.KeySelector{Label: "dup", ID: secret.ID}, aes)
	if err != nil || k.IDHex() != secret.IDHex() {
		t.Errorf("dup;id=secret's: %v, %v", k, err)
	}

	// type=private never yields the secret key, whatever is asked for.
	if k, err := tk.FindKey(hsm.KeySelector{Label: "dup", Type: "private"}, aes); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("dup;type=private for an AES spec: %v, %v: want ErrKeyNotFound", k, err)
	}
	// Every attribute must match: the label and a CKA_ID of another key.
	if k, err := tk.FindKey(hsm.KeySelector{Label: "solo", ID: secret.ID}, aes); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("solo with dup's CKA_ID: %v, %v: want ErrKeyNotFound", k, err)
	}
	// A label naming one key of the other class: not found, saying what it names.
	_, err = tk.FindKey(hsm.KeySelector{Label: "solo"}, rsa)
	if !errors.Is(err, hsm.ErrKeyNotFound) || !strings.Contains(err.Error(), "type=secret-key") {
		t.Errorf("solo for an RSA spec: %v: want ErrKeyNotFound naming the secret key it is", err)
	}
	// The URI path: object=dup;type=private.
	u, err := hsm.ParseURI("pkcs11:token=hsm-test;object=dup;type=private")
	if err != nil {
		t.Fatal(err)
	}
	if k, err := tk.FindKey(u.KeySelector(), aes); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("URI object=dup;type=private with an AES spec picked %v, %v", k, err)
	}
	if k, err := tk.FindKey(u.KeySelector(), rsa); err != nil || k.IDHex() != private.IDHex() {
		t.Errorf("URI object=dup;type=private: %v, %v", k, err)
	}
}

// TestTokenSelectionMatchesEveryURIAttribute: slot and library attributes
// are matched against the module's own C_GetSlotInfo and C_GetInfo, and a
// URI whose attribute does not match chooses nothing.
func TestTokenSelectionMatchesEveryURIAttribute(t *testing.T) {
	tok := softhsm.NewTestToken(t, "uri-attrs")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := "pkcs11:token=" + tok.Label + ";manufacturer=SoftHSM%20project"
	for _, tc := range []struct {
		extra string
		ok    bool
	}{
		{"", true},
		{";library-manufacturer=SoftHSM", true},
		{";library-description=Implementation%20of%20PKCS11", true},
		{";library-version=2.6", true},
		{";slot-manufacturer=SoftHSM%20project", true},
		{";library-manufacturer=Other", false},
		{";library-description=Other", false},
		{";library-version=9", false},
		{";library-version=2", false},
		{";slot-description=Other%20slot", false},
		{";slot-manufacturer=Other", false},
		{";model=SoftHSM%20v2;serial=" + tok.Serial, true},
		{";model=Other", false},
		{";serial=0000", false},
	} {
		u, err := hsm.ParseURI(base + tc.extra)
		if err != nil {
			t.Fatalf("%s: %v", tc.extra, err)
		}
		sel, err := u.Selector()
		if err != nil {
			t.Fatal(err)
		}
		tk, err := m.OpenToken(sel)
		if tk != nil {
			tk.Close()
		}
		if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, hsm.ErrTokenNotFound) {
			t.Errorf("%s: %v, want match %v", fmt.Sprint(tc.extra), err, tc.ok)
		}
	}
}
