package record

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type found struct {
	Entry int
	Kind  Kind
}

func TestVerify(t *testing.T) {
	key, other := newKey(t), newKey(t)
	signed := lines(t, newRecord(t, 5, key))
	unsigned := lines(t, newRecord(t, 5, nil))
	head := func(ls [][]byte) string { return entryHash(ls[len(ls)-1]) }

	// mixed is entries 1-2 and 4-5 signed by key, entry 3 by other.
	mixedPath := filepath.Join(t.TempDir(), "mixed.jsonl")
	appendN(t, openTest(t, mixedPath, key), 1, 2)
	appendN(t, openTest(t, mixedPath, other), 3, 3)
	appendN(t, openTest(t, mixedPath, key), 4, 5)
	mixed := lines(t, mixedPath)

	// gap is entries 1 and 3-5 signed by key, entry 2 unsigned.
	gapPath := filepath.Join(t.TempDir(), "gap.jsonl")
	appendN(t, openTest(t, gapPath, key), 1, 1)
	appendN(t, openTest(t, gapPath, nil), 2, 2)
	appendN(t, openTest(t, gapPath, key), 3, 5)
	gap := lines(t, gapPath)

	// other3 is entry 3 of another record signed by the same key, of
	// other content: a validly signed entry that does not belong here.
	otherPath := filepath.Join(t.TempDir(), "other.jsonl")
	ow := openTest(t, otherPath, key)
	for i := 1; i <= 3; i++ {
		e := sampleEntry(i)
		e.Step = "other-ceremony"
		if _, err := ow.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	ow.Close()
	other3 := lines(t, otherPath)[2]

	with := func(ls [][]byte, i int, line []byte) [][]byte {
		out := slices.Clone(ls)
		out[i-1] = line
		return out
	}
	tests := []struct {
		name  string
		file  []byte
		pub   *ecdsa.PublicKey
		opts  VerifyOptions
		want  []found
		count int
	}{
		{name: "ok signed record checked against its audit key", file: join(signed), pub: &key.PublicKey, count: 5},
		{name: "ok signed record with no key: signatures unchecked", file: join(signed), count: 5},
		{name: "ok unsigned record with no key", file: join(unsigned), count: 5},
		{name: "ok empty record", file: nil, count: 0},
		{name: "ok head and count as written down", file: join(signed), pub: &key.PublicKey,
			opts: VerifyOptions{ExpectHead: strings.ToUpper(head(signed)), ExpectCount: 5}, count: 5},
		{name: "ok whole entries removed from the end are invisible without head or count", file: join(signed[:3]), pub: &key.PublicKey, count: 3},

		{name: "fail edited entry", file: join(with(signed, 3, edit(t, signed[2], func(e *Entry) { e.Outputs["WrappedMaterialSha256"] = strings.Repeat("e", 64) }))),
			pub: &key.PublicKey, count: 5, want: []found{{3, KindBadSignature}, {4, KindChain}}},
		{name: "fail edited entry of an unsigned record", file: join(with(unsigned, 3, edit(t, unsigned[2], func(e *Entry) { e.Operator = "mallory" }))),
			count: 5, want: []found{{4, KindChain}}},
		{name: "fail edited last entry", file: join(with(signed, 5, edit(t, signed[4], func(e *Entry) { e.Outcome, e.Error = OutcomeError, "hidden" }))),
			pub: &key.PublicKey, count: 5, want: []found{{5, KindBadSignature}}},
		{name: "fail edited last entry of an unsigned record against the head", file: join(with(unsigned, 5, edit(t, unsigned[4], func(e *Entry) { e.Step = "other" }))),
			opts: VerifyOptions{ExpectHead: head(unsigned), ExpectCount: 5}, count: 5, want: []found{{0, KindHead}}},
		{name: "fail deleted entry", file: join(slices.Delete(slices.Clone(signed), 2, 3)),
			pub: &key.PublicKey, count: 4, want: []found{{3, KindSeq}, {3, KindChain}}},
		{name: "fail deleted first entry", file: join(signed[1:]),
			pub: &key.PublicKey, count: 4, want: []found{{1, KindSeq}, {1, KindChain}}},
		{name: "fail reordered entries", file: join([][]byte{signed[0], signed[1], signed[3], signed[2], signed[4]}),
			pub: &key.PublicKey, count: 5, want: []found{{3, KindSeq}, {3, KindChain}, {4, KindSeq}, {4, KindChain}, {5, KindSeq}, {5, KindChain}}},
		{name: "fail repeated entry", file: join([][]byte{signed[0], signed[1], signed[1], signed[2], signed[3], signed[4]}),
			pub: &key.PublicKey, count: 6, want: []found{{3, KindSeq}, {3, KindChain}}},
		{name: "fail truncated in the middle of the last line", file: join(signed)[:len(join(signed))-len(signed[4])/2],
			pub: &key.PublicKey, count: 5, want: []found{{5, KindTruncated}}},
		{name: "fail last newline missing", file: bytes.TrimSuffix(join(signed), []byte("\n")),
			pub: &key.PublicKey, count: 5, want: []found{{5, KindTruncated}}},
		{name: "fail whole entries removed from the end, against the count", file: join(signed[:3]),
			pub: &key.PublicKey, opts: VerifyOptions{ExpectCount: 5}, count: 3, want: []found{{0, KindCount}}},
		{name: "fail whole entries removed from the end, against the head", file: join(signed[:3]),
			pub: &key.PublicKey, opts: VerifyOptions{ExpectHead: head(signed)}, count: 3, want: []found{{0, KindHead}}},
		{name: "fail entries added after the head was written down", file: join(signed),
			pub: &key.PublicKey, opts: VerifyOptions{ExpectHead: head(signed[:3]), ExpectCount: 3}, count: 5, want: []found{{0, KindCount}, {0, KindHead}}},
		// The chain fixes each entry's signed bytes, not its signature
		// (format 3): a changed or removed signature is found by the
		// signature check, at the entry itself.
		{name: "fail bad signature", file: join(with(signed, 2, edit(t, signed[1], func(e *Entry) { e.Signature.Value = flip(e.Signature.Value) }))),
			pub: &key.PublicKey, count: 5, want: []found{{2, KindBadSignature}}},
		{name: "fail signature removed", file: join(with(signed, 2, edit(t, signed[1], func(e *Entry) { e.Signature = nil }))),
			pub: &key.PublicKey, count: 5, want: []found{{2, KindUnsigned}}},
		{name: "fail last entry's signature removed", file: join(with(signed, 5, edit(t, signed[4], func(e *Entry) { e.Signature = nil }))),
			pub: &key.PublicKey, opts: VerifyOptions{ExpectHead: head(signed), ExpectCount: 5}, count: 5, want: []found{{5, KindUnsigned}}},
		{name: "fail entry substituted by one the same key signed for another record", file: join(with(signed, 3, other3)),
			pub: &key.PublicKey, count: 5, want: []found{{3, KindChain}, {4, KindChain}}},
		{name: "fail signed entry of another record inserted", file: join(slices.Insert(slices.Clone(signed), 3, other3)),
			pub: &key.PublicKey, count: 6, want: []found{{4, KindSeq}, {4, KindChain}, {5, KindChain}}},
		{name: "fail unsigned entry when a key is given", file: join(gap),
			pub: &key.PublicKey, count: 5, want: []found{{2, KindUnsigned}}},
		{name: "fail unsigned record when a key is given", file: join(unsigned[:2]),
			pub: &key.PublicKey, count: 2, want: []found{{1, KindUnsigned}, {2, KindUnsigned}}},
		{name: "fail entry signed by another key", file: join(mixed),
			pub: &key.PublicKey, count: 5, want: []found{{3, KindWrongKey}}},
		{name: "fail record checked against another key", file: join(signed[:2]),
			pub: &other.PublicKey, count: 2, want: []found{{1, KindWrongKey}, {2, KindWrongKey}}},
		{name: "fail signature copied from another entry", file: join(with(signed, 2, edit(t, signed[1], func(e *Entry) {
			f, _, _ := parseEntry(signed[3])
			e.Signature = f.Signature
		}))), pub: &key.PublicKey, count: 5, want: []found{{2, KindBadSignature}}},
		{name: "fail whitespace added", file: join(with(signed, 2, append([]byte("{ "), signed[1][1:]...))),
			pub: &key.PublicKey, count: 5, want: []found{{2, KindNotCanonical}}},
		{name: "fail signed content changed and re-chained without the key", file: join(rechained(t, signed, 3)),
			pub: &key.PublicKey, count: 5, want: []found{{3, KindBadSignature}, {4, KindBadSignature}, {5, KindBadSignature}}},
		{name: "fail unknown member", file: join(with(unsigned, 2, append([]byte(`{"Annex":"x",`), unsigned[1][1:]...))),
			count: 5, want: []found{{2, KindMalformed}, {3, KindChain}}},
		{name: "fail member in the wrong case", file: join(with(unsigned, 2, bytes.Replace(unsigned[1], []byte(`"Seq":`), []byte(`"seq":`), 1))),
			count: 5, want: []found{{2, KindMalformed}, {3, KindChain}}},
		{name: "fail line that is not JSON inserted", file: join(slices.Insert(slices.Clone(unsigned), 2, []byte("operator note: all fine"))),
			count: 6, want: []found{{3, KindMalformed}, {4, KindChain}}},
		{name: "fail empty line at the end", file: append(join(unsigned), '\n'),
			count: 6, want: []found{{6, KindMalformed}}},
		{name: "fail unknown format version", file: join(with(unsigned, 2, edit(t, unsigned[1], func(e *Entry) { e.Version = "kmsbridge-record/9" }))),
			count: 5, want: []found{{2, KindVersion}, {3, KindChain}}},
		{name: "fail entry without the build that wrote it", file: join(with(unsigned, 2, edit(t, unsigned[1], func(e *Entry) { e.Tool = nil }))),
			count: 5, want: []found{{2, KindMalformed}, {3, KindChain}}},
		{name: "fail tool commit that is not a commit", file: join(with(unsigned, 2, edit(t, unsigned[1], func(e *Entry) { e.Tool.Commit = "HEAD" }))),
			count: 5, want: []found{{2, KindInvalid}, {3, KindChain}}},
		{name: "fail format 1 entry naming a tool", file: join(with(unsigned, 2, edit(t, unsigned[1], func(e *Entry) { e.Version = FormatV1 }))),
			count: 5, want: []found{{2, KindMalformed}, {3, KindChain}}},
		{name: "fail invalid outcome", file: join(with(unsigned, 2, edit(t, unsigned[1], func(e *Entry) { e.Outcome = "maybe" }))),
			count: 5, want: []found{{2, KindInvalid}, {3, KindChain}}},
		{name: "fail secret in the record", file: join(with(unsigned, 2, edit(t, unsigned[1], func(e *Entry) { e.Inputs["Pin"] = "1234" }))),
			count: 5, want: []found{{2, KindInvalid}, {3, KindChain}}},
		{name: "fail time not in UTC", file: join(with(unsigned, 2, edit(t, unsigned[1], func(e *Entry) { e.Time = "2026-05-04T11:30:02.000+02:00" }))),
			count: 5, want: []found{{2, KindInvalid}, {3, KindChain}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if tt.pub != nil {
				opts.PublicKey = tt.pub
			}
			rep, err := VerifyWith(bytes.NewReader(tt.file), opts)
			if rep == nil {
				t.Fatalf("no report: %v", err)
			}
			var got []found
			for _, p := range rep.Problems {
				got = append(got, found{p.Entry, p.Kind})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems %v, want %v\n%s", got, tt.want, rep)
			}
			if (err != nil) != (len(tt.want) > 0) || err != nil && !errors.Is(err, ErrBroken) {
				t.Errorf("error %v, want ErrBroken exactly when there are problems", err)
			}
			if rep.Count != tt.count || len(rep.Entries) != tt.count {
				t.Errorf("count %d (%d results), want %d", rep.Count, len(rep.Entries), tt.count)
			}
			if want := GenesisPrev; tt.count > 0 {
				ls := bytes.Split(bytes.TrimSuffix(tt.file, []byte("\n")), []byte("\n"))
				if want = entryHash(ls[len(ls)-1]); rep.Head != want {
					t.Errorf("head %s, want the last entry's hash %s", rep.Head, want)
				}
			} else if rep.Head != want {
				t.Errorf("head of an empty record %s, want %s", rep.Head, want)
			}
		})
	}
}

// flip changes one base64 character in the middle of s, keeping it base64.
func flip(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestVerifySignatureStatus(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "r.jsonl")
	appendN(t, openTest(t, path, nil), 1, 1)
	appendN(t, openTest(t, path, key), 2, 2)
	file := join(lines(t, path))
	for _, tt := range []struct {
		name string
		pub  *ecdsa.PublicKey
		want []SignatureStatus
	}{
		{"ok no key: unsigned and unchecked", nil, []SignatureStatus{SignatureNone, SignatureUnchecked}},
		{"ok key: unsigned and valid", &key.PublicKey, []SignatureStatus{SignatureNone, SignatureValid}},
		{"ok another key: unsigned and wrong key", &newKey(t).PublicKey, []SignatureStatus{SignatureNone, SignatureWrongKey}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := VerifyOptions{}
			if tt.pub != nil {
				opts.PublicKey = tt.pub
			}
			rep, _ := VerifyWith(bytes.NewReader(file), opts)
			var got []SignatureStatus
			for _, e := range rep.Entries {
				got = append(got, e.Signature)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
			if rep.SignaturesChecked != (tt.pub != nil) {
				t.Errorf("SignaturesChecked = %v", rep.SignaturesChecked)
			}
		})
	}
}

func TestVerifyErrorNamesTheFirstProblem(t *testing.T) {
	ls := lines(t, newRecord(t, 4, nil))
	_, err := Verify(bytes.NewReader(join([][]byte{ls[0], ls[2], ls[3]})), nil)
	var verr *VerifyError
	if !errors.As(err, &verr) {
		t.Fatalf("got %v, want a *VerifyError", err)
	}
	want := "ceremony record does not verify: entry 2: seq: Seq is 3 but the previous entry's is 1: the entries with Seq 2 to 2 are missing"
	if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "(and 1 more problems)") {
		t.Errorf("message %q, want it to start %q and count the rest", err, want)
	}
	if !strings.Contains(verr.Problems[1].Detail, "entry 1's hash") {
		t.Errorf("chain detail %q does not name the previous entry", verr.Problems[1].Detail)
	}
}

func TestVerifyRefusesBadOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts VerifyOptions
	}{
		{"fail head that is not hex", VerifyOptions{ExpectHead: "not a digest"}},
		{"fail head too short", VerifyOptions{ExpectHead: "abcd"}},
		{"fail key that is not ECDSA", VerifyOptions{PublicKey: "a string"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if rep, err := VerifyWith(bytes.NewReader(nil), tt.opts); err == nil || rep != nil {
				t.Errorf("got %v, %v; want an error and no report", rep, err)
			}
		})
	}
}

func TestVerifyAcceptsAHeadReadAloudInGroups(t *testing.T) {
	ls := lines(t, newRecord(t, 2, nil))
	h := strings.ToUpper(entryHash(ls[1]))
	var grouped []string
	for i := 0; i < len(h); i += 4 {
		grouped = append(grouped, h[i:i+4])
	}
	if _, err := VerifyWith(bytes.NewReader(join(ls)), VerifyOptions{ExpectHead: strings.Join(grouped, " ")}); err != nil {
		t.Error(err)
	}
}

func TestVerifyRefusesAHugeLine(t *testing.T) {
	_, err := Verify(bytes.NewReader(bytes.Repeat([]byte("x"), MaxLineBytes+10)), nil)
	if err == nil || !strings.Contains(err.Error(), "entry 1 is longer than") {
		t.Errorf("got %v, want entry 1 too long", err)
	}
}

func TestReportStringIsATranscript(t *testing.T) {
	key := newKey(t)
	ls := lines(t, newRecord(t, 3, key))
	rep, _ := VerifyWith(bytes.NewReader(join([][]byte{ls[0], ls[2]})), VerifyOptions{PublicKey: &key.PublicKey, ExpectCount: 3})
	s := rep.String()
	for _, want := range []string{
		"entry 1: ok (signature valid) seq 1 2026-05-04T09:30:01.000Z import \"step-1\" ok",
		"entry 2: FAILED (signature valid) seq 3",
		"    seq: Seq is 3",
		"    chain: Prev is",
		"record: count: the record has 2 entries, but 3 were written down: 1 entries are missing from the end",
		"2 entries, head " + entryHash(ls[2]),
		"the record does NOT verify: 3 problems",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("transcript lacks %q:\n%s", want, s)
		}
	}
}

func TestVerifySignatureMembers(t *testing.T) {
	key := newKey(t)
	ls := lines(t, newRecord(t, 2, key))
	for _, tt := range []struct {
		name   string
		change func(*Signature)
		want   []found
		status SignatureStatus
	}{
		{"fail unknown algorithm", func(s *Signature) { s.Algorithm = "RSASSA_PSS_SHA_256" }, []found{{1, KindInvalid}}, SignatureInvalid},
		{"fail upper-case key id", func(s *Signature) { s.KeyId = "A1B2C3" }, []found{{1, KindInvalid}}, SignatureValid},
		{"fail value not base64", func(s *Signature) { s.Value = "not base64!" }, []found{{1, KindInvalid}, {1, KindBadSignature}}, SignatureInvalid},
		{"fail short key digest", func(s *Signature) { s.PublicKeySha256 = "abcd" }, []found{{1, KindInvalid}, {1, KindWrongKey}}, SignatureWrongKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first := edit(t, ls[0], func(e *Entry) { tt.change(e.Signature) })
			rep, _ := Verify(bytes.NewReader(join([][]byte{first, ls[1]})), &key.PublicKey)
			var got []found
			for _, p := range rep.Problems {
				got = append(got, found{p.Entry, p.Kind})
			}
			if !slices.Equal(got, tt.want) || rep.Entries[0].Signature != tt.status {
				t.Errorf("problems %v status %s, want %v %s\n%s", got, rep.Entries[0].Signature, tt.want, tt.status, rep)
			}
		})
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	key := newKey(t)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	good := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der384, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	for _, tt := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"ok P-256 public key", good, true},
		{"ok trailing whitespace", append(slices.Clone(good), "\n\n"...), true},
		{"fail not PEM", der, false},
		{"fail private key block", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), false},
		{"fail two blocks", append(slices.Clone(good), good...), false},
		{"fail P-384", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der384}), false},
		{"fail garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := ParsePublicKeyPEM(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && !pub.Equal(&key.PublicKey) {
				t.Error("parsed another key")
			}
		})
	}
}

func TestAllowUnsignedStillChecksSignedEntries(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "mixed.jsonl")
	w := openTest(t, path, nil) // the online host: no HSM, unsigned
	online := sampleEntry(1)
	online.Command, online.Token = "prepare", nil
	if _, err := w.Append(online); err != nil {
		t.Fatal(err)
	}
	w.Close()
	appendN(t, openTest(t, path, key), 2, 2) // the HSM host: signed
	ls := lines(t, path)
	b, head := join(ls), entryHash(ls[len(ls)-1])

	if rep, err := VerifyWith(bytes.NewReader(b), VerifyOptions{PublicKey: &key.PublicKey}); err == nil || rep.OK() {
		t.Fatal("without AllowUnsigned an unsigned entry must fail a signed check")
	}
	rep, err := VerifyWith(bytes.NewReader(b), VerifyOptions{PublicKey: &key.PublicKey, AllowUnsigned: true, ExpectHead: head})
	if err != nil || rep.Entries[0].Signature != SignatureNone || rep.Entries[1].Signature != SignatureValid {
		t.Fatalf("mixed record with AllowUnsigned: %v %+v", err, rep)
	}
	if _, err := VerifyWith(bytes.NewReader(b), VerifyOptions{PublicKey: &newKey(t).PublicKey, AllowUnsigned: true, ExpectHead: head}); err == nil {
		t.Fatal("AllowUnsigned must not accept an entry signed by another key")
	}
}

// TestAllowUnsignedRefusesUnsignedEntriesOfTokenCommands: an unsigned entry
// of a command that holds the HSM token (import, wrap, approve, audit-key
// create, and any command not known to run without one) is refused even
// with AllowUnsigned.
func TestAllowUnsignedRefusesUnsignedEntriesOfTokenCommands(t *testing.T) {
	key := newKey(t)
	for _, cmd := range []string{"import", "wrap", "approve", "audit-key create", "ceremony run", "renew", "rotate", "something-new"} {
		path := filepath.Join(t.TempDir(), "r.jsonl")
		appendN(t, openTest(t, path, key), 1, 2)
		w := openTest(t, path, nil)
		e := sampleEntry(3)
		e.Command = cmd
		if _, err := w.Append(e); err != nil {
			t.Fatal(err)
		}
		w.Close()
		ls := lines(t, path)
		rep, err := VerifyWith(bytes.NewReader(join(ls)), VerifyOptions{PublicKey: &key.PublicKey, AllowUnsigned: true, ExpectHead: entryHash(ls[2])})
		if err == nil || len(rep.Problems) != 1 || rep.Problems[0].Kind != KindUnsigned || rep.Problems[0].Entry != 3 || !strings.Contains(rep.Problems[0].Detail, "holds the HSM token") {
			t.Errorf("unsigned %q entry with AllowUnsigned: %v %+v", cmd, err, rep)
		}
	}
}

// TestAllowUnsignedCannotHideARechainedTail: the signed tail of a record
// replaced by unsigned entries of online commands, re-chained so the
// chain is intact, is refused: AllowUnsigned needs the head written down,
// and the re-chained tail does not end in it.
func TestAllowUnsignedCannotHideARechainedTail(t *testing.T) {
	key := newKey(t)
	path := newRecord(t, 4, key)
	ls := lines(t, path)
	head := entryHash(ls[3])

	// Cut the last two signed entries and re-chain two unsigned "upload"
	// entries after entry 2, as anyone with the file could.
	forged := filepath.Join(t.TempDir(), "forged.jsonl")
	if err := os.WriteFile(forged, join(ls[:2]), 0o600); err != nil {
		t.Fatal(err)
	}
	w := openTest(t, forged, nil)
	for i := 3; i <= 4; i++ {
		e := sampleEntry(i)
		e.Command, e.Token = "upload", nil
		if _, err := w.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	b := join(lines(t, forged))

	if _, err := VerifyWith(bytes.NewReader(b), VerifyOptions{PublicKey: &key.PublicKey, AllowUnsigned: true}); err == nil || !strings.Contains(err.Error(), "head") {
		t.Fatalf("AllowUnsigned without the head written down: %v, want it refused", err)
	}
	rep, err := VerifyWith(bytes.NewReader(b), VerifyOptions{PublicKey: &key.PublicKey, AllowUnsigned: true, ExpectHead: head, ExpectCount: 4})
	if err == nil || !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Kind == KindHead }) {
		t.Fatalf("re-chained unsigned tail: %v %+v, want a head problem", err, rep)
	}
	if strings.Contains(rep.String(), "the record verifies") {
		t.Errorf("the report says it verifies:\n%s", rep)
	}
}

// ownKeyRecord writes a record whose first entry is the audit key's
// birth, carrying its public key and signed by it, then n entries signed
// by it.
func ownKeyRecord(t *testing.T, key *ecdsa.PrivateKey, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "own.jsonl")
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := PublicKeySHA256(&key.PublicKey)
	w := openTest(t, path, key)
	if _, err := w.Append(Entry{Command: "audit-key create", Step: "audit-key-create", Inputs: map[string]string{"AuditKeyLabel": "audit"},
		Outputs: map[string]string{"AuditKeyId": "a1b2c3", "AuditPublicKeySha256": fp, "AuditPublicKey": base64.StdEncoding.EncodeToString(der)}, Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := w.Append(sampleEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return path
}

// TestVerifyAgainstTheRecordsOwnAuditKey: with no public key given, a
// record is checked against the audit key its own audit-key create entry
// carries, and the report names that key by fingerprint; a record with no
// such entry, or one unsigned, fails rather than "verifies".
func TestVerifyAgainstTheRecordsOwnAuditKey(t *testing.T) {
	key, other := newKey(t), newKey(t)
	fp, _ := PublicKeySHA256(&key.PublicKey)
	own := join(lines(t, ownKeyRecord(t, key, 3)))
	rep, err := VerifyWith(bytes.NewReader(own), VerifyOptions{OwnAuditKey: true})
	if err != nil || !rep.SignaturesChecked || len(rep.AuditKeys) != 1 || rep.AuditKeys[0].PublicKeySha256 != fp || rep.AuditKeys[0].Source != "entry 1" {
		t.Fatalf("own-key record: %v %+v", err, rep)
	}
	if out := rep.String(); !strings.Contains(out, fp) || !strings.Contains(out, "record's own audit key") || !strings.Contains(out, "the record verifies") {
		t.Errorf("report does not name the record's own key:\n%s", out)
	}
	if _, err := VerifyWith(bytes.NewReader(own), VerifyOptions{OwnAuditKey: true, ExpectAuditKey: strings.ToUpper(fp)}); err != nil {
		t.Errorf("own key as written down: %v", err)
	}
	otherFP, _ := PublicKeySHA256(&other.PublicKey)
	if rep, err := VerifyWith(bytes.NewReader(own), VerifyOptions{OwnAuditKey: true, ExpectAuditKey: otherFP}); err == nil || rep.Problems[0].Kind != KindAuditKey {
		t.Errorf("own key not the one written down: %v %+v", err, rep)
	}

	for name, file := range map[string][]byte{
		"signed without its key's birth": join(lines(t, newRecord(t, 3, key))),
		"unsigned":                       join(lines(t, newRecord(t, 3, nil))),
		"empty":                          nil,
	} {
		rep, err := VerifyWith(bytes.NewReader(file), VerifyOptions{OwnAuditKey: true})
		if err == nil || !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Kind == KindNoAuditKey }) || strings.Contains(rep.String(), "the record verifies") {
			t.Errorf("%s: %v %+v, want no-audit-key", name, err, rep)
		}
	}

	// An entry signed by another key than the record's own is refused.
	path := ownKeyRecord(t, key, 1)
	appendN(t, openTest(t, path, other), 2, 2)
	if rep, err := VerifyWith(bytes.NewReader(join(lines(t, path))), VerifyOptions{OwnAuditKey: true}); err == nil || rep.Problems[0].Kind != KindWrongKey || rep.Problems[0].Entry != 3 {
		t.Errorf("entry by a stranger key: %v %+v", err, rep)
	}

	// A birth entry whose public key was swapped for another is not the
	// record's key: its signature is by the original key.
	ls := lines(t, ownKeyRecord(t, key, 1))
	der, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	ls[0] = edit(t, ls[0], func(e *Entry) {
		e.Outputs["AuditPublicKey"] = base64.StdEncoding.EncodeToString(der)
		e.Outputs["AuditPublicKeySha256"] = otherFP
	})
	if _, err := VerifyWith(bytes.NewReader(join(ls)), VerifyOptions{OwnAuditKey: true}); err == nil {
		t.Error("a birth entry with a swapped public key was accepted")
	}
}

// TestChainOnlyNeverSaysVerifies: without any key (a chain-only check) an
// intact record is reported as an intact chain, never as verified.
func TestChainOnlyNeverSaysVerifies(t *testing.T) {
	rep, err := VerifyWith(bytes.NewReader(join(lines(t, newRecord(t, 2, newKey(t))))), VerifyOptions{})
	if err != nil || rep.SignaturesChecked {
		t.Fatalf("%v %+v", err, rep)
	}
	if out := rep.String(); strings.Contains(out, "the record verifies") || !strings.Contains(out, "no signature was checked") {
		t.Errorf("chain-only report:\n%s", out)
	}
}

// rechained returns ls with entry from (1-based) changed and every entry
// after it re-chained to it, as someone without the audit key can do:
// keeping the old signatures, which no longer cover what they sign.
func rechained(t *testing.T, ls [][]byte, from int) [][]byte {
	t.Helper()
	out := slices.Clone(ls)
	out[from-1] = edit(t, ls[from-1], func(e *Entry) { e.Operator = "mallory" })
	for i := from; i < len(out); i++ {
		prev := entryHash(out[i-1])
		out[i] = edit(t, ls[i], func(e *Entry) { e.Prev = prev })
	}
	return out
}
