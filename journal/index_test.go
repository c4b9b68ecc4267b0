package journal

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLookupsAfterReopen checks the indexed lookups against what the
// entries say, on a journal written by one Journal and read by another:
// the first outcome of an attempt wins, an unknown outcome leaves an
// intent unsettled until a later one settles it, lookups are newest first
// and by operation, and a match function may call the journal.
func TestLookupsAfterReopen(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	var attempts []string
	for i := 0; i < 30; i++ {
		op := "CreateKey"
		if i%2 == 1 {
			op = "ImportKeyMaterial"
		}
		p, err := j.Intend(Intent{Command: "import", Op: op, Target: map[string]string{"N": fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		attempts = append(attempts, p.Attempt())
		switch i % 3 {
		case 0: // settled
			if err := p.Done(ResultOK, map[string]string{"N": fmt.Sprint(i)}, nil); err != nil {
				t.Fatal(err)
			}
		case 1: // unknown, then settled by a later outcome
			if err := p.Done(ResultUnknown, nil, nil); err != nil {
				t.Fatal(err)
			}
			if i%4 == 1 {
				if err := p.Done(ResultFailed, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	j.Close()
	j2 := open(t, dir)

	for i, a := range attempts {
		out, ok := j2.Outcome(a)
		switch {
		case i%3 == 0 && (!ok || out.Result != ResultOK):
			t.Errorf("attempt %d: outcome %+v %v, want ok", i, out, ok)
		case i%3 == 1 && (!ok || out.Result != ResultUnknown):
			t.Errorf("attempt %d: outcome %+v %v, want the first outcome, unknown", i, out, ok)
		case i%3 == 2 && ok:
			t.Errorf("attempt %d: outcome %+v, want none", i, out)
		}
	}
	for _, op := range []string{"CreateKey", "ImportKeyMaterial"} {
		var want, wantUnsettled []string
		for i := len(attempts) - 1; i >= 0; i-- {
			if (op == "CreateKey") != (i%2 == 0) {
				continue
			}
			want = append(want, attempts[i])
			if i%3 == 2 || i%3 == 1 && i%4 != 1 {
				wantUnsettled = append(wantUnsettled, attempts[i])
			}
		}
		if got := attemptsOf(j2.Intents(op, nil)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Intents(%s) = %v, want %v", op, got, want)
		}
		// The match function asks the journal itself.
		got := attemptsOf(j2.Unsettled(op, func(e Entry) bool {
			out, ok := j2.Outcome(e.Attempt)
			return !ok || out.Result != ResultOK
		}))
		if fmt.Sprint(got) != fmt.Sprint(wantUnsettled) {
			t.Errorf("Unsettled(%s) = %v, want %v", op, got, wantUnsettled)
		}
	}
	if got := j2.Intents("DeleteImportedKeyMaterial", nil); len(got) != 0 {
		t.Errorf("Intents of an operation never called = %v", got)
	}
}

func attemptsOf(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Attempt)
	}
	return out
}

// BenchmarkOpenLargeJournal opens a journal of the size 12,500 imported
// keys leave (eight entries each) and looks up one label's generation, as
// an import whose label is taken does: what every run on a token with a
// long history pays.
func BenchmarkOpenLargeJournal(b *testing.B) {
	dir := b.TempDir()
	const keys = 12500
	f, err := os.OpenFile(filepath.Join(dir, scope.FileName()), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	now := time.Now().UTC()
	for k := 0; k < keys; k++ {
		label := fmt.Sprintf("tenant-%05d", k)
		for _, op := range []string{"C_GenerateKey", "CreateKey", "ImportKeyMaterial", "CreateAlias"} {
			a := NewAttemptID()
			target := map[string]string{"KeyLabel": label, "TokenSerial": scope.TokenSerial, "KmsKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}
			for _, e := range []Entry{
				{Kind: KindIntent, Attempt: a, Time: now, Command: "import", Op: op, Target: target},
				{Kind: KindOutcome, Attempt: a, Time: now, Command: "import", Op: op, Target: target, Result: ResultOK, Facts: map[string]string{"HsmKeyId": "00112233445566778899aabbccddeeff"}},
			} {
				if err := enc.Encode(e); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j, err := Open(context.Background(), dir, scope)
		if err != nil {
			b.Fatal(err)
		}
		in := j.Intents("C_GenerateKey", func(e Entry) bool { return e.Target["KeyLabel"] == "tenant-06250" })
		if len(in) != 1 {
			b.Fatalf("found %d generations of tenant-06250", len(in))
		}
		if _, ok := j.Outcome(in[0].Attempt); !ok {
			b.Fatal("no outcome")
		}
		j.Close()
	}
}
