package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var scope = Scope{TokenSerial: "abc123", Target: "us-east-1@127.0.0.1:4599"}

func open(t *testing.T, dir string) *Journal {
	t.Helper()
	j, err := Open(context.Background(), dir, scope)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestIntentWithoutOutcomeIsUnsettledAfterReopen(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	p, err := j.Intend(Intent{Command: "import", Op: "CreateKey", Find: map[string]string{"tag:kmsbridge:attempt": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := j.Intend(Intent{Command: "import", Op: "CreateKey"})
	if err := done.Done(ResultOK, map[string]string{"KmsKeyId": "k1"}, nil); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j2 := open(t, dir)
	got := j2.Unsettled("CreateKey", nil)
	if len(got) != 1 || got[0].Attempt != p.Attempt() || got[0].Find["tag:kmsbridge:attempt"] != "x" {
		t.Fatalf("unsettled = %+v, want only the intent without outcome", got)
	}
}

func TestUnknownOutcomeStaysUnsettled(t *testing.T) {
	j := open(t, t.TempDir())
	p, _ := j.Intend(Intent{Op: "ImportKeyMaterial"})
	if err := p.Done(ResultUnknown, nil, errors.New("connection reset")); err != nil {
		t.Fatal(err)
	}
	if n := len(j.Unsettled("ImportKeyMaterial", nil)); n != 1 {
		t.Fatalf("%d unsettled, want 1", n)
	}
}

func TestFileIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j := open(t, dir)
	for path, want := range map[string]os.FileMode{dir: 0o700, j.Path(): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
}

func TestTornLineIsKeptAsEvidenceAndNoted(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	if _, err := j.Intend(Intent{Op: "CreateKey"}); err != nil {
		t.Fatal(err)
	}
	path := j.Path()
	j.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"kind":"intent","att`)
	f.Close()
	j2 := open(t, dir)
	if j2.Torn == "" {
		t.Fatal("torn line not reported")
	}
	b, err := os.ReadFile(j2.Torn)
	if err != nil || string(b) != `{"kind":"intent","att` {
		t.Fatalf("evidence %q, %v", b, err)
	}
	es := j2.Entries()
	if len(es) != 2 || es[1].Kind != KindNote || es[1].Facts["MovedTo"] != j2.Torn {
		t.Fatalf("entries %+v: want the intent and a note naming the evidence", es)
	}
}

func TestSecondOpenWaitsForTheFirst(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, dir, scope); err == nil || !strings.Contains(err.Error(), "another kmsbridge") {
		t.Fatalf("Open while another holds the journal: %v", err)
	}
	j.Close()
	j2, err := Open(ctx, dir, scope)
	if err != nil {
		t.Fatalf("Open after the first closed: %v", err)
	}
	j2.Close()
}

func TestMirrorFailureFailsTheIntent(t *testing.T) {
	j := open(t, t.TempDir())
	j.SetMirror(func(Entry) error { return errors.New("disk full") })
	if _, err := j.Intend(Intent{Op: "CreateKey"}); err == nil || !strings.Contains(err.Error(), "was not called") {
		t.Fatalf("Intend with a failing mirror: %v", err)
	}
}

func TestNilJournalRecordsNothing(t *testing.T) {
	var j *Journal
	p, err := j.Intend(Intent{Op: "CreateKey"})
	if err != nil || p.Attempt() == "" {
		t.Fatalf("nil journal intent: %v %q", err, p.Attempt())
	}
	if err := p.Done(ResultOK, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestScopeFileNameIsOnePathElement(t *testing.T) {
	n := Scope{TokenSerial: "../x", Target: "us-east-1@http://h:1/p"}.FileName()
	if strings.Contains(n, "/") || strings.HasPrefix(n, ".") {
		t.Fatalf("file name %q", n)
	}
}
