package safefile

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// StateDir makes dir (mode 0700, with its missing parents) when it does
// not exist, then checks it may hold kmsbridge's state (the journal and
// its archive): a directory itself, not a symlink to one; owned by the
// user running kmsbridge; writable by no one else. Anyone who can write
// in it could replace the journal that decides what a re-run adopts, so
// anything else is refused with the chmod or chown that fixes it.
func StateDir(what, dir string) error {
	if dir == "" {
		return &Error{What: what, Path: `""`, Problem: "no directory named", Fix: "give the path of a directory"}
	}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return &Error{What: what, Path: dir, Problem: "cannot be created: " + err.Error(), Fix: "give a directory you may write to", Err: err}
		}
	}
	return CheckStateDir(what, dir)
}

// CheckStateDir is StateDir without making anything: a directory that
// does not exist yet passes (StateDir makes it, private, when it is first
// needed), so commands can check it before their first change.
func CheckStateDir(what, dir string) error {
	if dir == "" {
		return &Error{What: what, Path: `""`, Problem: "no directory named", Fix: "give the path of a directory"}
	}
	st, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &Error{What: what, Path: dir, Problem: err.Error(), Fix: "check the path", Err: err}
	}
	if st.Mode()&os.ModeSymlink != 0 {
		e := &Error{What: what, Path: dir, Problem: "is a symbolic link, which kmsbridge does not follow for its state", Fix: "give the directory itself"}
		if target, err := os.Readlink(dir); err == nil {
			e.Problem = fmt.Sprintf("is a symbolic link to %s, which kmsbridge does not follow for its state", excerpt(target))
		}
		return e
	}
	if !st.IsDir() {
		return &Error{What: what, Path: dir, Problem: "is " + kindOrRegular(st.Mode()) + ", not a directory", Fix: "give the path of a directory"}
	}
	me := os.Geteuid()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != me {
		return &Error{What: what, Path: dir,
			Problem: fmt.Sprintf("is owned by %s, not by %s who runs kmsbridge: another user could change the journal kmsbridge resumes from", userName(int(sys.Uid)), userName(me)),
			Fix:     fmt.Sprintf("run `chown -R %s %s` (as root), or give a directory of your own", userName(me), ShellQuote(dir))}
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 && st.Mode()&os.ModeSticky != 0 {
		// A shared directory such as /tmp: not to be chmod'ed.
		return &Error{What: what, Path: dir,
			Problem: fmt.Sprintf("is a directory shared with other users (mode %04o, sticky)", perm),
			Fix:     fmt.Sprintf("give a directory of your own in it, e.g. run `mkdir -m 700 %s` and give that", ShellQuote(dir+"/kmsbridge-"+userName(me)))}
	} else if perm&0o022 != 0 {
		return &Error{What: what, Path: dir,
			Problem: fmt.Sprintf("is writable by %s (mode %04o): they could replace the journal kmsbridge resumes from", writers(perm), perm),
			Fix:     fmt.Sprintf("run `chmod 700 %s`", ShellQuote(dir))}
	}
	return nil
}

func writers(perm os.FileMode) string {
	switch {
	case perm&0o020 != 0 && perm&0o002 != 0:
		return "its group and others"
	case perm&0o020 != 0:
		return "its group"
	}
	return "others"
}

// userName is the login name of uid, or the number when it has none.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// ShellQuote quotes s for a POSIX shell when it needs it, so a command
// in a message can be pasted as it is.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// SyncDir fsyncs directory dir, so that a file created or renamed in it
// survives a crash. dir itself must not be a symlink.
func SyncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	defer d.Close()
	return d.Sync()
}
