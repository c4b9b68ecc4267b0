package journal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ReadToken reads every journal of one token, with its archive, and
// changes nothing: no lock file, no cut of a torn line, no compaction.
func TestReadTokenReadsWithoutChanging(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, target := range []string{"gcp-p-l@127.0.0.1:9", "azure@vault.example"} {
		j, err := Open(ctx, dir, Scope{TokenSerial: "tok1", Target: target})
		if err != nil {
			t.Fatal(err)
		}
		p, err := j.Intend(Intent{Command: "import", Op: "Op-" + target, Target: map[string]string{"K": target}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Done(ResultOK, nil, nil); err != nil {
			t.Fatal(err)
		}
		j.Close()
	}
	// Another token's journal is not read.
	other, err := Open(ctx, dir, Scope{TokenSerial: "tok2", Target: "azure@vault.example"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Intend(Intent{Command: "import", Op: "Other"}); err != nil {
		t.Fatal(err)
	}
	other.Close()
	// A torn last line is skipped, not cut.
	torn := filepath.Join(dir, Scope{TokenSerial: "tok1", Target: "azure@vault.example"}.FileName())
	f, _ := os.OpenFile(torn, os.O_APPEND|os.O_WRONLY, 0o600)
	f.WriteString(`{"kind":"intent","att`)
	f.Close()
	before := listing(t, dir)

	got, errs := ReadToken(ctx, dir, "tok1", func(e Entry) bool { return e.Kind == KindIntent })
	if len(errs) != 0 || len(got) != 2 {
		t.Fatalf("ReadToken: %d journals, errors %v", len(got), errs)
	}
	for _, r := range got {
		if len(r.Entries) != 1 || !strings.HasPrefix(r.Entries[0].Op, "Op-") {
			t.Errorf("%s: entries %+v", r.FileName, r.Entries)
		}
	}
	if after := listing(t, dir); after != before {
		t.Errorf("the state directory changed:\n%s\n%s", before, after)
	}

	// A line that is not an entry, followed by others, fails that
	// journal only.
	os.WriteFile(torn, []byte("not json\n{\"kind\":\"note\"}\n"), 0o600)
	got, errs = ReadToken(ctx, dir, "tok1", nil)
	if len(got) != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "line 1 is not a journal entry") {
		t.Errorf("bad journal: %d read, errors %v", len(got), errs)
	}
	// No state directory: no journals, no error.
	if got, errs := ReadToken(ctx, filepath.Join(dir, "none"), "tok1", nil); len(got) != 0 || len(errs) != 0 {
		t.Errorf("missing dir: %v %v", got, errs)
	}
}

func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fi, _ := e.Info()
		b.WriteString(fmt.Sprintln(e.Name(), fi.ModTime(), fi.Size()))
	}
	return b.String()
}

// How many journals one token's read takes is bounded too.
func TestReadTokenBoundsHowManyJournals(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i <= MaxJournalsPerToken; i++ {
		name := Scope{TokenSerial: "tok1", Target: fmt.Sprintf("gcp@p%d", i)}.FileName()
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, errs := ReadToken(context.Background(), dir, "tok1", nil)
	if got != nil || len(errs) != 1 || !strings.Contains(errs[0].Error(), fmt.Sprintf("more than %d", MaxJournalsPerToken)) {
		t.Fatalf("%d journals read, errors %v", len(got), errs)
	}
	if err := os.Remove(filepath.Join(dir, Scope{TokenSerial: "tok1", Target: "gcp@p0"}.FileName())); err != nil {
		t.Fatal(err)
	}
	if _, errs := ReadToken(context.Background(), dir, "tok1", nil); len(errs) != 0 {
		t.Fatalf("at the bound: %v", errs)
	}
}
