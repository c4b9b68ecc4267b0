package ceremony

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// identityToken is a token that only knows who it is: enough for a run
// that stops before touching it.
type identityToken struct{ kmsimport.Token }

func (identityToken) Identity() hsm.TokenIdentity { return hsm.TokenIdentity{Serial: "0042"} }

func TestRunKeysStoppedBeforeTheFirstKeyRecordsTheInterruption(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var events []kmsimport.StepEvent
	r := &Runner{Token: identityToken{}, Observe: LabelledObserver(func(ev kmsimport.StepEvent) { events = append(events, ev) })}
	outs, err := r.RunKeys(ctx, []Key{{HSMLabel: "first"}, {HSMLabel: "second"}})
	if !errors.Is(err, kmsimport.ErrInterrupted) || !strings.Contains(err.Error(), "before key 1 (first)") {
		t.Fatalf("RunKeys = %v, want ErrInterrupted naming key 1 (first)", err)
	}
	if len(outs) != 0 {
		t.Errorf("outcomes = %d, want none: no key ran", len(outs))
	}
	if len(events) != 1 {
		t.Fatalf("events = %+v, want one interruption", events)
	}
	ev := events[0]
	if ev.Step != kmsimport.StepInterrupted || ev.Err == nil || ev.Facts[FactKeyLabel] != "first" || ev.Token == nil || ev.Token.Serial != "0042" {
		t.Errorf("event = %+v, want step %q with the error, label first and the token", ev, kmsimport.StepInterrupted)
	}
}

func TestLabelledObserverOfNilIsNil(t *testing.T) {
	if LabelledObserver(nil) != nil {
		t.Error("LabelledObserver(nil) is not nil: a run without a record would call it")
	}
}

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
