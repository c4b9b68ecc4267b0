package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// readPIN returns the user PIN from, in order: the environment variable
// envPIN, the file pinFile, or a no-echo prompt when a terminal is attached.
// PINs are never taken from argv, where other users of the host can read them.
func readPIN(pinFile string, log *slog.Logger) (string, error) {
	return readSecret(pinFile, envPIN, "--pin-file", "Token user PIN", log)
}

// readSOPIN is readPIN for the Security Officer's PIN.
func readSOPIN(pinFile string, log *slog.Logger) (string, error) {
	return readSecret(pinFile, envSOPIN, "--so-pin-file", "Token Security Officer PIN", log)
}

func readSecret(pinFile, env, fileFlag, prompt string, log *slog.Logger) (string, error) {
	if pinFile != "" {
		return readPINFile(pinFile, log)
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
			return "", fmt.Errorf("%w: the PIN is to be typed at a prompt, but there is no terminal", hsm.ErrNoPIN)
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

func readPINFile(path string, log *slog.Logger) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%w: --pin-file %s: %v", hsm.ErrNoPIN, path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		log.Warn("PIN file is readable by other users; chmod 600 it", "file", path, "mode", st.Mode().Perm().String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: --pin-file %s: %v", hsm.ErrNoPIN, path, err)
	}
	pin := strings.TrimRight(string(b), "\r\n")
	if pin == "" {
		return "", fmt.Errorf("%w: --pin-file %s is empty", hsm.ErrNoPIN, path)
	}
	return pin, nil
}
