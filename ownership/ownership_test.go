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
	intended(t, j, label, idHex, idHex, withOutcome)
}

// intended journals a generation under label whose intent names
// intentID ("": none, as an earlier version's did) and whose outcome,
// when there is one, names idHex.
func intended(t *testing.T, j *journal.Journal, label, intentID, idHex string, withOutcome bool) {
	t.Helper()
	target := map[string]string{"KeyLabel": label, "TokenSerial": "S1"}
	if intentID != "" {
		target[IntentKeyID] = intentID
	}
	p, err := j.Intend(journal.Intent{Command: "import", Op: "C_GenerateKey", Target: target})
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

// TestUnprovenClaimsAdoptNothing: a journal intent or a ceremony record
// entry is proof of a generation only when the CKA_ID it names is the one
// the token reads back from the key under the label, and the key is what
// kmsbridge generates (extractable by wrapping). An intent without a
// CKA_ID, a record entry without one, another key's CKA_ID, or a
// never-extractable key under the label are refused with what was found
// and --adopt; an intent naming the key's CKA_ID without an outcome (a
// crash between the call and its outcome) still proves it, so a re-run
// finishes the job.
func TestUnprovenClaimsAdoptNothing(t *testing.T) {
	neverExtractable := func() *hsm.Key {
		k := key("k", 0x0a, true, true)
		k.Extractable, k.NeverExtractable, k.NeverExtractableKnown = false, true, true
		return k
	}
	cases := []struct {
		name     string
		journal  func(*journal.Journal)
		record   map[string]string
		key      *hsm.Key
		want     bool
		whyParts []string
	}{
		{"intent naming the key's CKA_ID, no outcome (crash)", func(j *journal.Journal) { intended(t, j, "k", "0a", "", false) }, nil, key("k", 0x0a, true, true), true, nil},
		{"intent naming no CKA_ID, no outcome", func(j *journal.Journal) { intended(t, j, "k", "", "", false) }, nil, key("k", 0x0a, true, true), false, []string{"names no CKA_ID"}},
		{"intent naming another CKA_ID, no outcome", func(j *journal.Journal) { intended(t, j, "k", "0b", "", false) }, nil, key("k", 0x0a, true, true), false, []string{"CKA_ID 0b", "not this key"}},
		{"outcome naming another CKA_ID", func(j *journal.Journal) { generated(t, j, "k", "0b", true) }, nil, key("k", 0x0a, true, true), false, []string{"generated CKA_ID 0b"}},
		{"record entry without a CKA_ID", nil, map[string]string{"k": ""}, key("k", 0x0a, true, true), false, []string{"does not name"}},
		{"record entry naming another CKA_ID", nil, map[string]string{"k": "0b"}, key("k", 0x0a, true, true), false, nil},
		{"never-extractable key, intent naming its CKA_ID", func(j *journal.Journal) { intended(t, j, "k", "0a", "", false) }, nil, neverExtractable(), false, []string{"CKA_EXTRACTABLE is false"}},
		{"never-extractable key, record entry without a CKA_ID", nil, map[string]string{"k": ""}, neverExtractable(), false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := openJournal(t)
			if c.journal != nil {
				c.journal(j)
			}
			a := &Authority{TokenSerial: "S1", Journal: j, Record: c.record}
			v, err := a.GeneratedKey("k", c.key, "kmsbridge import ... --adopt")
			if c.want {
				if err != nil || !v.Generated {
					t.Fatalf("got %+v, %v; want generated", v, err)
				}
				return
			}
			if err == nil || v.Generated || !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), "--adopt") {
				t.Fatalf("got %+v, %v; want a refusal naming --adopt", v, err)
			}
			for _, w := range c.whyParts {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal lacks %q: %v", w, err)
				}
			}
			// Naming the key on purpose (no --generate) does not make it
			// generated either.
			if v, _ := a.ExistingKey(c.key, "x"); v.Generated {
				t.Errorf("ExistingKey calls it generated: %+v", v)
			}
		})
	}
}

// TestLinkedKeyIsNeverGenerated: a cloud key tagged with an HSM key's
// CKA_ID lets a run take that key up (its material is then proved by the
// caller), but never as generated by kmsbridge, and only when the token
// says it was generated there, never in the clear, as kmsbridge makes
// keys; otherwise it is refused with --adopt.
func TestLinkedKeyIsNeverGenerated(t *testing.T) {
	a := &Authority{TokenSerial: "S1", Journal: openJournal(t)}
	v, err := a.LinkedKey("k", key("k", 0x0a, true, true), "key v/k is tagged with it", "--adopt")
	if err != nil || v.Generated || v.Adopted {
		t.Fatalf("a clean key a cloud key is tagged with: %+v %v", v, err)
	}
	ne := key("k", 0x0a, true, true)
	ne.Extractable, ne.NeverExtractable, ne.NeverExtractableKnown = false, true, true
	for name, k := range map[string]*hsm.Key{"imported into the token": key("k", 0x0a, false, true), "never extractable": ne} {
		if _, err := a.LinkedKey("k", k, "key v/k is tagged with it", "run it again with --adopt"); !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), "--adopt") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
