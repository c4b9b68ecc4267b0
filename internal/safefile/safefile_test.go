package safefile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	link := filepath.Join(dir, "link.json")
	os.Symlink(regular, link)

	tests := []struct {
		name, path string
		want       []string
	}{
		{"ok regular", regular, nil},
		{"fail missing", filepath.Join(dir, "nosuch"), []string{"no such file"}},
		{"fail directory", dir, []string{"is a directory, not a regular file"}},
		{"fail fifo", fifo, []string{"is a FIFO (named pipe), not a regular file"}},
		{"fail symlink to /dev/zero", zero, []string{"is a symbolic link to /dev/zero (a character device)", "does not follow"}},
		{"fail symlink to a regular file", link, []string{"is a symbolic link to " + regular + " (a regular file)", "give the path of the file itself"}},
		{"fail too large", big, []string{"is larger than 1 KiB"}},
		{"fail empty name", "", []string{"no file named"}},
		{"fail dev null", "/dev/null", []string{"is a character device"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Read("--bundle", tt.path, 1024)
			if tt.want == nil {
				if err != nil || string(b) != "{}" {
					t.Fatalf("got %q, %v", b, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "--bundle ") {
				t.Fatalf("error %v, want one naming --bundle", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !errors.Is(err, ErrBadFile) {
				t.Error("error does not match ErrBadFile")
			}
		})
	}
}

// TestReadFIFODoesNotBlock: a FIFO with no writer would block a plain
// open for reading forever; it must be refused at once.
func TestReadFIFODoesNotBlock(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Read("--from", fifo, 1024); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "FIFO") {
			t.Fatalf("error %v, want a FIFO refused", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
}

// TestOpenFileNeverThroughSymlink: a state file (journal, archive,
// record) that is a symlink is refused for every kind of open, and the
// file it points to is left as it was (not created, truncated or
// appended to).
func TestOpenFileNeverThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "journal")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "archive")
	if err := os.Symlink(filepath.Join(dir, "made-elsewhere"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{os.O_RDONLY, os.O_RDWR | os.O_CREATE | os.O_APPEND, os.O_WRONLY | os.O_CREATE | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
		for _, p := range []string{link, dangling} {
			f, err := OpenFile("journal", p, flag, 0o600)
			if err == nil {
				f.Close()
				t.Fatalf("flag %#x: %s opened through a symlink", flag, p)
			}
			if !strings.Contains(err.Error(), "symbolic link") || !errors.Is(err, ErrBadFile) {
				t.Errorf("flag %#x: error %v, want a symlink refused", flag, err)
			}
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the file the symlink points to changed: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "made-elsewhere")); err == nil {
		t.Error("a file was created through a dangling symlink")
	}
}

// TestOpenFileForWriteRefusesFIFO: a FIFO named as a file to write is
// refused at once, not waited on, and O_TRUNC never reaches a device.
func TestOpenFileForWriteRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := OpenFile("archive", fifo, os.O_WRONLY|os.O_APPEND, 0o600)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("error %v, want the FIFO refused", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("opening a FIFO to write blocked")
	}
	if _, err := OpenFile("archive", "/dev/null", os.O_WRONLY|os.O_TRUNC, 0); err == nil || !strings.Contains(err.Error(), "character device") {
		t.Fatalf("error %v, want /dev/null refused", err)
	}
}

func TestReadContextStops(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ReadContext(ctx, "journal", p, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestStateDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk("good", 0o700)
	group := mk("group", 0o770)
	world := mk("world", 0o707)
	link := filepath.Join(base, "link")
	os.Symlink(good, link)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	missing := filepath.Join(base, "a", "b")

	tests := []struct {
		name, dir string
		want      []string
	}{
		{"ok private", good, nil},
		{"ok created", missing, nil},
		{"fail group writable", group, []string{"writable by its group (mode 0770)", "run `chmod 700 " + group + "`"}},
		{"fail world writable", world, []string{"writable by others (mode 0707)", "run `chmod 700 " + world + "`"}},
		{"fail symlink", link, []string{"is a symbolic link to " + good, "give the directory itself"}},
		{"fail a file", file, []string{"is a regular file, not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := StateDir("--state-dir", tt.dir)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				st, err := os.Stat(tt.dir)
				if err != nil || st.Mode().Perm() != 0o700 {
					t.Fatalf("%v %v: want a 0700 directory", st, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadFile) {
				t.Fatalf("error %v, want a refusal", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestStateDirOwnedBySomeoneElse needs root, to give a directory away.
func TestStateDirOwnedBySomeoneElse(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a directory to another user; TestStateDir covers the rest")
	}
	dir := filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err := StateDir("--state-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "is owned by") || !strings.Contains(err.Error(), "run `chown -R root "+dir+"`") {
		t.Fatalf("error %v, want the owner refused with the chown to run", err)
	}
}

func TestStateDirShared(t *testing.T) {
	err := StateDir("--state-dir", "/tmp")
	if err == nil || !strings.Contains(err.Error(), "shared with other users") || !strings.Contains(err.Error(), "mkdir -m 700 /tmp/kmsbridge-") {
		t.Fatalf("error %v, want /tmp refused with the mkdir to run", err)
	}
}
