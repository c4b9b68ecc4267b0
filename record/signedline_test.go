package record

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignedFromLineIsSignedBytes: the signed bytes verify cuts out of a
// canonical line are exactly Entry.SignedBytes, for entries whose Inputs
// and Outputs carry a member named Signature and values that spell the
// text the cut looks for; and a line in which that text is not unique, or
// an entry without a signature, is left to SignedBytes.
func TestSignedFromLineIsSignedBytes(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w := openTest(t, path, key)
	tricky := []map[string]string{
		{"Signature": `{"Algorithm":"x"}`},
		{"Note": `,"Signature":{"Algorithm":"ECDSA_P256_SHA256"}`},
		{"Signature": "", "Z": "}"},
		{"A": `\",\"Signature\":{`},
		{},
	}
	for i, m := range tricky {
		e := sampleEntry(i)
		e.Outputs = m
		e.Inputs = map[string]string{"Signature": "in", "Label": strings.Repeat(`"{}`, i)}
		if _, err := w.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for n, line := range lines(t, path) {
		e, raw, err := parseEntry(line)
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.SignedBytes()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := signedFromLine(line, raw)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("entry %d: cut from the line %v:\n%s\nwant SignedBytes\n%s", n+1, ok, got, want)
		}
		// The same text twice: not cut, left to SignedBytes.
		doubled := append(append([]byte{}, line[:len(line)-1]...), append([]byte(`,"X":{"Y":1,"Signature":`), raw...)...)
		doubled = append(doubled, '}', '}')
		if _, ok := signedFromLine(doubled, raw); ok {
			t.Errorf("entry %d: a line holding the Signature member twice was cut", n+1)
		}
	}
	if _, ok := signedFromLine([]byte(`{"A":1}`), nil); ok {
		t.Error("an unsigned line was cut")
	}
	// And Verify still finds a changed entry, whose line is no longer
	// canonical or whose signature no longer verifies.
	ls := lines(t, path)
	ls[2] = bytes.Replace(ls[2], []byte(`"Outcome":"ok"`), []byte(`"Outcome":"failed"`), 1)
	rep, err := Verify(bytes.NewReader(join(ls)), &key.PublicKey)
	if err == nil || rep.Entries[2].Signature != SignatureInvalid {
		t.Errorf("an entry changed after signing: %v, signature %s; want it refused as invalid", err, rep.Entries[2].Signature)
	}
}
