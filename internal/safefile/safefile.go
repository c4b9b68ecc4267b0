// Package safefile reads the files kmsbridge is given (bundles, wrapped
// material, ceremony files, records, PIN files, public keys) without
// trusting what they are: only a regular file is read, never a FIFO, a
// device, a directory or a symlink to one; the open cannot block; and no
// more than a cap that fits the file's kind is read.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Caps on the size of each kind of input, far above any genuine file.
const (
	// MaxJSON is for a bundle or a wrapped-material file: a few KB each.
	MaxJSON = 1 << 20
	// MaxCeremony is for a ceremony YAML file.
	MaxCeremony = 1 << 20
	// MaxPIN is for a PIN file.
	MaxPIN = 4 << 10
	// MaxPEM is for a public key PEM file.
	MaxPEM = 64 << 10
	// MaxRecord is for a ceremony record: a few KB an entry.
	MaxRecord = 256 << 20
)

// ErrBadFile is matched by every error this package returns about a file
// that is not what it should be.
var ErrBadFile = errors.New("unusable input file")

// Error is a file refused: which one, why, and what to do.
type Error struct {
	// What names the input, e.g. "--bundle"; Path is the file.
	What, Path string
	// Problem says what is wrong, Fix what to do.
	Problem, Fix string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	s := e.What + " " + e.Path + ": " + e.Problem
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// Unwrap makes the error match ErrBadFile and, for a missing file,
// os.ErrNotExist.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrBadFile, e.Err}
	}
	return []error{ErrBadFile}
}

// Open opens path for reading only if it is a regular file. It opens with
// O_NONBLOCK so a FIFO cannot block the open, and checks the opened file
// (not the name), so a symlink to /dev/zero or a swapped name is refused.
func Open(what, path string) (*os.File, error) {
	if path == "" {
		return nil, &Error{What: what, Path: `""`, Problem: "no file named", Fix: "give the path of the file"}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, &Error{What: what, Path: path, Problem: "no such file", Fix: "check the path", Err: os.ErrNotExist}
		case errors.Is(err, os.ErrPermission):
			return nil, &Error{What: what, Path: path, Problem: "permission denied", Fix: "run as a user who may read it, or fix its mode", Err: os.ErrPermission}
		}
		return nil, &Error{What: what, Path: path, Problem: err.Error(), Fix: "check the path"}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &Error{What: what, Path: path, Problem: err.Error(), Fix: "check the path"}
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &Error{What: what, Path: path, Problem: "is " + kind(st.Mode()) + ", not a regular file",
			Fix: "give the path of the file itself (kmsbridge reads no directories, devices, pipes or sockets)"}
	}
	// Reads of a regular file never block; clear O_NONBLOCK anyway so the
	// descriptor behaves as a plain one.
	_ = syscall.SetNonblock(int(f.Fd()), false)
	return f, nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// Read returns the contents of the regular file at path, refusing it if
// it is larger than max bytes.
func Read(what, path string, max int64) ([]byte, error) {
	f, err := Open(what, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(Limit(f, what, path, max))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Limit reads r, failing with an *Error once more than max bytes come.
func Limit(r io.Reader, what, path string, max int64) io.Reader {
	return &limited{r: r, left: max, what: what, path: path, max: max}
}

type limited struct {
	r          io.Reader
	left, max  int64
	what, path string
}

func (l *limited) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, l.tooLarge()
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, l.tooLarge()
	}
	return n, err
}

func (l *limited) tooLarge() error {
	return &Error{What: l.what, Path: l.path, Problem: fmt.Sprintf("is larger than %s, far more than such a file holds", size(l.max)),
		Fix: "check it is the right file"}
}

func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
