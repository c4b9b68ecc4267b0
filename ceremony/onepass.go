package ceremony

import (
	"fmt"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// CheckOnePass refuses, as invalid input, a file that ceremony run cannot
// carry out in one pass: one with dual-control.wrap-with-trusted, where the
// Security Officer approves each KMS wrapping key between prepare and wrap.
func CheckOnePass(f *File) error {
	if f.DualControl.WrapWithTrusted != nil && *f.DualControl.WrapWithTrusted {
		return fmt.Errorf("%w: %s: dual-control.wrap-with-trusted is true, which needs the Security Officer to approve each KMS wrapping key between prepare and wrap; ceremony run imports in one pass, so run this ceremony with kmsbridge prepare, approve, wrap and upload", kmsimport.ErrInvalidInput, f.Source())
	}
	return nil
}
