//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package record

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f without waiting, held
// until f is closed, so two kmsbridge processes never append to the same
// record at once (both would chain to the same head).
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}
