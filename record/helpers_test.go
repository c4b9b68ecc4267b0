package record

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// newKey makes a software P-256 key standing in for the audit key.
func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testClock starts at a fixed time and advances one second per reading.
func testClock() func() time.Time {
	now := time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC)
	return func() time.Time {
		now = now.Add(time.Second)
		return now
	}
}

// sampleEntry is the i-th step of an import, as a command would record it.
func sampleEntry(i int) Entry {
	return Entry{
		Command: "import",
		Step:    fmt.Sprintf("step-%d", i),
		Inputs: map[string]string{
			"KeyId":             "1234abcd-12ab-34cd-56ef-1234567890ab",
			"ImportTokenSha256": fmt.Sprintf("%064x", i),
		},
		Outputs: map[string]string{"WrappedMaterialSha256": fmt.Sprintf("%064x", 100+i)},
		Token:   &TokenInfo{Slot: 1804289383, Label: "ceremony", Serial: "0f1e2d3c4b5a6978", Manufacturer: "SoftHSM project", Model: "SoftHSM v2", Firmware: "2.6"},
		Outcome: OutcomeOK,
	}
}

// openTest opens path with a test clock and fixed operator and host.
func openTest(t *testing.T, path string, key *ecdsa.PrivateKey) *Writer {
	t.Helper()
	var w *Writer
	var err error
	if key == nil {
		w, err = Open(path, nil, nil)
	} else {
		w, err = Open(path, key, []byte{0xa1, 0xb2, 0xc3})
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Now, w.Operator, w.Host = testClock(), "alice", "ceremony-laptop"
	return w
}

// appendN appends entries from..to (inclusive) and closes the writer.
func appendN(t *testing.T, w *Writer, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := w.Append(sampleEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// newRecord writes a record of n entries, signed by key unless it is nil.
func newRecord(t *testing.T, n int, key *ecdsa.PrivateKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ceremony.jsonl")
	appendN(t, openTest(t, path, key), 1, n)
	return path
}

// lines returns the lines of the file without their newlines.
func lines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// join makes a file of lines, each ending in a newline.
func join(ls [][]byte) []byte {
	var b []byte
	for _, l := range ls {
		b = append(append(b, l...), '\n')
	}
	return b
}

// edit parses line, changes it, and writes it back in canonical form.
func edit(t *testing.T, line []byte, change func(*Entry)) []byte {
	t.Helper()
	e, _, err := parseEntry(line)
	if err != nil {
		t.Fatal(err)
	}
	change(e)
	out, err := e.line()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sigMember is an entry's Signature member as kmsbridge writes it: an
// object of strings, so it holds no brace.
var sigMember = regexp.MustCompile(`,"Signature":\{[^{}]*\}`)

// entryHash is what the entry after line chains to, found without this
// package's parser: for a line of kmsbridge-record/3, the SHA-256 of the
// line without its Signature member (its signed bytes, since the line is
// canonical); for anything else, of the whole line.
func entryHash(line []byte) string {
	if json.Valid(line) && bytes.Contains(line, []byte(`"Version":"kmsbridge-record/3"`)) {
		return hashHex(sigMember.ReplaceAll(line, nil))
	}
	return hashHex(line)
}
