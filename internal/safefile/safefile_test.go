package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "ok.json")
	os.WriteFile(regular, []byte("{}"), 0o600)
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, make([]byte, 2048), 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	os.Symlink("/dev/zero", zero)

	tests := []struct {
		name, path string
		want       string
	}{
		{"ok regular", regular, ""},
		{"fail missing", filepath.Join(dir, "nosuch"), "no such file"},
		{"fail directory", dir, "is a directory, not a regular file"},
		{"fail fifo", fifo, "is a FIFO (named pipe), not a regular file"},
		{"fail symlink to /dev/zero", zero, "is a character device, not a regular file"},
		{"fail too large", big, "is larger than 1 KiB"},
		{"fail empty name", "", "no file named"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Read("--bundle", tt.path, 1024)
			if tt.want == "" {
				if err != nil || string(b) != "{}" {
					t.Fatalf("got %q, %v", b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "--bundle ") {
				t.Fatalf("error %v, want one naming --bundle and %q", err, tt.want)
			}
			if !errors.Is(err, ErrBadFile) {
				t.Error("error does not match ErrBadFile")
			}
		})
	}
}
