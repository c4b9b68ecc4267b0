package kmsimport

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidInput marks an error in what the user asked for: a flag, a
// combination of flags, or a value the cloud would refuse. Nothing has
// been changed when it is returned.
var ErrInvalidInput = errors.New("invalid input")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, args...)...)
}

// KMSError is a failed KMS call, with the exception name KMS returned and
// what it usually means for an import.
type KMSError struct {
	// Op is the KMS operation, e.g. "ImportKeyMaterial".
	Op string
	// Code is the exception name, e.g. "InvalidCiphertextException"; empty
	// when KMS could not be reached at all.
	Code string
	// Message is KMS's own message.
	Message string
	// Advice says what the user can do.
	Advice string
	// Transient is true when the same call may succeed later unchanged.
	Transient bool
	Err       error
}

func (e *KMSError) Error() string {
	var b strings.Builder
	b.WriteString("KMS " + e.Op + ": ")
	if e.Code != "" {
		b.WriteString(e.Code)
		if e.Message != "" {
			b.WriteString(" (" + e.Message + ")")
		}
	} else {
		b.WriteString(e.Message)
	}
	if e.Advice != "" {
		b.WriteString(": " + e.Advice)
	}
	return b.String()
}

func (e *KMSError) Unwrap() error { return e.Err }

// ErrJournal means the journal (or the ceremony record it mirrors to)
// could not be written: the command stopped before its next change.
var ErrJournal = errors.New("the journal of intents could not be written")
