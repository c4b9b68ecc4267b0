package main

import (
	"errors"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
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
	case errors.As(err, &uerr), errors.Is(err, kmsimport.ErrInvalidInput):
		return exitInvalidInput
	case errors.As(err, &perr),
		errors.Is(err, hsm.ErrModule), errors.Is(err, hsm.ErrTokenNotFound),
		errors.Is(err, hsm.ErrKeyNotFound), errors.Is(err, hsm.ErrKeyAmbiguous),
		errors.Is(err, hsm.ErrLabelExists), errors.Is(err, hsm.ErrUnsuitableKey),
		errors.Is(err, hsm.ErrNoPIN), errors.Is(err, hsm.ErrWrapUnsupported),
		errors.Is(err, hsm.ErrNotApproved):
		return exitHSM
	case errors.As(err, &kerr),
		// Stopped by a signal, or by a journal or record that could not be
		// written: the job is unfinished and re-running it finishes it.
		errors.Is(err, kmsimport.ErrInterrupted), errors.Is(err, kmsimport.ErrJournal):
		return exitKMS
	}
	return exitFailure
}
