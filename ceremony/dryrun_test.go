package ceremony

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestPlanProblemsKeepEveryKind(t *testing.T) {
	d := &DryRun{Problems: 2, errs: []error{
		fmt.Errorf("a: %w", kmsimport.ErrInvalidInput),
		errors.Join(errors.New("b"), hsm.ErrKeyNotFound),
	}}
	err := d.Err()
	if !errors.Is(err, hsm.ErrKeyNotFound) || !errors.Is(err, kmsimport.ErrInvalidInput) {
		t.Errorf("%v does not wrap both problems' kinds: the exit code would lose them", err)
	}
	if !strings.HasPrefix(err.Error(), "the dry run found 2 problem(s)") {
		t.Errorf("error = %q, want it to count the problems", err)
	}
	if (&DryRun{}).Err() != nil {
		t.Error("a dry run without problems has an error")
	}
}
