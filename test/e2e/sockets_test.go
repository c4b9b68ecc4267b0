package e2e

import (
	"os"
	"testing"
)

// socketDir is a fresh directory with a short path, for Unix sockets: a
// socket's path must fit sun_path (108 bytes on Linux, p11-kit and
// pkcs11proxyd refuse longer), and t.TempDir's path carries the whole test
// name under TMPDIR, which make test points at its own directory.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
