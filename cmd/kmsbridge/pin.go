package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// mdCeremony is the cli.App metadata key under which applyCeremony keeps
// the ceremony file a command runs from; its pin-source is authoritative.
const mdCeremony = "ceremony-file"

// readPIN returns the user PIN from, in order: the file pinFile, the
// environment variable envPIN, or a no-echo prompt when a terminal is
// attached. PINs are never taken from argv, where other users of the host
// can read them.
//
// Every PIN reader returns the PIN in a byte slice of its own, which the
// caller hands to hsm.Token.LoginPIN (it zeroes it after C_Login) or
// clears itself; a PIN environment variable is unset once read, so no
// child process and no later code finds it. What stays out of reach is
// listed in docs/threat-model.md (PIN residue).
func readPIN(pinFile string, log *slog.Logger) ([]byte, error) {
	return readSecret(pinFile, "--"+flagPINFile, envPIN, "--"+flagPINFile, "Token user PIN", log)
}

// readSOPIN is readPIN for the Security Officer's PIN; its errors name the
// SO PIN's own sources, never the user PIN's.
func readSOPIN(pinFile string, log *slog.Logger) ([]byte, error) {
	return readSecret(pinFile, "--"+flagSOPINFile, envSOPIN, "--"+flagSOPINFile, "Token Security Officer PIN", log)
}

// readSecret reads a PIN from pinFile (named fileName in errors), else from
// env, else from the terminal. fileFlag is the flag the advice names.
func readSecret(pinFile, fileName, env, fileFlag, prompt string, log *slog.Logger) ([]byte, error) {
	if pinFile != "" {
		return readPINFile(fileName, pinFile, log)
	}
	if env != "" {
		if pin, ok := takeEnv(env); ok {
			if len(pin) == 0 {
				return nil, fmt.Errorf("%w: %s is set but empty", hsm.ErrNoPIN, env)
			}
			return pin, nil
		}
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if env == "" {
			return nil, fmt.Errorf("%w: the PIN is to be typed at a prompt (%s), but there is no terminal: run on a terminal", hsm.ErrNoPIN, fileFlag)
		}
		return nil, fmt.Errorf("%w: set %s, give %s FILE, or run on a terminal to be prompted", hsm.ErrNoPIN, env, fileFlag)
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt+": ")
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("reading the PIN from the terminal: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: the PIN typed was empty", hsm.ErrNoPIN)
	}
	return b, nil
}

// takeEnv reads the PIN environment variable env into a byte slice and
// unsets it, so the PIN is not handed on to a child process (a module
// helper, a pager) nor read again. The string os.LookupEnv returns, and
// the process's initial environment block, are copies Go offers no way
// to clear (docs/threat-model.md).
func takeEnv(env string) ([]byte, bool) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, false
	}
	_ = os.Unsetenv(env)
	return []byte(v), true
}

// readPINFile reads a PIN file, which must be a regular file of at most
// safefile.MaxPIN bytes that no one but its owner can read (as ssh
// refuses such private keys). Errors name the file as name: the flag or
// ceremony file field the user gave it with.
func readPINFile(name, path string, log *slog.Logger) ([]byte, error) {
	f, err := safefile.Open(name, path)
	if err != nil {
		return nil, pinFileError(err.Error())
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, pinFileError(fmt.Sprintf("%s %s: %v", name, path, err))
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, pinFileError(fmt.Sprintf("%s %s has mode %04o: other users may read the PIN; run chmod 600 %s (and consider changing the PIN)", name, path, perm, path))
	}
	// One buffer, read in place and never grown (io.ReadAll would leave
	// copies of the PIN in the buffers it outgrows), cleared on every
	// error; the PIN returned is a prefix of it.
	buf := make([]byte, safefile.MaxPIN+1)
	n, err := io.ReadFull(safefile.Limit(f, name, path, safefile.MaxPIN), buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		clear(buf)
		return nil, pinFileError(err.Error())
	}
	pin := bytes.TrimRight(buf[:n], "\r\n")
	if len(pin) == 0 {
		clear(buf)
		return nil, pinFileError(fmt.Sprintf("%s %s is empty: write the PIN into it", name, path))
	}
	if bytes.ContainsAny(pin, "\r\n") {
		clear(buf)
		return nil, pinFileError(fmt.Sprintf("%s %s holds more than one line: write the PIN alone on one line", name, path))
	}
	clear(buf[len(pin):])
	return pin, nil
}

// pinFileError is a PIN file that cannot be used: invalid input (exit 2),
// since nothing was tried with it.
func pinFileError(msg string) error {
	return usageError{hsm.ErrNoPIN.Error() + ": " + msg}
}

// ceremonyPIN reads the user PIN from where the ceremony file says, and
// from nowhere else: an ambient $KMSBRIDGE_PIN does not override it.
// Errors name the file's field.
func ceremonyPIN(f *ceremony.File, log *slog.Logger) ([]byte, error) {
	src := f.PINSource()
	where := f.Source() + ": hsm.pin-source"
	switch {
	case src.Env != "":
		pin, ok := takeEnv(src.Env)
		if !ok || len(pin) == 0 {
			return nil, fmt.Errorf("%w: %s.env reads the PIN from $%s, which is not set: export %s before the run", hsm.ErrNoPIN, where, src.Env, src.Env)
		}
		return pin, nil
	case src.File != "":
		return readPINFile(where+".file", src.File, log)
	}
	// pin-source prompt: no environment variable, no file.
	return readSecret("", "", "", where+".prompt", "Token user PIN", log)
}
