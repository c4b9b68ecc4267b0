package hsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestSoftHSMDestroyInterruptedTakesOnlyTheLabelAndCKAIDItIsGiven: on a
// real token, destroying a stopped generation's leftover destroys the
// objects carrying both its label and its CKA_ID, and nothing else: not
// the key under the same label with another CKA_ID, nor one with the same
// CKA_ID under another label; a second call finds nothing and is no error.
func TestSoftHSMDestroyInterruptedTakesOnlyTheLabelAndCKAIDItIsGiven(t *testing.T) {
	tk, _ := openSoftHSMToken(t, "interrupted-test")
	ids := map[string][]byte{}
	for _, name := range []string{"leftover", "same-label", "same-id"} {
		id, err := NewKeyID()
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = id
	}
	ids["same-id"] = ids["leftover"]
	gen := func(label string, id []byte) {
		t.Helper()
		if _, err := tk.GenerateWithID(label, id, AES256(), false); err != nil {
			t.Fatal(err)
		}
	}
	gen("k", ids["leftover"])
	gen("k", ids["same-label"])
	gen("other", ids["same-id"])
	n, err := tk.DestroyInterrupted("k", ids["leftover"])
	if err != nil || n != 1 {
		t.Fatalf("destroyed %d (%v), want 1", n, err)
	}
	if _, err := tk.FindKey(KeySelector{Label: "k", ID: ids["leftover"]}, AES256()); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("the leftover is still found: %v", err)
	}
	for _, k := range []struct {
		label string
		id    []byte
	}{{"k", ids["same-label"]}, {"other", ids["same-id"]}} {
		got, err := tk.FindKey(KeySelector{Label: k.label, ID: k.id}, AES256())
		if err != nil || !bytes.Equal(got.ID, k.id) {
			t.Fatalf("key %q CKA_ID %x: %v, want it kept", k.label, k.id, err)
		}
	}
	if n, err := tk.DestroyInterrupted("k", ids["leftover"]); err != nil || n != 0 {
		t.Fatalf("again: destroyed %d (%v), want 0 and no error", n, err)
	}
	if _, err := tk.DestroyInterrupted("k", []byte{1}); err == nil {
		t.Fatal("a CKA_ID of the wrong length was taken")
	}
}

// TestSoftHSMIncompleteIsNeverAKeyWithItsMaterial: keys the token
// generated, and an AES key another tool wrote into it with
// C_CreateObject (not local: the kind a forged journal intent might name),
// read back complete; so only a key whose material the token never wrote
// can be taken for a stopped generation's leftover.
func TestSoftHSMIncompleteIsNeverAKeyWithItsMaterial(t *testing.T) {
	tk, _ := openSoftHSMToken(t, "incomplete-test")
	for _, p := range []KeyParams{AES256(), RSAKey(2048), ECKey(P256)} {
		id, _ := NewKeyID()
		k, err := tk.GenerateWithID("gen-"+p.String(), id, p, false)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Incomplete(k) {
			t.Errorf("generated %s read back as incomplete: %+v", p, k)
		}
	}
	value := make([]byte, 32)
	for i := range value {
		value[i] = byte(i)
	}
	id, _ := NewKeyID()
	err := tk.withSession(func(s pkcs11.SessionHandle) error {
		_, err := tk.p.CreateObject(s, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, value),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, "written"),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	k, err := tk.FindKey(KeySelector{Label: "written", ID: id}, AES256())
	if err != nil {
		t.Fatal(err)
	}
	caps, err := tk.Capabilities()
	if err != nil || !caps.CheckValue() || len(k.CheckValue) == 0 {
		t.Fatalf("SoftHSM2 gives AES keys check values (%v), so an AES key without one is what a stopped generation left; the written key has %x", err, k.CheckValue)
	}
	if k.Local || tk.Incomplete(k) {
		t.Fatalf("an AES key written with its value: local %v, incomplete %v, want false and false (%+v)", k.Local, tk.Incomplete(k), k)
	}
}

// TestSoftHSMOnlyPublicHalfIsAPairWithoutItsPrivateKeyAndNothingElse: a
// pair generated in full, or a label some other object also carries, is
// never taken for the public half a stopped C_GenerateKeyPair left; the
// public key alone, under the CKA_ID asked about, is. The private key is
// destroyed here as a stop between SoftHSM2's two object writes would have
// left it unwritten.
func TestSoftHSMOnlyPublicHalfIsAPairWithoutItsPrivateKeyAndNothingElse(t *testing.T) {
	tk, _ := openSoftHSMToken(t, "public-half-test")
	id, _ := NewKeyID()
	other, _ := NewKeyID()
	k, err := tk.GenerateWithID("pair", id, ECKey(P256), false)
	if err != nil {
		t.Fatal(err)
	}
	only := func(label string, id []byte) bool {
		t.Helper()
		ok, err := tk.OnlyPublicHalf(label, id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if only("pair", id) {
		t.Fatal("a complete pair was taken for its public half alone")
	}
	b, done, err := tk.bound()
	if err != nil {
		t.Fatal(err)
	}
	err = b.p.DestroyObject(b.session, k.Handle)
	done()
	if err != nil {
		t.Fatal(err)
	}
	if !only("pair", id) {
		t.Fatal("the public half alone, under the CKA_ID asked about, was not recognised")
	}
	if only("pair", other) || only("pair", []byte{1}) || only("no-such-label", id) {
		t.Fatal("another CKA_ID, a malformed one, or an unused label was taken for the public half")
	}
	if _, err := tk.GenerateWithID("pair", other, AES256(), false); err != nil {
		t.Fatal(err)
	}
	if only("pair", id) {
		t.Fatal("a label another key also carries was taken for a pair's public half alone")
	}
}
