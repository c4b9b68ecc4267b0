package ownership

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// TestInterruptedIsOnlyAnIncompleteLeftoverOfThisHostsIntent: a key is
// taken for what a generation stopped inside the token left (so that
// generating again may destroy it) only when all hold: an unsettled
// intent of this host chose its CKA_ID for its label on this token, the
// token does not say it generated it, and the token says it lacks its
// material. Any one missing, it is not, so a forged journal line cannot
// get a complete key of another tool destroyed, nor a settled
// generation's key.
func TestInterruptedIsOnlyAnIncompleteLeftoverOfThisHostsIntent(t *testing.T) {
	// A CKA_ID as GenerateHSMKey chooses it: hsm.KeyIDBytes bytes.
	id := func(b byte) string { return strings.Repeat(fmt.Sprintf("%02x", b), hsm.KeyIDBytes) }
	full := func(k *hsm.Key) *hsm.Key { k.ID, _ = hex.DecodeString(id(0x0a)); return k }
	torn := full(key("L", 0x0a, false, false))
	clean := full(key("L", 0x0a, true, true))
	cases := []struct {
		name       string
		k          *hsm.Key
		incomplete bool
		intentID   string
		outcome    bool
		label      string
		want       bool
	}{
		{"leftover of an unsettled intent", torn, true, id(0x0a), false, "L", true},
		{"the intent names another CKA_ID", torn, true, id(0x0b), false, "L", false},
		{"the intent has its outcome", torn, true, id(0x0a), true, "L", false},
		{"the intent is for another label", torn, true, id(0x0a), false, "M", false},
		{"an intent naming no CKA_ID", torn, true, "", false, "L", false},
		{"a complete key (another tool's, imported) under a forged intent", torn, false, id(0x0a), false, "L", false},
		{"clean provenance (resumed, never destroyed)", clean, true, id(0x0a), false, "L", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := openJournal(t)
			intended(t, j, c.label, c.intentID, c.intentID, c.outcome)
			a := &Authority{TokenSerial: "S1", Journal: j}
			in, got := a.Interrupted("L", c.k, c.incomplete)
			if got != c.want {
				t.Fatalf("Interrupted = %v, want %v", got, c.want)
			}
			if got && in.Target[IntentKeyID] != c.intentID {
				t.Fatalf("the intent returned names CKA_ID %q, want %q", in.Target[IntentKeyID], c.intentID)
			}
		})
	}
	if _, ok := (&Authority{TokenSerial: "S1", Journal: openJournal(t)}).Interrupted("L", torn, true); ok {
		t.Fatal("an empty journal made a key a leftover")
	}
}
