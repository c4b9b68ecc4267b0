package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// mdCeremony is the cli.App metadata key under which applyCeremony keeps
// the ceremony file a command runs from; its pin-source is authoritative.
const mdCeremony = "ceremony-file"

// readPIN returns the user PIN from, in order: the environment variable
// envPIN, the file pinFile, or a no-echo prompt when a terminal is attached.
// PINs are never taken from argv, where other users of the host can read them.
func readPIN(pinFile string, log *slog.Logger) (string, error) {
	return readSecret(pinFile, "--"+flagPINFile, envPIN, "--"+flagPINFile, "Token user PIN", log)
}

// readSOPIN is readPIN for the Security Officer's PIN; its errors name the
// SO PIN's own sources, never the user PIN's.
func readSOPIN(pinFile string, log *slog.Logger) (string, error) {
	return readSecret(pinFile, "--"+flagSOPINFile, envSOPIN, "--"+flagSOPINFile, "Token Security Officer PIN", log)
}

// readSecret reads a PIN from pinFile (named fileName in errors), else from
// env, else from the terminal. fileFlag is the flag the advice names.
func readSecret(pinFile, fileName, env, fileFlag, prompt string, log *slog.Logger) (string, error) {
	if pinFile != "" {
		return readPINFile(fileName, pinFile, log)
	}
	if pin, ok := os.LookupEnv(env); ok && env != "" {
		if pin == "" {
			return "", fmt.Errorf("%w: %s is set but empty", hsm.ErrNoPIN, env)
		}
		return pin, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if env == "" {
			return "", fmt.Errorf("%w: the PIN is to be typed at a prompt (%s), but there is no terminal: run on a terminal", hsm.ErrNoPIN, fileFlag)
		}
		return "", fmt.Errorf("%w: set %s, give %s FILE, or run on a terminal to be prompted", hsm.ErrNoPIN, env, fileFlag)
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt+": ")
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("reading the PIN from the terminal: %w", err)
	}
	if len(b) == 0 {
		return "", fmt.Errorf("%w: the PIN typed was empty", hsm.ErrNoPIN)
	}
	return string(b), nil
}

// readPINFile reads a PIN file, which must be a regular file of at most
// safefile.MaxPIN bytes that no one but its owner can read (as ssh
// refuses such private keys). Errors name the file as name: the flag or
// ceremony file field the user gave it with.
func readPINFile(name, path string, log *slog.Logger) (string, error) {
	f, err := safefile.Open(name, path)
	if err != nil {
		return "", pinFileError(err.Error())
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", pinFileError(fmt.Sprintf("%s %s: %v", name, path, err))
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", pinFileError(fmt.Sprintf("%s %s has mode %04o: other users may read the PIN; run chmod 600 %s (and consider changing the PIN)", name, path, perm, path))
	}
	b, err := io.ReadAll(safefile.Limit(f, name, path, safefile.MaxPIN))
	if err != nil {
		return "", pinFileError(err.Error())
	}
	pin := strings.TrimRight(string(b), "\r\n")
	if pin == "" {
		return "", pinFileError(fmt.Sprintf("%s %s is empty: write the PIN into it", name, path))
	}
	if strings.ContainsAny(pin, "\r\n") {
		return "", pinFileError(fmt.Sprintf("%s %s holds more than one line: write the PIN alone on one line", name, path))
	}
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
func ceremonyPIN(f *ceremony.File, log *slog.Logger) (string, error) {
	src := f.PINSource()
	where := f.Source() + ": hsm.pin-source"
	switch {
	case src.Env != "":
		pin, ok := os.LookupEnv(src.Env)
		if !ok || pin == "" {
			return "", fmt.Errorf("%w: %s.env reads the PIN from $%s, which is not set: export %s before the run", hsm.ErrNoPIN, where, src.Env, src.Env)
		}
		return pin, nil
	case src.File != "":
		return readPINFile(where+".file", src.File, log)
	}
	// pin-source prompt: no environment variable, no file.
	return readSecret("", "", "", where+".prompt", "Token user PIN", log)
}
