package ceremony

import (
	"context"
	"fmt"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// StepPlan names the record entry of a key whose planning failed.
const StepPlan = "plan"

// RunKeys plans and runs keys one after the other, in order, and stops at
// the first failure: a real ceremony run without --parallel. Before each
// key it checks ctx: a signal stops the run between keys, never inside
// one, with kmsimport.ErrInterrupted. A planning failure and an
// interruption are told to Observe (steps StepPlan and
// kmsimport.StepInterrupted) for the record. The outcomes are those of
// every key that got as far as running, the failed one included.
func (r *Runner) RunKeys(ctx context.Context, keys []Key) ([]*Outcome, error) {
	var outcomes []*Outcome
	for i, k := range keys {
		if ctx.Err() != nil {
			err := fmt.Errorf("%w: stopped by a signal before key %d (%s); run the same kmsbridge ceremony run again to go on", kmsimport.ErrInterrupted, i+1, k.HSMLabel)
			r.observeStop(k, kmsimport.StepInterrupted, err)
			return outcomes, err
		}
		p, err := r.PlanKey(ctx, k)
		if err != nil {
			r.observePlanError(k, err)
			return outcomes, fmt.Errorf("key %d (%s): %w", i+1, k.HSMLabel, err)
		}
		if r.Log != nil {
			r.Log.Info(fmt.Sprintf("key %d of %d, %s: %s", i+1, len(keys), k.HSMLabel, p.Action), "why", p.Why)
		}
		out, err := r.RunKey(ctx, p)
		outcomes = append(outcomes, out)
		if err != nil {
			return outcomes, fmt.Errorf("key %d (%s): %w", i+1, k.HSMLabel, err)
		}
	}
	return outcomes, nil
}

// observePlanError tells Observe that planning k failed with err.
func (r *Runner) observePlanError(k Key, err error) { r.observeStop(k, StepPlan, err) }

// observeStop tells Observe of what stopped k before its first step.
func (r *Runner) observeStop(k Key, step string, err error) {
	if r.Observe == nil {
		return
	}
	tok := r.Token.Identity()
	r.Observe(k, kmsimport.StepEvent{Step: step, Err: err, Token: &tok})
}
