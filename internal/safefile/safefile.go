// Package safefile is the one way kmsbridge and its emulator open the
// files they read (bundles, wrapped material, ceremony files, key lists,
// records, PIN files, public keys, journals and their archives) and the
// state files they write, without trusting what they are: only a regular
// file is opened, never a FIFO, a device, a directory or a symlink (the
// last path element is opened with O_NOFOLLOW); the open cannot block (a
// FIFO with no writer is refused, not waited on); no more than a cap that
// fits the file's kind is read; and a long read stops when its context
// is cancelled (SIGINT, SIGTERM). A test in this package fails when any
// other package of the module opens a file for reading another way.
package safefile

import (
	"context"
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
	// MaxKeyList is for import --from's key list: a few hundred bytes a
	// key, so 16 MiB is some 50,000 keys.
	MaxKeyList = 16 << 20
	// MaxCABundle is for a PEM bundle of trusted CA certificates (a
	// private CA for a VPC endpoint): the system bundle is about 200 KiB.
	MaxCABundle = 4 << 20
	// MaxJournal is for a journal (and its .compacting copy): compaction
	// keeps the live journal near 10,000 entries of under 1 KB each.
	MaxJournal = 256 << 20
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

// Open opens path for reading only if it is a regular file and not a
// symlink. It opens with O_NONBLOCK so a FIFO cannot block the open, and
// checks the opened file (not the name), so a swapped name is refused.
func Open(what, path string) (*os.File, error) {
	return OpenFile(what, path, os.O_RDONLY, 0)
}

// OpenFile opens path with flag (os.O_RDONLY, os.O_RDWR, os.O_WRONLY,
// with os.O_CREATE, os.O_APPEND, os.O_EXCL, os.O_TRUNC as needed) and
// perm, the way every file kmsbridge keeps (journal, archive, record,
// evidence files) is opened: never through a symlink (O_NOFOLLOW, so a
// journal linked to another file cannot truncate or append to it), never
// blocking (O_NONBLOCK), and only if what was opened is a regular file.
// O_TRUNC is applied only after that check, so a FIFO or device is never
// truncated.
func OpenFile(what, path string, flag int, perm os.FileMode) (*os.File, error) {
	if path == "" {
		return nil, &Error{What: what, Path: `""`, Problem: "no file named", Fix: "give the path of the file"}
	}
	trunc := flag&os.O_TRUNC != 0
	flag &^= os.O_TRUNC
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, perm)
	if err != nil {
		return nil, openError(what, path, err)
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
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, &Error{What: what, Path: path, Problem: err.Error(), Fix: "check the path"}
	}
	if trunc {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, &Error{What: what, Path: path, Problem: err.Error(), Fix: "check the file's mode"}
		}
	}
	return f, nil
}

// openError explains a failed open: a missing file, a permission, a
// symlink (with what it points to), a FIFO without a writer.
func openError(what, path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &Error{What: what, Path: path, Problem: "no such file", Fix: "check the path", Err: os.ErrNotExist}
	case errors.Is(err, os.ErrPermission):
		return &Error{What: what, Path: path, Problem: "permission denied", Fix: "run as a user who may read it, or fix its mode", Err: os.ErrPermission}
	case errors.Is(err, os.ErrExist):
		return &Error{What: what, Path: path, Problem: "already exists", Fix: "kmsbridge never overwrites a file: choose a new name or move the old file away", Err: os.ErrExist}
	case errors.Is(err, syscall.ELOOP):
		return symlinkError(what, path)
	case errors.Is(err, syscall.ENXIO):
		return &Error{What: what, Path: path, Problem: "is a FIFO (named pipe) or socket, not a regular file",
			Fix: "give the path of the file itself (kmsbridge reads no directories, devices, pipes or sockets)"}
	case errors.Is(err, syscall.EISDIR):
		return &Error{What: what, Path: path, Problem: "is a directory, not a regular file", Fix: "give the path of a file in it"}
	}
	return &Error{What: what, Path: path, Problem: err.Error(), Fix: "check the path", Err: err}
}

// symlinkError refuses a symlink, saying what it points to, so the
// operator can give that path if it is the file meant.
func symlinkError(what, path string) error {
	e := &Error{What: what, Path: path, Problem: "is a symbolic link, which kmsbridge does not follow",
		Fix: "give the path of the file itself"}
	if target, err := os.Readlink(path); err == nil {
		e.Problem = fmt.Sprintf("is a symbolic link to %s", excerpt(target))
		if st, err := os.Stat(path); err == nil {
			e.Problem += " (" + kindOrRegular(st.Mode()) + ")"
		}
		e.Problem += ", which kmsbridge does not follow"
		e.Fix = "give the path of the file itself, if that is the file you mean"
	}
	return e
}

func kindOrRegular(m os.FileMode) string {
	if m.IsRegular() {
		return "a regular file"
	}
	return kind(m)
}

// excerpt shortens s for a message.
func excerpt(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q...", s[:200])
	}
	return s
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
	return ReadContext(context.Background(), what, path, max)
}

// ReadContext is Read that stops, with ctx's error, once ctx is done.
func ReadContext(ctx context.Context, what, path string, max int64) ([]byte, error) {
	f, err := Open(what, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(ctx, f, what, path, max)
}

// ReadAll reads r (a file opened by Open or OpenFile) to its end, failing
// once more than max bytes come or when ctx is done.
func ReadAll(ctx context.Context, r io.Reader, what, path string, max int64) ([]byte, error) {
	return io.ReadAll(Limit(ctxReader{ctx: ctx, r: r, what: what, path: path}, what, path, max))
}

// ctxReader fails its next Read once ctx is done.
type ctxReader struct {
	ctx        context.Context
	r          io.Reader
	what, path string
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("%s %s: reading stopped: %w", c.what, c.path, err)
	}
	return c.r.Read(p)
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

// WriteFile writes data to path, created with perm or truncated, through
// OpenFile: never through a symlink, never into a FIFO or device.
func WriteFile(what, path string, data []byte, perm os.FileMode) error {
	f, err := OpenFile(what, path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	return f.Close()
}
