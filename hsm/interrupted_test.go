package hsm

import (
	"bytes"
	"errors"
	"testing"
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
