package ceremony

import (
	"errors"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestCheckOnePassRefusesWrapWithTrusted(t *testing.T) {
	yes := true
	f := &File{}
	f.DualControl.WrapWithTrusted = &yes
	if err := CheckOnePass(f); !errors.Is(err, kmsimport.ErrInvalidInput) {
		t.Errorf("CheckOnePass = %v, want ErrInvalidInput", err)
	}
	if err := CheckOnePass(&File{}); err != nil {
		t.Errorf("CheckOnePass of a one-pass file = %v", err)
	}
}
