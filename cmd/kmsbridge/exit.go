package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// Exit codes. They are stable: scripts and ceremony runbooks rely on them.
const (
	exitOK           = 0
	exitFailure      = 1
	exitInvalidInput = 2
	exitHSM          = 3
	exitKMS          = 4
	exitVerification = 5
	// exitExpiring and exitBroken are verdicts, not failures: status ran
	// to the end and found material expiring within --warn-days or a
	// rotation left pending (6), or something an operator must repair (7). Codes 2-5 keep their meaning: status exits 3 or 4
	// only when it could not read the token or KMS at all.
	exitExpiring = 6
	exitBroken   = 7
)

// verdictError is a command that ran to the end and reports a verdict
// monitoring acts on, with its exit code.
type verdictError struct {
	code int
	msg  string
}

func (e verdictError) Error() string { return e.msg }

// usageError marks an error in the command line itself.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitCode maps an error to the exit code its kind has.
func exitCode(err error) int {
	var (
		perr *hsm.Error
		kerr *kmsimport.KMSError
		uerr usageError
		verr verdictError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &verr):
		return verr.code
	case errors.Is(err, kmsimport.ErrVerification):
		return exitVerification
	case errors.As(err, &uerr), errors.Is(err, kmsimport.ErrInvalidInput), errors.Is(err, safefile.ErrBadFile),
		errors.Is(err, ownership.ErrNotOurs) && !errors.Is(err, hsm.ErrLabelExists) && !errors.Is(err, hsm.ErrUnsuitableKey):
		return exitInvalidInput
	case errors.As(err, &perr),
		errors.Is(err, hsm.ErrModule), errors.Is(err, hsm.ErrTokenNotFound),
		errors.Is(err, hsm.ErrKeyNotFound), errors.Is(err, hsm.ErrKeyAmbiguous),
		errors.Is(err, hsm.ErrLabelExists), errors.Is(err, hsm.ErrUnsuitableKey),
		errors.Is(err, hsm.ErrNoPIN), errors.Is(err, hsm.ErrWrapUnsupported),
		errors.Is(err, hsm.ErrNotApproved), errors.Is(err, hsm.ErrTokenUnresponsive):
		return exitHSM
	case errors.As(err, &kerr),
		// Stopped by a signal, or by a journal or record that could not be
		// written: the job is unfinished and re-running it finishes it.
		errors.Is(err, kmsimport.ErrInterrupted), errors.Is(err, kmsimport.ErrJournal):
		return exitKMS
	}
	return exitFailure
}

// cliUsage turns the errors urfave/cli makes itself, which carry no type
// kmsbridge can match (a missing required flag, an unknown command, an
// environment variable of a flag that does not parse), into
// usage errors (exit 2) that say what to do. Other errors pass unchanged.
func cliUsage(err error, args []string) error {
	if err == nil {
		return nil
	}
	var uerr usageError
	if errors.As(err, &uerr) {
		return err
	}
	msg := err.Error()
	cmd := strings.Join(commandPath(args), " ")
	switch {
	case strings.HasPrefix(msg, "Required flag"):
		return usageError{fmt.Sprintf("%s: see kmsbridge %s --help", strings.Replace(msg, "Required flag", "required flag", 1), cmd)}
	case strings.HasPrefix(msg, "could not parse ") && strings.Contains(msg, " from environment variable "):
		// A flag's environment variable that does not parse, e.g.
		// KMSBRIDGE_PKCS11_ONE_CALL_AT_A_TIME=maybe.
		return usageError{fmt.Sprintf("%s: see %s --help", msg, strings.TrimSpace("kmsbridge "+cmd))}
	case strings.HasPrefix(msg, "No help topic for "):
		name := strings.Trim(strings.TrimPrefix(msg, "No help topic for "), "'")
		return usageError{fmt.Sprintf("unknown command %q: run %s --help for the commands", name, strings.TrimSpace("kmsbridge "+cmd))}
	}
	return err
}

// commandPath is the command named by args (without the program name),
// as far as it names known commands, e.g. ["record", "verify"].
func commandPath(args []string) []string {
	app := newApp()
	var path []string
	cmds := app.Commands
	for _, a := range args[1:] {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break
		}
		path = append(path, next.Name)
		cmds = next.Commands
	}
	return path
}
