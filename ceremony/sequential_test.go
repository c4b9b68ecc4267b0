package ceremony

import (
	"context"
	"errors"
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
