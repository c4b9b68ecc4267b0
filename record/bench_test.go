package record

import (
	"bytes"
	"path/filepath"
	"testing"
)

// BenchmarkAppend is one signed, fsynced record entry (signing in Go here;
// in a ceremony the HSM signs).
func BenchmarkAppend(b *testing.B) {
	key := newKey(b)
	w, err := Open(filepath.Join(b.TempDir(), "r.jsonl"), key, []byte{1})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	e := sampleEntry(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Append(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify checks a 1000-entry signed record.
func BenchmarkVerify(b *testing.B) {
	key := newKey(b)
	path := filepath.Join(b.TempDir(), "r.jsonl")
	w, err := Open(path, key, []byte{1})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, err := w.Append(sampleEntry(i)); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	data := join(lines(b, path))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(bytes.NewReader(data), &key.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}
