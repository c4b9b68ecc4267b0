package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalOfAnEarlierVersionIsAdopted: the journal is scoped by the
// Region, the endpoint and the account STS names (the emulator's
// 111122223333), and a journal an earlier kmsbridge kept under the old
// scope (no account) is taken over once: a re-run of the same import
// finds its key there (the ownership authority proves it ours) and makes
// no second KMS key; the old file stays as <name>.adopted.
func TestJournalOfAnEarlierVersionIsAdopted(t *testing.T) {
	emu := startEmulator(t)
	tok := newToken(t)
	state := t.TempDir()
	common := ownArgs(emu, tok, state)
	args := append(common, "--key-label", "legacy", "--generate", "--no-expiry")
	first := importJSON(t, tok, args...)
	files, _ := filepath.Glob(filepath.Join(state, "*.journal"))
	if len(files) != 1 || !strings.HasSuffix(files[0], "@111122223333.journal") || !strings.HasPrefix(filepath.Base(files[0]), first.HSM.Token.Serial+"@") {
		t.Fatalf("journals %q, want one named <serial>@<region>@<endpoint>@111122223333.journal", files)
	}
	// What an earlier version named the same journal.
	legacy := strings.TrimSuffix(files[0], "@111122223333.journal") + ".journal"
	if err := os.Rename(files[0], legacy); err != nil {
		t.Fatal(err)
	}
	before := emu.keyCount(t)

	r := kmsbridge(t, tok, append([]string{"import"}, args...)...)
	if r.Code != 0 || !strings.Contains(r.Stderr, "took over the journal "+legacy) {
		t.Fatalf("re-run with an old-named journal: exit %d, want 0 saying it took the journal over:\n%s", r.Code, r.Stderr)
	}
	if n := emu.keyCount(t); n != before {
		t.Errorf("the re-run made %d KMS keys, want %d", n, before)
	}
	if _, err := os.Stat(legacy + ".adopted"); err != nil {
		t.Errorf("the old journal is not kept as .adopted: %v", err)
	}
	if !journalHas(t, state, `"op":"adopted-journal"`) {
		t.Error("the journal does not note the adoption")
	}
	// Once: a third run adopts nothing.
	r = kmsbridge(t, tok, append([]string{"import"}, args...)...)
	if r.Code != 0 || strings.Contains(r.Stderr, "took over") {
		t.Fatalf("third run: exit %d, want 0 with no adoption:\n%s", r.Code, r.Stderr)
	}
}
