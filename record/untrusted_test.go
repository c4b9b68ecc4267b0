package record

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// TestRecordNeverThroughSymlinkOrDevice: Open and Repair refuse a record
// that is a symlink (to a file, or to /dev/zero, which Repair read without
// end), a FIFO (without blocking) or a directory, and leave the file a
// symlink points to as it was.
func TestRecordNeverThroughSymlinkOrDevice(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	const content = "someone else's file, torn at the end"
	if err := os.WriteFile(victim, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.jsonl")
	os.Symlink(victim, link)
	zero := filepath.Join(dir, "zero.jsonl")
	os.Symlink("/dev/zero", zero)
	fifo := filepath.Join(dir, "fifo.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, path, want string }{
		{"symlink to a file", link, "symbolic link to " + victim},
		{"symlink to /dev/zero", zero, "symbolic link to /dev/zero"},
		{"fifo", fifo, "FIFO"},
		{"directory", dir, "directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for op, f := range map[string]func() error{
				"Open": func() error {
					w, err := Open(tt.path, nil, nil)
					if err == nil {
						w.Close()
					}
					return err
				},
				"Repair": func() error { _, err := Repair(tt.path, time.Now(), nil, nil); return err },
			} {
				done := make(chan error, 1)
				go func() { done <- f() }()
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, safefile.ErrBadFile) {
						t.Errorf("%s: %v, want it refused (%q)", op, err, tt.want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("%s blocked or read without end", op)
				}
			}
		})
	}
	if b, _ := os.ReadFile(victim); string(b) != content {
		t.Fatalf("the file behind the symlink changed: %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(victim)); len(ents) != 1 {
		t.Fatalf("evidence files made next to the symlink's target: %v", ents)
	}
}
