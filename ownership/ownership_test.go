package ownership

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
)

func openJournal(t *testing.T) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), t.TempDir(), journal.Scope{TokenSerial: "S1", Target: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func generated(t *testing.T, j *journal.Journal, label, idHex string, withOutcome bool) {
	t.Helper()
	p, err := j.Intend(journal.Intent{Command: "import", Op: "C_GenerateKey", Target: map[string]string{"KeyLabel": label, "TokenSerial": "S1"}})
	if err != nil {
		t.Fatal(err)
	}
	if withOutcome {
		if err := p.Done(journal.ResultOK, map[string]string{"HsmKeyId": idHex, "HsmKeyLabel": label}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func key(label string, id byte, local, alwaysSensitive bool) *hsm.Key {
	return &hsm.Key{Label: label, ID: []byte{id}, Sensitive: true, Extractable: true,
		Local: local, LocalKnown: true, AlwaysSensitive: alwaysSensitive, AlwaysSensitiveKnown: true}
}

// TestGeneratedKeyNeedsBothSources: the token's provenance and this
// host's journal (or record) must both name the key; either alone is
// refused with the provenance and the adopt command; --adopt takes it,
// noted, and never as generated.
func TestGeneratedKeyNeedsBothSources(t *testing.T) {
	cases := []struct {
		name             string
		local, sensitive bool
		journal, outcome bool
		recordID         string
		want             bool
	}{
		{"clean, generated per journal", true, true, true, true, "", true},
		{"clean, intent without outcome", true, true, true, false, "", true},
		{"clean, in the ceremony record", true, true, false, false, "0a", true},
		{"clean, named nowhere", true, true, false, false, "", false},
		{"CKA_LOCAL false, forged journal line", false, true, true, false, "", false},
		{"once in the clear, journal names it", true, false, true, true, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := openJournal(t)
			if c.journal {
				generated(t, j, "k", "0a", c.outcome)
			}
			a := &Authority{TokenSerial: "S1", Journal: j}
			if c.recordID != "" {
				a.Record = map[string]string{"k": c.recordID}
			}
			v, err := a.GeneratedKey("k", key("k", 0x0a, c.local, c.sensitive), "kmsbridge import ... --adopt")
			if c.want {
				if err != nil || !v.Generated {
					t.Fatalf("got %v, %v; want generated", v, err)
				}
				return
			}
			if !errors.Is(err, ErrNotOurs) || !errors.Is(err, hsm.ErrLabelExists) || !strings.Contains(err.Error(), "--adopt") || !strings.Contains(err.Error(), "CKA_LOCAL=") {
				t.Fatalf("got %v; want a refusal with the provenance and --adopt", err)
			}
			a.Adopt = true
			v, err = a.GeneratedKey("k", key("k", 0x0a, c.local, c.sensitive), "")
			if err != nil || v.Generated {
				t.Fatalf("with --adopt: %+v, %v; want adopted, not generated", v, err)
			}
			noted := false
			for _, e := range j.Entries() {
				noted = noted || e.Op == NoteAdopt && e.Facts["HsmKeyId"] == "0a" && strings.Contains(e.Facts["Provenance"], "CKA_LOCAL=")
			}
			if !noted {
				t.Error("the adoption is not in the journal with the provenance")
			}
		})
	}
}

// TestKMSKeyNeedsTagsAndJournal: a KMS key with the link tags is ours only
// when the journal shows kmsbridge making it.
func TestKMSKeyNeedsTagsAndJournal(t *testing.T) {
	j := openJournal(t)
	p, err := j.Intend(journal.Intent{Command: "import", Op: "CreateKey", Target: map[string]string{"HsmKeyId": "0a", "TokenSerial": "S1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Done(journal.ResultOK, map[string]string{"KmsKeyId": "mine"}, nil); err != nil {
		t.Fatal(err)
	}
	a := &Authority{TokenSerial: "S1", Journal: j}
	link := map[string]string{TagHSMKeyID: "0a", TagTokenSerial: "S1"}
	if err := a.KMSKeyOurs(&KMSKey{ID: "mine", Usable: true, Tags: link}, "0a", "x"); err != nil {
		t.Errorf("its own key: %v", err)
	}
	err = a.KMSKeyOurs(&KMSKey{ID: "planted", Usable: true, Tags: link}, "0a", "kmsbridge renew --kms-key-id planted --adopt")
	if !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), "--adopt") {
		t.Errorf("a key someone else tagged: %v", err)
	}
	if err := a.KMSKeyOurs(&KMSKey{ID: "mine", Usable: true, Tags: map[string]string{}}, "0a", "x"); err == nil {
		t.Error("a key whose link tags are gone is still taken as ours")
	}
}
