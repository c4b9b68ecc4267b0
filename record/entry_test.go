package record

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"ok key id", true},
		{"KeyId", true},
		{"ImportTokenSha256", true},
		{"import_token_sha256", true},
		{"WrappedMaterialSha256", true},
		{"MaterialDigest", true},
		{"TokenLabel", true},
		{"TokenSerial", true},
		{"PublicKeyFingerprint", true},
		{"KeyMapping", true}, // "pin" inside a word is not the word
		{"Spinner", true},
		{"WrappingAlgorithm", true},
		{"Pin", false},
		{"PIN", false},
		{"PINFile", false},
		{"UserPin", false},
		{"so-pin", false},
		{"Password", false},
		{"Passphrase", false},
		{"ClientSecret", false},
		{"KeyMaterial", false},
		{"MaterialLength", false},
		{"Plaintext", false},
		{"ImportToken", false},
		{"import token", false},
		{"", false},
	} {
		err := CheckName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestWords(t *testing.T) {
	for in, want := range map[string][]string{
		"ImportTokenSha256": {"import", "token", "sha256"},
		"PINFile":           {"pin", "file"},
		"KeyID":             {"key", "id"},
		"so_pin":            {"so", "pin"},
		"Key2Label":         {"key2", "label"},
	} {
		if got := words(in); !slices.Equal(got, want) {
			t.Errorf("words(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSignedBytesAreTheEntryWithoutItsSignature re-derives the signed bytes
// the way the package documentation tells an auditor to: parse the line,
// drop Signature, serialise with sorted keys and no whitespace.
func TestSignedBytesAreTheEntryWithoutItsSignature(t *testing.T) {
	key := newKey(t)
	w := openTest(t, t.TempDir()+"/r.jsonl", key)
	e := sampleEntry(1)
	e.Operator = "Zoë Ødegård <officer & witness>"
	e.Error, e.Outcome = "line one\nline \"two\"\t\\ \x01", OutcomeError
	got, err := w.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, _ := got.line()
	signed, _ := got.SignedBytes()

	var obj map[string]any
	if err := json.Unmarshal(line, &obj); err != nil {
		t.Fatal(err)
	}
	delete(obj, "Signature")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		t.Fatal(err)
	}
	// Go writes \u0001 as JCS does; it differs from JCS only on U+2028,
	// U+2029 and invalid UTF-8, which this entry does not have.
	if want := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(signed, want) {
		t.Errorf("signed bytes\n%s\nre-derived\n%s", signed, want)
	}
	if !bytes.Contains(line, []byte(`"Operator":"Zoë Ødegård <officer & witness>"`)) {
		t.Errorf("non-ASCII and <&> must be written literally: %s", line)
	}

	// The documented Python recipe gives the same bytes.
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: the documented recipe is not cross-checked")
	}
	cmd := exec.Command(py, "-c", `import json,sys
o=json.loads(sys.stdin.buffer.read()); o.pop("Signature",None)
sys.stdout.buffer.write(json.dumps(o,sort_keys=True,separators=(",",":"),ensure_ascii=False).encode())`)
	cmd.Stdin = bytes.NewReader(line)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	if !bytes.Equal(out, signed) {
		t.Errorf("python3 recipe gives\n%s\nwant\n%s", out, signed)
	}
}

func TestUnsignedLineIsItsOwnSignedBytes(t *testing.T) {
	w := openTest(t, t.TempDir()+"/r.jsonl", nil)
	got, err := w.Append(sampleEntry(1))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, _ := got.line()
	signed, _ := got.SignedBytes()
	if !bytes.Equal(line, signed) {
		t.Errorf("line %s\nsigned %s", line, signed)
	}
}

func TestTokenSlotIsADecimalString(t *testing.T) {
	e := sampleEntry(1)
	e.Token.Slot = 1<<64 - 1
	w := openTest(t, t.TempDir()+"/r.jsonl", nil)
	got, err := w.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, _ := got.line()
	if !strings.Contains(string(line), `"Slot":"18446744073709551615"`) {
		t.Errorf("slot not a decimal string: %s", line)
	}
}

func TestEntryWithoutATokenVerifies(t *testing.T) {
	path := t.TempDir() + "/r.jsonl"
	w := openTest(t, path, nil)
	e := sampleEntry(1)
	e.Token = nil
	if _, err := w.Append(e); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ls := lines(t, path)
	if !bytes.Contains(ls[0], []byte(`"Token":null`)) {
		t.Errorf("no token must be written as null: %s", ls[0])
	}
	if _, err := Verify(bytes.NewReader(join(ls)), nil); err != nil {
		t.Error(err)
	}
}

// TestWithSignatureIsTheLine: the signed bytes Append makes (the draft
// with Seq, Time and Prev put in place) are the canonical JSON of the
// entry without its signature, and the line it writes (those bytes with
// the Signature member spliced in) is byte for byte the canonical JSON of
// the signed entry, whatever the entry's names and values hold: members
// named Step, Seq, Prev, Time or Signature in Inputs and Outputs, values
// that spell the placeholders or a member's text, names that sort around
// Signature.
func TestWithSignatureIsTheLine(t *testing.T) {
	tricky := []string{"Step", "Seq", "Signature", "Signaturf", "Sig", "Steq", `,"Step":`, `"Step":"x"`, "\U0001F600", "\uff61", "é", "",
		"Prev", "Time", GenesisPrev, draftTime, `,"Seq":0,`, `,"Prev":"` + GenesisPrev + `"`, `,"Time":"` + draftTime + `"`}
	sig := &Signature{Algorithm: AlgorithmECDSAP256SHA256, KeyId: "a1b2", PublicKeySha256: strings.Repeat("ab", 32), Value: "MEUCIQ=="}
	n := 0
	for i, k := range tricky {
		for j, v := range tricky {
			e := sampleEntry(i)
			e.Version = Format
			e.Tool = &ToolInfo{Version: v, Commit: ""}
			e.Step = v
			e.Error = k
			if k != "" {
				e.Inputs[k] = v
				e.Outputs[k+"Sha256"] = v
			}
			// The draft, with placeholders, then chained as Append does.
			e.Seq, e.Time, e.Prev = 0, draftTime, GenesisPrev
			draft, err := e.SignedBytes()
			if err != nil {
				t.Fatal(err)
			}
			e.Seq, e.Time, e.Prev = int64(i*1000+j+1), "2026-12-07T19:00:00.123Z", strings.Repeat("ab", 32)
			signed, err := chained(draft, e.Seq, e.Time, e.Prev)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := e.SignedBytes(); !bytes.Equal(signed, want) {
				t.Fatalf("chained, member %q, value %q:\n got %s\nwant %s", k, v, signed, want)
			}
			got, err := withSignature(signed, sig)
			if err != nil {
				t.Fatal(err)
			}
			e.Signature = sig
			want, err := e.line()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("member %q, value %q:\n got %s\nwant %s", k, v, got, want)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("nothing compared")
	}
}
