package record

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenCreatesAnOwnerOnlyRecordAndAppendChainsEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ceremony.jsonl")
	w := openTest(t, path, nil)
	defer w.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %o, want 600", perm)
	}
	if w.Count() != 0 || w.Head() != GenesisPrev {
		t.Errorf("new record: count %d head %s, want 0 and the genesis value", w.Count(), w.Head())
	}
	first, err := w.Append(sampleEntry(1))
	if err != nil {
		t.Fatal(err)
	}
	second, err := w.Append(sampleEntry(2))
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if first.Version != Format || first.Seq != 1 || first.Prev != GenesisPrev || first.Time != "2026-05-04T09:30:01.000Z" {
		t.Errorf("first entry %+v", first)
	}
	if first.Operator != "alice" || first.Host != "ceremony-laptop" || first.Signature != nil {
		t.Errorf("first entry operator %q host %q signature %v", first.Operator, first.Host, first.Signature)
	}
	if second.Seq != 2 || second.Prev != entryHash(ls[0]) {
		t.Errorf("second entry Seq %d Prev %s, want 2 and the first line's SHA-256", second.Seq, second.Prev)
	}
	if w.Count() != 2 || w.Head() != entryHash(ls[1]) {
		t.Errorf("count %d head %s, want 2 and the second line's SHA-256", w.Count(), w.Head())
	}
	// What Append returns is what was written.
	if got, _ := second.line(); !bytes.Equal(got, ls[1]) {
		t.Errorf("returned entry encodes as\n%s\nbut the file has\n%s", got, ls[1])
	}
}

func TestAppendKeepsTheOperatorAndHostTheEntryNames(t *testing.T) {
	w := openTest(t, filepath.Join(t.TempDir(), "r.jsonl"), nil)
	defer w.Close()
	e := sampleEntry(1)
	e.Operator, e.Host = "bob (second officer)", "hsm-host"
	got, err := w.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Operator != e.Operator || got.Host != e.Host {
		t.Errorf("operator %q host %q, want the entry's", got.Operator, got.Host)
	}
}

func TestOpenDefaultsToTheOSUserAndTheClock(t *testing.T) {
	w, err := Open(filepath.Join(t.TempDir(), "r.jsonl"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	host, _ := os.Hostname()
	if w.Operator == "" || w.Operator != osUser() || w.Host != host {
		t.Errorf("operator %q host %q, want the OS user %q and host %q", w.Operator, w.Host, osUser(), host)
	}
	before := time.Now().UTC().Truncate(time.Millisecond)
	e, err := w.Append(sampleEntry(1))
	if err != nil {
		t.Fatal(err)
	}
	if at, err := time.Parse(TimeFormat, e.Time); err != nil || at.Before(before) || at.After(time.Now()) {
		t.Errorf("time %s, want now in UTC (%v)", e.Time, err)
	}
}

func TestOpenContinuesAnExistingRecordWithoutRewritingIt(t *testing.T) {
	key := newKey(t)
	path := newRecord(t, 3, key)
	before, _ := os.ReadFile(path)
	w := openTest(t, path, key)
	if w.Count() != 3 || w.Head() != entryHash(lines(t, path)[2]) {
		t.Errorf("reopened: count %d head %s", w.Count(), w.Head())
	}
	e, err := w.Append(sampleEntry(4))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	after, _ := os.ReadFile(path)
	if !bytes.HasPrefix(after, before) {
		t.Fatal("the existing entries changed")
	}
	if e.Seq != 4 || e.Prev != entryHash(lines(t, path)[2]) {
		t.Errorf("appended Seq %d Prev %s, want 4 chained to entry 3", e.Seq, e.Prev)
	}
	if _, err := Verify(bytes.NewReader(after), &key.PublicKey); err != nil {
		t.Error(err)
	}
}

func TestOpenRefusesABrokenRecord(t *testing.T) {
	ls := lines(t, newRecord(t, 4, nil))
	for _, tt := range []struct {
		name  string
		file  []byte
		entry int
		kind  Kind
	}{
		{"fail edited entry", join([][]byte{ls[0], edit(t, ls[1], func(e *Entry) { e.Step = "x" }), ls[2], ls[3]}), 3, KindChain},
		{"fail deleted entry", join([][]byte{ls[0], ls[2], ls[3]}), 2, KindSeq},
		{"fail interrupted write", join(ls)[:len(join(ls))-10], 4, KindTruncated},
		{"fail not a record", []byte("hello\n"), 1, KindMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.jsonl")
			if err := os.WriteFile(path, tt.file, 0o600); err != nil {
				t.Fatal(err)
			}
			w, err := Open(path, nil, nil)
			if err == nil {
				w.Close()
				t.Fatal("opened a broken record")
			}
			var verr *VerifyError
			if !errors.As(err, &verr) || verr.Problems[0].Entry != tt.entry || verr.Problems[0].Kind != tt.kind {
				t.Fatalf("got %v, want entry %d %s first", err, tt.entry, tt.kind)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tt.file) {
				t.Error("the refused record was changed")
			}
		})
	}
}

func TestOpenRefusesARecordAnotherWriterHolds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w := openTest(t, path, nil)
	if _, err := Open(path, nil, nil); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: got %v, want ErrLocked", err)
	}
	w.Close()
	w2, err := Open(path, nil, nil)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	w2.Close()
}

func TestOpenRefusesWhatIsNotAFile(t *testing.T) {
	if _, err := Open(t.TempDir(), nil, nil); err == nil {
		t.Error("opened a directory as a record")
	}
}

func TestOpenRefusesASignerThatCannotBeAnAuditKey(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tt := range []struct {
		name   string
		signer crypto.Signer
		id     []byte
	}{
		{"fail Ed25519 key", edKey, []byte{1}},
		{"fail P-384 key", p384, []byte{1}},
		{"fail no CKA_ID", newKey(t), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.jsonl")
			if w, err := Open(path, tt.signer, tt.id); err == nil {
				w.Close()
				t.Fatal("accepted")
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Error("a refused Open created the record")
			}
		})
	}
}

func TestAppendSignsWithTheAuditKey(t *testing.T) {
	key := newKey(t)
	w := openTest(t, filepath.Join(t.TempDir(), "r.jsonl"), key)
	defer w.Close()
	e, err := w.Append(sampleEntry(1))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := PublicKeySHA256(&key.PublicKey)
	if s := e.Signature; s == nil || s.Algorithm != AlgorithmECDSAP256SHA256 || s.KeyId != "a1b2c3" || s.PublicKeySha256 != want {
		t.Fatalf("signature %+v", e.Signature)
	}
	signed, _ := e.SignedBytes()
	digest := sha256.Sum256(signed)
	sig, _ := base64.StdEncoding.DecodeString(e.Signature.Value)
	if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
		t.Error("signature does not verify over SHA-256 of the signed bytes")
	}
}

// badSigner signs with a key other than the one it claims.
type badSigner struct{ claimed, real *ecdsa.PrivateKey }

func (s badSigner) Public() crypto.PublicKey { return &s.claimed.PublicKey }
func (s badSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.real.Sign(r, d, o)
}

// failingSigner is a token that refuses to sign.
type failingSigner struct{ *ecdsa.PrivateKey }

func (s failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("C_Sign: CKR_DEVICE_REMOVED (0x32)")
}

func TestAppendWritesNothingWhenSigningFails(t *testing.T) {
	for _, tt := range []struct {
		name   string
		signer crypto.Signer
	}{
		{"fail signature by another key", badSigner{newKey(t), newKey(t)}},
		{"fail token error", failingSigner{newKey(t)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.jsonl")
			w, err := Open(path, tt.signer, []byte{1})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if _, err := w.Append(sampleEntry(1)); err == nil {
				t.Fatal("appended")
			}
			if b, _ := os.ReadFile(path); len(b) != 0 || w.Count() != 0 {
				t.Errorf("wrote %q", b)
			}
		})
	}
}

func TestAppendRefusesSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w := openTest(t, path, nil)
	defer w.Close()
	for _, name := range []string{"Pin", "UserPIN", "PINFile", "so_pin", "Password", "Passphrase", "SecretKey", "KeyMaterial", "Plaintext", "ImportToken", "import-token"} {
		for _, where := range []string{"Inputs", "Outputs"} {
			e := sampleEntry(1)
			if where == "Inputs" {
				e.Inputs[name] = "x"
			} else {
				e.Outputs[name] = "x"
			}
			if _, err := w.Append(e); err == nil {
				t.Errorf("%s name %q accepted", where, name)
			}
		}
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("refused entries were written: %q", b)
	}
}

func TestAppendRefusesEntriesTheFormatDoesNotAllow(t *testing.T) {
	w := openTest(t, filepath.Join(t.TempDir(), "r.jsonl"), nil)
	defer w.Close()
	for _, tt := range []struct {
		name   string
		change func(*Entry)
	}{
		{"fail no command", func(e *Entry) { e.Command = "" }},
		{"fail no outcome", func(e *Entry) { e.Outcome = "" }},
		{"fail unknown outcome", func(e *Entry) { e.Outcome = "partial" }},
		{"fail error without error outcome", func(e *Entry) { e.Error = "boom" }},
		{"fail error outcome without error", func(e *Entry) { e.Outcome = OutcomeError }},
		{"fail invalid UTF-8", func(e *Entry) { e.Step = "\xff" }},
		{"fail invalid UTF-8 in an input", func(e *Entry) { e.Inputs["KeyId"] = "\xfe" }},
		{"fail empty input name", func(e *Entry) { e.Inputs[""] = "x" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEntry(1)
			tt.change(&e)
			if _, err := w.Append(e); err == nil {
				t.Error("appended")
			}
		})
	}
	e := sampleEntry(1)
	e.Outcome, e.Error = OutcomeError, "C_WrapKey: CKR_KEY_UNEXTRACTABLE (0x6a)"
	if _, err := w.Append(e); err != nil {
		t.Errorf("a failed step must be recordable: %v", err)
	}
}

func TestAppendFillsWhatTheCallerMayNotSet(t *testing.T) {
	w := openTest(t, filepath.Join(t.TempDir(), "r.jsonl"), nil)
	defer w.Close()
	e := sampleEntry(1)
	e.Version, e.Seq, e.Time, e.Prev = "forged", 99, "1999-01-01T00:00:00.000Z", hashHex(nil)
	e.Signature = &Signature{Algorithm: "forged"}
	got, err := w.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != Format || got.Seq != 1 || got.Time == e.Time || got.Prev != GenesisPrev || got.Signature != nil {
		t.Errorf("caller's values kept: %+v", got)
	}
}

func TestAppendCopiesTheCallersMaps(t *testing.T) {
	w := openTest(t, filepath.Join(t.TempDir(), "r.jsonl"), nil)
	defer w.Close()
	e := sampleEntry(1)
	e.Inputs, e.Outputs = nil, nil
	got, err := w.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Inputs == nil || got.Outputs == nil {
		t.Fatal("nil maps must be written as {}")
	}
	in := map[string]string{"KeyId": "k"}
	e.Inputs = in
	got, _ = w.Append(e)
	in["KeyId"] = "changed"
	if got.Inputs["KeyId"] != "k" {
		t.Error("the returned entry shares the caller's map")
	}
}

func TestAppendAfterAFailedWriteIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w := openTest(t, path, nil)
	defer w.Close()
	w.f.Close() // the disk goes away under the writer
	if _, err := w.Append(sampleEntry(1)); err == nil {
		t.Fatal("write to a closed file succeeded")
	}
	if _, err := w.Append(sampleEntry(2)); err == nil || !bytes.Contains([]byte(err.Error()), []byte("could not be written earlier")) {
		t.Errorf("got %v, want a refusal naming the earlier failure", err)
	}
}

func TestAppendAfterCloseIsRefused(t *testing.T) {
	w := openTest(t, filepath.Join(t.TempDir(), "r.jsonl"), nil)
	w.Close()
	if _, err := w.Append(sampleEntry(1)); err == nil {
		t.Error("appended after Close")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestAppendNamesTheBuildThatWroteTheEntry(t *testing.T) {
	path := t.TempDir() + "/r.jsonl"
	w := openTest(t, path, nil)
	w.Tool = ToolInfo{Version: "v0.1.0", Commit: "201932f0123456789abcdef0123456789abcdef0"}
	if _, err := w.Append(sampleEntry(1)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line := string(lines(t, path)[0])
	if !strings.Contains(line, `"Tool":{"Commit":"201932f0123456789abcdef0123456789abcdef0","Version":"v0.1.0"}`) || !strings.Contains(line, `"Version":"kmsbridge-record/3"`) {
		t.Errorf("entry %s does not name the build in Tool", line)
	}
	if rep, err := VerifyWith(strings.NewReader(line+"\n"), VerifyOptions{AllowUnsigned: true}); err != nil {
		t.Errorf("the entry does not verify: %v\n%s", err, rep)
	}
}

func TestOpenSetsTheRunningBuild(t *testing.T) {
	w := openTest(t, t.TempDir()+"/r.jsonl", nil)
	defer w.Close()
	if w.Tool.Version == "" {
		t.Errorf("Open left Tool.Version empty")
	}
}

// TestFormat1RecordsVerifyAndContinue: a record begun by a kmsbridge that
// wrote kmsbridge-record/1 (no Tool) still verifies, and new entries follow
// it in the current format.
func TestFormat1RecordsVerifyAndContinue(t *testing.T) {
	path := t.TempDir() + "/r.jsonl"
	v1 := sampleEntry(1)
	v1.Version, v1.Seq, v1.Time, v1.Prev, v1.Operator, v1.Host = FormatV1, 1, "2026-05-04T09:30:00.000Z", GenesisPrev, "alice", "hsm-host"
	line, err := v1.line()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(line), "Tool") {
		t.Fatalf("a format 1 line names a Tool: %s", line)
	}
	if err := os.WriteFile(path, append(line, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	w := openTest(t, path, nil)
	appendN(t, w, 2, 2)
	w.Close()
	f, _ := os.Open(path)
	defer f.Close()
	rep, err := VerifyWith(f, VerifyOptions{AllowUnsigned: true})
	if err != nil || rep.Count != 2 {
		t.Fatalf("mixed record: %v, %d entries\n%s", err, rep.Count, rep)
	}
	if got := rep.Entries[1].Parsed; got.Version != Format || got.Tool == nil {
		t.Errorf("the appended entry is %+v, want format %s with a Tool", got, Format)
	}
}
