package record

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// testdata/format2 is a record the kmsbridge before format 3 (commit
// 7a3b25f) wrote with SoftHSM2 and the KMS emulator: audit-key create, then
// one import with --audit-key, 18 entries of kmsbridge-record/2 signed in
// the token, each chained to the whole line before it, signature included.
// audit.pem is that audit key's public key.
const (
	format2Record = "testdata/format2/record.jsonl"
	format2Key    = "testdata/format2/audit.pem"
	format2Count  = 18
)

func format2(t *testing.T) ([][]byte, VerifyOptions) {
	t.Helper()
	pemBytes, err := os.ReadFile(format2Key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(t, format2Record)
	if len(ls) != format2Count || !bytes.Contains(ls[0], []byte(`"Version":"kmsbridge-record/2"`)) {
		t.Fatalf("%s: %d lines, want %d of format 2", format2Record, len(ls), format2Count)
	}
	return ls, VerifyOptions{PublicKey: pub}
}

// TestFormat2RecordStillVerifies: the checked-in record of the previous
// format verifies against its audit key, against its own audit key and as
// a chain, with its head (the SHA-256 of its last whole line, as format 2
// defines it) and count.
func TestFormat2RecordStillVerifies(t *testing.T) {
	ls, opts := format2(t)
	head := hashHex(ls[len(ls)-1])
	for name, o := range map[string]VerifyOptions{
		"against the given key": {PublicKey: opts.PublicKey, ExpectHead: head, ExpectCount: format2Count},
		"against its own key":   {OwnAuditKey: true, ExpectHead: head, ExpectCount: format2Count},
		"chain only":            {ExpectHead: head, ExpectCount: format2Count},
	} {
		rep, err := VerifyWith(bytes.NewReader(join(ls)), o)
		if err != nil || rep.Head != head || rep.Count != format2Count {
			t.Errorf("%s: %v, head %s count %d\n%s", name, err, rep.Head, rep.Count, rep)
			continue
		}
		for _, e := range rep.Entries {
			if o.PublicKey != nil && e.Signature != SignatureValid {
				t.Errorf("%s: entry %d signature %s", name, e.Entry, e.Signature)
			}
		}
	}
}

// TestFormat2RecordTamperingIsStillFound: in a format 2 record the chain
// still covers each whole line, so every kind of change is found as that
// format promised: a changed signature breaks the chain at the next entry.
func TestFormat2RecordTamperingIsStillFound(t *testing.T) {
	ls, opts := format2(t)
	with := func(i int, line []byte) [][]byte {
		out := slices.Clone(ls)
		out[i-1] = line
		return out
	}
	head := hashHex(ls[len(ls)-1])
	for _, tt := range []struct {
		name string
		file []byte
		opts VerifyOptions
		want []found
	}{
		{"fail edited entry", join(with(5, edit(t, ls[4], func(e *Entry) { e.Outputs["KmsKeyId"] = "mallory" }))), opts,
			[]found{{5, KindBadSignature}, {6, KindChain}}},
		{"fail signature changed", join(with(5, edit(t, ls[4], func(e *Entry) { e.Signature.Value = flip(e.Signature.Value) }))), opts,
			[]found{{5, KindBadSignature}, {6, KindChain}}},
		{"fail signature removed", join(with(5, edit(t, ls[4], func(e *Entry) { e.Signature = nil }))), opts,
			[]found{{5, KindUnsigned}, {6, KindChain}}},
		{"fail deleted entry", join(slices.Delete(slices.Clone(ls), 4, 5)), opts,
			[]found{{5, KindSeq}, {5, KindChain}}},
		{"fail inserted entry", join(slices.Insert(slices.Clone(ls), 4, ls[9])), opts,
			[]found{{5, KindSeq}, {5, KindChain}, {6, KindSeq}, {6, KindChain}}},
		{"fail reordered entries", join(append(append(slices.Clone(ls[:4]), ls[5], ls[4]), ls[6:]...)), opts,
			[]found{{5, KindSeq}, {5, KindChain}, {6, KindSeq}, {6, KindChain}, {7, KindSeq}, {7, KindChain}}},
		{"fail entries cut from the end", join(ls[:15]), VerifyOptions{PublicKey: opts.PublicKey, ExpectHead: head, ExpectCount: format2Count},
			[]found{{0, KindCount}, {0, KindHead}}},
		{"fail cut mid-line", join(ls)[:len(join(ls))-100], opts,
			[]found{{18, KindTruncated}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := VerifyWith(bytes.NewReader(tt.file), tt.opts)
			if rep == nil {
				t.Fatal(err)
			}
			var got []found
			for _, p := range rep.Problems {
				got = append(got, found{p.Entry, p.Kind})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems %v, want %v\n%s", got, tt.want, rep)
			}
		})
	}
}

// TestFormat2RecordContinuesInFormat3: kmsbridge appends format 3 entries
// to a format 2 record; the first is chained to the last format 2 line as a
// whole (so that line's signature is still covered), the next to the
// signed bytes of the entry before it; the mixed record verifies, and a
// format 2 entry after a format 3 one (no kmsbridge writes that) is refused.
func TestFormat2RecordContinuesInFormat3(t *testing.T) {
	ls, _ := format2(t)
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(path, join(ls), 0o600); err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	w := openTest(t, path, key)
	if w.Count() != format2Count || w.Head() != hashHex(ls[len(ls)-1]) {
		t.Fatalf("opened at %d, head %s", w.Count(), w.Head())
	}
	first, err := w.Append(sampleEntry(1))
	if err != nil {
		t.Fatal(err)
	}
	second, err := w.Append(sampleEntry(2))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	all := lines(t, path)
	if first.Version != Format || first.Seq != format2Count+1 || first.Prev != hashHex(ls[len(ls)-1]) {
		t.Errorf("first appended entry: %s seq %d prev %s, want %s chained to the last format 2 line", first.Version, first.Seq, first.Prev, Format)
	}
	if second.Prev != entryHash(all[format2Count]) || second.Prev == hashHex(all[format2Count]) {
		t.Errorf("second appended entry's Prev %s, want the signed bytes' hash of the first", second.Prev)
	}
	if rep, err := VerifyWith(bytes.NewReader(join(all)), VerifyOptions{ExpectHead: entryHash(all[len(all)-1]), ExpectCount: format2Count + 2}); err != nil {
		t.Fatalf("mixed record: %v\n%s", err, rep)
	}

	// The last format 2 line's signature is still chained.
	tampered := slices.Clone(all)
	tampered[format2Count-1] = edit(t, all[format2Count-1], func(e *Entry) { e.Signature.Value = flip(e.Signature.Value) })
	rep, _ := VerifyWith(bytes.NewReader(join(tampered)), VerifyOptions{})
	if len(rep.Problems) != 1 || rep.Problems[0].Entry != format2Count+1 || rep.Problems[0].Kind != KindChain {
		t.Errorf("format 2 signature changed before a format 3 entry: %v", rep.Problems)
	}

	// A format 2 entry after a format 3 one.
	back := edit(t, all[format2Count+1], func(e *Entry) { e.Version, e.Signature = FormatV2, nil })
	rep, _ = VerifyWith(bytes.NewReader(join(append(slices.Clone(all[:format2Count+1]), back))), VerifyOptions{})
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != KindVersion {
		t.Errorf("format 2 after format 3: %v", rep.Problems)
	}
}
