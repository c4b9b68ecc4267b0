package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// The state directory and everything in it are input: someone who can
// put a symlink or a FIFO there must not make kmsbridge write elsewhere,
// block, or read without end.

// TestSymlinkedJournalIsRefusedAndItsTargetKept: a journal that is a
// symlink is refused, and the file it points to keeps every byte (before,
// a torn-line cut truncated it).
func TestSymlinkedJournalIsRefusedAndItsTargetKept(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "precious.txt")
	const content = "line one\nno newline at the end"
	if err := os.WriteFile(victim, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, scope.FileName())); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir, scope)
	if err == nil || !strings.Contains(err.Error(), "symbolic link to "+victim) || !errors.Is(err, safefile.ErrBadFile) {
		t.Fatalf("Open: %v, want the symlink refused", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != content {
		t.Fatalf("the file the journal linked to changed: %q", b)
	}
}

// TestJournalThatIsNotAFileIsRefused: a FIFO (which would block) or a
// directory in the journal's place is refused at once.
func TestJournalThatIsNotAFileIsRefused(t *testing.T) {
	for name, mk := range map[string]func(string) error{
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := mk(filepath.Join(dir, scope.FileName())); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := Open(context.Background(), dir, scope); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "not a regular file") {
					t.Fatalf("Open: %v, want it refused", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Open blocked")
			}
		})
	}
}

// TestSymlinkedCompactingFileIsRefused: an interrupted compaction's
// <journal>.compacting that is a symlink (to /dev/zero, or to a file an
// attacker wrote) is not read into the journal.
func TestSymlinkedCompactingFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	path := j.Path()
	j.Close()
	if err := os.Symlink("/dev/zero", path+".compacting"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir, scope)
	if err == nil || !strings.Contains(err.Error(), "symbolic link to /dev/zero") {
		t.Fatalf("Open: %v, want the symlinked .compacting refused", err)
	}
}

// TestSymlinkedArchiveIsNotWrittenThrough: compaction appends to
// <journal>.archive; a symlink there must not send the entries elsewhere.
func TestSymlinkedArchiveIsNotWrittenThrough(t *testing.T) {
	smallCompaction(t)
	dir := t.TempDir()
	old := time.Now().Add(-100 * 24 * time.Hour)
	var es []Entry
	for i := 0; i < 12; i++ {
		es = append(es, pair(string(rune('a'+i)), "CreateKey", old, ResultOK)...)
	}
	path := writeJournal(t, dir, es)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(elsewhere, []byte("theirs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, path+".archive"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir, scope)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Open: %v, want the symlinked archive refused", err)
	}
	if b, _ := os.ReadFile(elsewhere); string(b) != "theirs\n" {
		t.Fatalf("written through the archive's symlink: %q", b)
	}
}

// TestStateDirectoryOthersMayWriteIsRefused: a state directory its group
// or others may write, or a symlink to one, is refused with the command
// that fixes it, and no journal is made in it.
func TestStateDirectoryOthersMayWriteIsRefused(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), open, scope)
	if err == nil || !strings.Contains(err.Error(), "run `chmod 700 "+open+"`") {
		t.Fatalf("Open: %v, want the directory refused with the chmod", err)
	}
	if ents, _ := os.ReadDir(open); len(ents) != 0 {
		t.Fatalf("files made in a refused directory: %v", ents)
	}
	private := filepath.Join(base, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), link, scope); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Open: %v, want the symlinked directory refused", err)
	}
}
