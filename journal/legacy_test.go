package journal

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalWithoutAccountIsAdoptedOnce: a journal an earlier kmsbridge
// kept under a scope without the account (Region, endpoint, profile) is
// taken over by the scope with the account: its unfinished intent is
// found (so a re-run finishes rather than creates twice), the old file is
// kept as <name>.adopted, the adoption is a note in the journal, and it
// happens once. A second old journal of the same account (another
// profile) is merged into the existing new one.
func TestJournalWithoutAccountIsAdoptedOnce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	oldScope := Scope{TokenSerial: "tok1", Target: "eu-west-1@aws@ops"}
	old2Scope := Scope{TokenSerial: "tok1", Target: "eu-west-1@aws@audit"}
	mk := func(s Scope, op string) string {
		j, err := Open(ctx, dir, s)
		if err != nil {
			t.Fatal(err)
		}
		p, err := j.Intend(Intent{Command: "import", Op: op})
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		return p.Attempt()
	}
	a1 := mk(oldScope, "create-key")
	// A torn last line (a crash of the old version) stays as evidence.
	oldPath := filepath.Join(dir, oldScope.FileName())
	f, _ := os.OpenFile(oldPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"kind":"int`)
	f.Close()

	newScope := Scope{TokenSerial: "tok1", Target: "eu-west-1@aws@111122223333", Legacy: []string{oldScope.Target}}
	j, err := Open(ctx, dir, newScope)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Adopted) != 1 || j.Adopted[0] != oldPath {
		t.Fatalf("Adopted = %q, want [%s]", j.Adopted, oldPath)
	}
	if u := j.Unsettled("create-key", nil); len(u) != 1 || u[0].Attempt != a1 {
		t.Fatalf("Unsettled after adoption = %+v, want the old intent %s", u, a1)
	}
	notes := 0
	for _, e := range j.Entries() {
		if e.Op == "adopted-journal" && e.Facts["From"] == oldPath {
			notes++
		}
	}
	if notes != 1 {
		t.Fatalf("%d adopted-journal notes, want 1", notes)
	}
	j.Close()
	if _, err := os.Lstat(oldPath); !os.IsNotExist(err) {
		t.Fatalf("the old journal is still under its name: %v", err)
	}
	if b, err := os.ReadFile(oldPath + adoptedSuffix); err != nil || !strings.Contains(string(b), a1) || !strings.HasSuffix(string(b), `{"kind":"int`) {
		t.Fatalf("the old journal is not kept whole as evidence: %q, %v", b, err)
	}

	// Once: opening again adopts nothing and finds the intent once.
	j, err = Open(ctx, dir, newScope)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Adopted) != 0 || len(j.Unsettled("create-key", nil)) != 1 {
		t.Fatalf("second open: Adopted %q, unsettled %d; want none and 1", j.Adopted, len(j.Unsettled("create-key", nil)))
	}
	j.Close()

	// Another profile's old journal of the same account joins the new one.
	a2 := mk(old2Scope, "import-key-material")
	newScope.Legacy = []string{old2Scope.Target}
	j, err = Open(ctx, dir, newScope)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if len(j.Adopted) != 1 || len(j.Unsettled("create-key", nil)) != 1 || len(j.Unsettled("import-key-material", nil)) != 1 || j.Unsettled("import-key-material", nil)[0].Attempt != a2 {
		t.Fatalf("merge: Adopted %q, unsettled create-key %d, import %v", j.Adopted, len(j.Unsettled("create-key", nil)), j.Unsettled("import-key-material", nil))
	}
}

// TestLegacyJournalThatIsNotAJournalIsRefused: an old-named file that is
// not a journal is not merged, and nothing is changed.
func TestLegacyJournalThatIsNotAJournalIsRefused(t *testing.T) {
	dir := t.TempDir()
	old := Scope{TokenSerial: "tok1", Target: "eu-west-1@aws"}
	if err := os.WriteFile(filepath.Join(dir, old.FileName()), []byte("not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir, Scope{TokenSerial: "tok1", Target: "eu-west-1@aws@111122223333", Legacy: []string{old.Target}})
	if err == nil || !strings.Contains(err.Error(), "could not be taken over") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Open: %v, want the old file refused", err)
	}
	if _, err := os.Stat(filepath.Join(dir, old.FileName())); err != nil {
		t.Fatalf("the old file moved: %v", err)
	}
}

// A refused take-over changes nothing in the state directory: the new
// scope's journal file is not left behind (a symlinked old journal, as a
// local attacker would plant, is refused before anything is read).
func TestRefusedLegacyJournalLeavesNoNewFile(t *testing.T) {
	dir := t.TempDir()
	old := Scope{TokenSerial: "tok1", Target: "eu-west-1@aws"}
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, old.FileName())); err != nil {
		t.Fatal(err)
	}
	scope := Scope{TokenSerial: "tok1", Target: "eu-west-1@aws@111122223333", Legacy: []string{old.Target}}
	if _, err := Open(context.Background(), dir, scope); err == nil {
		t.Fatal("Open took over a symlinked journal")
	}
	if _, err := os.Lstat(filepath.Join(dir, scope.FileName())); !os.IsNotExist(err) {
		t.Fatalf("the refused open left %s behind (%v)", scope.FileName(), err)
	}
}
