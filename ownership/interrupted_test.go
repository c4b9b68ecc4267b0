package ownership

import (
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// TestInterruptedIsOnlyAnIncompleteLeftoverOfThisHostsIntent: a key is
// taken for what a generation stopped inside the token left (so that
// generating again may destroy it) only when all hold: an unsettled
// intent of this host chose its CKA_ID for its label on this token, the
// token does not say it generated it, and it lacks its material. Any one
// missing, it is not, so a forged journal line cannot get a complete key
// of another tool destroyed, nor a settled generation's key.
func TestInterruptedIsOnlyAnIncompleteLeftoverOfThisHostsIntent(t *testing.T) {
	torn := func(label string, id byte) *hsm.Key {
		k := key(label, id, false, false)
		k.KeyType = pkcs11.CKK_AES
		return k
	}
	cases := []struct {
		name     string
		k        *hsm.Key
		intentID string
		outcome  bool
		label    string
		want     bool
	}{
		{"leftover of an unsettled intent", torn("L", 0x0a), "0a", false, "L", true},
		{"the intent names another CKA_ID", torn("L", 0x0a), "0b", false, "L", false},
		{"the intent has its outcome", torn("L", 0x0a), "0a", true, "L", false},
		{"the intent is for another label", torn("L", 0x0a), "0a", false, "M", false},
		{"an intent naming no CKA_ID", torn("L", 0x0a), "", false, "L", false},
		{"complete AES key (another tool's, imported)", func() *hsm.Key { k := torn("L", 0x0a); k.ValueLen = 32; return k }(), "0a", false, "L", false},
		{"complete RSA key", func() *hsm.Key { k := torn("L", 0x0a); k.KeyType = pkcs11.CKK_RSA; k.ModulusBits = 2048; return k }(), "0a", false, "L", false},
		{"RSA key without its modulus", func() *hsm.Key { k := torn("L", 0x0a); k.KeyType = pkcs11.CKK_RSA; return k }(), "0a", false, "L", true},
		{"EC key with its curve", func() *hsm.Key { k := torn("L", 0x0a); k.KeyType = pkcs11.CKK_EC; k.Curve = &hsm.P256; return k }(), "0a", false, "L", false},
		{"clean provenance (resumed, never destroyed)", func() *hsm.Key { k := key("L", 0x0a, true, true); k.KeyType = pkcs11.CKK_AES; return k }(), "0a", false, "L", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := openJournal(t)
			intended(t, j, c.label, c.intentID, c.intentID, c.outcome)
			a := &Authority{TokenSerial: "S1", Journal: j}
			in, got := a.Interrupted("L", c.k)
			if got != c.want {
				t.Fatalf("Interrupted = %v, want %v", got, c.want)
			}
			if got && in.Target[IntentKeyID] != c.intentID {
				t.Fatalf("the intent returned names CKA_ID %q, want %q", in.Target[IntentKeyID], c.intentID)
			}
		})
	}
	if _, ok := (&Authority{TokenSerial: "S2", Journal: openJournal(t)}).Interrupted("L", torn("L", 0x0a)); ok {
		t.Fatal("an empty journal made a key a leftover")
	}
}
