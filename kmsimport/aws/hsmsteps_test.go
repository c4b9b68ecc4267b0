package aws

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

func hsmSideJournal(t *testing.T) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), t.TempDir(), journal.Scope{TokenSerial: "0001", Target: "hsm-side-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func secretChoice(label string) kmsimport.KeyChoice {
	return kmsimport.KeyChoice{Label: label, Params: hsm.AES256(), Known: true, What: "secret key", NotFound: ", or create it", Command: "import"}
}

// TestChooseHSMKeyRefusesWhatCannotBeAMasterCopy: an existing key the
// token will never wrap, or hands out in the clear, is refused, and the
// refusal offers --allow-non-sensitive only where the command has it.
func TestChooseHSMKeyRefusesWhatCannotBeAMasterCopy(t *testing.T) {
	j := hsmSideJournal(t)
	for _, c := range []struct {
		name  string
		key   *hsm.Key
		offer bool
		allow bool
		want  string
	}{
		{"not extractable", &hsm.Key{Label: "k", ID: []byte{1}, Sensitive: true}, false, false, "CKA_EXTRACTABLE=false"},
		{"not sensitive, no flag", &hsm.Key{Label: "k", ID: []byte{1}, Extractable: true}, false, false, "CKA_SENSITIVE=false"},
		{"not sensitive, flag offered", &hsm.Key{Label: "k", ID: []byte{1}, Extractable: true}, true, false, "--allow-non-sensitive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := &fakeToken{keys: []*hsm.Key{cleanKey(c.key)}}
			ch := secretChoice("k")
			ch.OfferNonSensitive, ch.AllowNonSensitive = c.offer, c.allow
			got, err := kmsimport.ChooseHSMKey(tok, nil, j, ch)
			if !errors.Is(err, hsm.ErrUnsuitableKey) || !strings.Contains(err.Error(), c.want) || got.Key != nil {
				t.Fatalf("got %+v, %v: want ErrUnsuitableKey naming %s", got, err, c.want)
			}
			if !c.offer && strings.Contains(err.Error(), "--allow-non-sensitive") {
				t.Errorf("%v: offers a flag the command does not have", err)
			}
		})
	}
	// Allowed on purpose: taken, with the warning that says so.
	k := cleanKey(&hsm.Key{Label: "k", ID: []byte{1}, KeyType: 0x1f, ValueLen: 32, Extractable: true})
	ch := secretChoice("k")
	ch.AllowNonSensitive = true
	got, err := kmsimport.ChooseHSMKey(&fakeToken{keys: []*hsm.Key{k}}, &ownership.Authority{TokenSerial: "0001", Journal: j, Adopt: true}, j, ch)
	if err != nil || got.Key != k || len(got.Warnings) == 0 || !strings.Contains(got.Warnings[0], "--allow-non-sensitive") {
		t.Fatalf("got %+v, %v: want the key, with the non-sensitive warning", got, err)
	}
}

// TestChooseHSMKeyExistingNeedsProvenance: a key the token does not say
// it generated is imported only when adopted on purpose, and then says so.
func TestChooseHSMKeyExistingNeedsProvenance(t *testing.T) {
	j := hsmSideJournal(t)
	unwrapped := &hsm.Key{Label: "k", ID: []byte{1}, KeyType: 0x1f, ValueLen: 32, Extractable: true, Sensitive: true} // no CKA_LOCAL
	tok := &fakeToken{keys: []*hsm.Key{unwrapped}}
	if _, err := kmsimport.ChooseHSMKey(tok, nil, j, secretChoice("k")); !errors.Is(err, ownership.ErrNotOurs) {
		t.Fatalf("error %v: want ErrNotOurs", err)
	}
	got, err := kmsimport.ChooseHSMKey(tok, &ownership.Authority{TokenSerial: "0001", Journal: j, Adopt: true}, j, secretChoice("k"))
	if err != nil || !got.Adopted || got.Generated || len(got.Warnings) != 1 {
		t.Fatalf("got %+v, %v: want it adopted, with a warning", got, err)
	}
}

// TestChooseHSMKeyFindsAnyKind: with no kind given, the kinds are tried in
// order, the first found decides (through Kind), and none found names
// what was looked for and what to do.
func TestChooseHSMKeyFindsAnyKind(t *testing.T) {
	j := hsmSideJournal(t)
	var tried []string
	tok := &fakeToken{keys: []*hsm.Key{}}
	c := kmsimport.KeyChoice{Label: "nope", Kinds: []hsm.KeyParams{hsm.AES256(), hsm.RSAKey(0)}, What: "secret or private key", NotFound: ", or create it with --generate",
		Kind: func(k *hsm.Key) (hsm.KeyParams, error) { tried = append(tried, k.Label); return hsm.AES256(), nil }}
	_, err := kmsimport.ChooseHSMKey(tok, nil, j, c)
	if !errors.Is(err, hsm.ErrKeyNotFound) || !strings.Contains(err.Error(), "no secret or private key with") || !strings.HasSuffix(err.Error(), ", or create it with --generate") {
		t.Fatalf("error %v", err)
	}
	tok.keys = []*hsm.Key{cleanKey(&hsm.Key{Label: "nope", ID: []byte{2}, KeyType: 0x1f, ValueLen: 32, Extractable: true, Sensitive: true})}
	got, err := kmsimport.ChooseHSMKey(tok, nil, j, c)
	if err != nil || got.Key == nil || len(tried) != 1 || got.Params.String() != hsm.AES256().String() {
		t.Fatalf("got %+v, %v, Kind called for %v", got, err, tried)
	}
}

// TestGenerateThenResumeThroughOwnership: a key GenerateHSMKey made is
// the one a re-run with the same label takes up (the journal and the
// token agree), noting it; a key under the label that no run generated is
// refused.
func TestGenerateThenResumeThroughOwnership(t *testing.T) {
	j := hsmSideJournal(t)
	tok := &fakeToken{keys: []*hsm.Key{}}
	c := secretChoice("fresh")
	c.Generate = true
	got, err := kmsimport.ChooseHSMKey(tok, nil, j, c)
	if err != nil || got.Key != nil || !strings.Contains(got.Summary, "is free") {
		t.Fatalf("got %+v, %v: want the label free", got, err)
	}
	k, err := kmsimport.GenerateHSMKey(tok, j, "import", "fresh", hsm.AES256(), false, map[string]string{"KeySpec": "SYMMETRIC_DEFAULT"})
	if err != nil || k == nil {
		t.Fatal(err)
	}
	in := j.Intents("C_GenerateKey", func(e journal.Entry) bool { return e.Target["KeyLabel"] == "fresh" })
	if len(in) != 1 || in[0].Target["TokenSerial"] != "0001" || in[0].Target["KeySpec"] != "SYMMETRIC_DEFAULT" {
		t.Fatalf("journal intents %+v: want one C_GenerateKey with label, serial and target", in)
	}
	got, err = kmsimport.ChooseHSMKey(tok, nil, j, c)
	if err != nil || got.Key != k || !got.Generated || got.Resumed == "" {
		t.Fatalf("got %+v, %v: want the key generated before, resumed", got, err)
	}
	notes := 0
	for _, e := range j.Entries() {
		if e.Kind == journal.KindNote && e.Op == "resume" && e.Facts["HsmKeyId"] == k.IDHex() {
			notes++
		}
	}
	if notes != 1 {
		t.Errorf("%d resume notes, want 1", notes)
	}
	// Someone else's key under a label.
	tok.keys = append(tok.keys, cleanKey(&hsm.Key{Label: "planted", ID: []byte{9}, KeyType: 0x1f, ValueLen: 32, Extractable: true, Sensitive: true}))
	c.Label = "planted"
	if _, err := kmsimport.ChooseHSMKey(tok, nil, j, c); !errors.Is(err, hsm.ErrLabelExists) || !errors.Is(err, ownership.ErrNotOurs) {
		t.Fatalf("error %v: want the label refused as not kmsbridge's", err)
	}
}

// TestProbeWrapChoosesTheStrongest: the first method the token can do is
// chosen, what was passed over says why, and a refusal beyond the wrap
// method stops the probe.
func TestProbeWrapChoosesTheStrongest(t *testing.T) {
	methods := []kmsimport.CloudWrap{{Name: "SHA256", Method: hsm.WrapMethod{OAEP: hsm.OAEPSHA256}}, {Name: "SHA1", Method: hsm.WrapMethod{OAEP: hsm.OAEPSHA1}}}
	pr, err := kmsimport.ProbeWrap(&fakeToken{}, hsm.Ask{Key: hsm.AES256()}, methods)
	if err != nil || pr.Chosen.Name != "SHA1" || len(pr.Refused) != 1 || !strings.HasPrefix(pr.Refused[0], "no SHA256, because") {
		t.Fatalf("got %+v, %v", pr, err)
	}
	pr, err = kmsimport.ProbeWrap(&fakeToken{sha256: true}, hsm.Ask{Key: hsm.AES256()}, methods)
	if err != nil || pr.Chosen.Name != "SHA256" || len(pr.Refused) != 0 {
		t.Fatalf("got %+v, %v", pr, err)
	}
}
