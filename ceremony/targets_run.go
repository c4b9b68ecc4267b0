package ceremony

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// StepTarget is the record entry that closes one target of a key: its
// cloud, its name and its proof (or error). A key with targets entries
// has one for each of its targets, its lead (AWS KMS) included.
const StepTarget = "ceremony-target"

// TargetOutcome is what the run did for one target of a key: its lead
// (AWS KMS) or one entry of its targets list.
type TargetOutcome struct {
	// Cloud is aws, gcp or azure.
	Cloud string
	// Target is the KMS key ID, the crypto key's resource name or the
	// vault key's URL.
	Target string
	Done   bool
	// Proof says how the cloud was shown to hold the HSM's material.
	Proof string `json:",omitempty"`
	Error string `json:",omitempty"`
	// cloudResults is the cloud's full import result (Gcp, Azure).
	cloudResults
	// hsmKey is the CKA_ID (hex) of the HSM key the import used.
	hsmKey string
}

// existingID is the CKA_ID of the HSM key labelled k.HSMLabel, or nil
// when the token has none yet (the key's first target generates it).
func (r *Runner) existingID(k Key) ([]byte, error) {
	m, err := k.material()
	if err != nil {
		return nil, err
	}
	hk, _, err := r.Token.FindByLabel(k.HSMLabel, m.HSM)
	if err != nil || hk == nil {
		return nil, err
	}
	return hk.ID, nil
}

// TargetProblem is one target that cannot be carried out, found before
// any change.
type TargetProblem struct {
	Key    string
	Field  string
	Target string
	Err    error
}

// Error names the key, the target's field and the target, in the file's
// terms (its fields, not import's flags).
func (p *TargetProblem) Error() string {
	return fmt.Sprintf("key %q, %s (%s): %s", p.Key, p.Field, p.Target, p.Msg())
}

// Msg is the problem alone, in the file's terms.
func (p *TargetProblem) Msg() string {
	return targetTerms.Replace(strings.Replace(p.Err.Error(), kmsimport.ErrInvalidInput.Error()+": ", "", 1))
}

func (p *TargetProblem) Unwrap() error { return p.Err }

// checkTarget runs, read-only, every check of target t of key k: the
// cloud's request rules, the endpoint, the token's wrap for that cloud
// (generating the key first when it does not exist yet), and what the
// cloud holds (the location, key ring, crypto key, import job; the vault,
// its Key Exchange Key, the target key). It returns a line for the plan.
func (r *Runner) checkTarget(ctx context.Context, k Key, t Target, id []byte) (string, error) {
	a := t.adapter()
	if a == nil {
		return "", fmt.Errorf("%w: an empty target", kmsimport.ErrInvalidInput)
	}
	return a.check(ctx, r, k, id)
}

// CheckTargets checks every target of every key, read-only, before the
// ceremony's first change: a target that cannot be carried out stops the
// ceremony with nothing changed, on the token or in any cloud. It returns
// a PlanProblems of every problem found, or nil.
func (r *Runner) CheckTargets(ctx context.Context) error {
	var problems PlanProblems
	for i, k := range r.File.Keys {
		if len(k.Targets) == 0 {
			continue
		}
		id, err := r.existingID(k)
		if err != nil {
			problems = append(problems, fmt.Errorf("key %q: %w", k.HSMLabel, err))
			continue
		}
		if id == nil && (k.Generate == nil || !*k.Generate) {
			continue // the key's own plan says the HSM key is missing
		}
		for pos, t := range r.File.targets(k) {
			e, ok := t.(entry)
			if !ok {
				continue // the lead's checks are its plan's (CheckPlan)
			}
			if _, err := r.checkTarget(ctx, k, e.Target, keyIDFor(pos, id)); err != nil {
				problems = append(problems, &TargetProblem{Key: k.HSMLabel, Field: targetField(i, e.i, e.Target), Target: e.Name(), Err: err})
			}
		}
	}
	if len(problems) > 0 {
		return problems
	}
	return nil
}

// runEntry sends the HSM key with CKA_ID id (nil: the entry chooses it
// by label, as the key's first target) to entry e of key k's targets
// list, adds its outcome to out, and returns the HSM key known after it.
// The import is the cloud's own (import --cloud gcp|azure with the HSM
// key by CKA_ID), journaled exactly-once in its own journal: a re-run
// after a failure or a kill finds what each target already holds and
// finishes only what is left. The entry ends with a StepTarget entry.
func (r *Runner) runEntry(ctx context.Context, k Key, e entry, id []byte, out *Outcome) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return id, fmt.Errorf("%w: stopped by a signal before target %s of key %q; run the same kmsbridge ceremony run again to go on", kmsimport.ErrInterrupted, e.Name(), k.HSMLabel)
	}
	to, err := r.runTarget(ctx, k, e.Target, id)
	out.Targets = append(out.Targets, to)
	r.observeTarget(k, to, err)
	if err != nil {
		return id, fmt.Errorf("target %s: %w", e.Name(), err)
	}
	if id == nil {
		// The key's first target chose the key.
		if id, err = to.hsmKeyID(); err != nil {
			return id, fmt.Errorf("key %q, target %s: %w", k.HSMLabel, e.Name(), err)
		}
	}
	kmsimport.CrashPoint(ctx, "ceremony-target:"+e.Cloud())
	return id, nil
}

// hsmKeyID is the CKA_ID of the HSM key the target's import used.
func (to *TargetOutcome) hsmKeyID() ([]byte, error) {
	h := to.hsmKey
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		// A bug, not an input: the import succeeded without naming its key.
		return nil, fmt.Errorf("the %s import reported no usable HSM key CKA_ID (%q) for the key's other targets, which were not started; run the same kmsbridge ceremony run again", to.Cloud, kmsimport.Excerpt(h))
	}
	return b, nil
}

// targetOwner is the ownership authority a target's import asks: this
// token, that target's journal, and the HSM keys the ceremony record shows
// this ceremony generating (by any target, AWS KMS included).
func (r *Runner) targetOwner(j *journal.Journal) *ownership.Authority {
	return &ownership.Authority{TokenSerial: r.Token.Identity().Serial, Journal: j, Record: r.Generated, Command: "ceremony"}
}

func (r *Runner) runTarget(ctx context.Context, k Key, t Target, id []byte) (*TargetOutcome, error) {
	to := &TargetOutcome{Cloud: t.Cloud(), Target: t.Name()}
	observe := func(ev kmsimport.StepEvent) {
		if r.Observe != nil {
			if ev.Facts == nil {
				ev.Facts = map[string]string{}
			}
			ev.Facts["CeremonyTarget"] = to.Target
			r.Observe(k, ev)
		}
	}
	err := fmt.Errorf("%w: an empty target", kmsimport.ErrInvalidInput)
	if a := t.adapter(); a != nil {
		err = a.run(ctx, r, k, id, observe, to)
	}
	if err != nil {
		to.Error = err.Error()
	}
	return to, err
}

// observeTarget records the end of one target of k.
func (r *Runner) observeTarget(k Key, to *TargetOutcome, err error) {
	if r.Observe == nil {
		return
	}
	facts := map[string]string{"Cloud": to.Cloud, "CeremonyTarget": to.Target, "Done": fmt.Sprint(to.Done)}
	if to.Proof != "" {
		facts["ProofSummary"] = to.Proof
	}
	tok := r.Token.Identity()
	summary := fmt.Sprintf("%s target %s: %s", to.Cloud, to.Target, to.Proof)
	if err != nil {
		summary = fmt.Sprintf("%s target %s failed", to.Cloud, to.Target)
	}
	r.Observe(k, kmsimport.StepEvent{Step: StepTarget, Summary: summary, Err: err, Facts: facts, Token: &tok})
}

func targetField(i, j int, t Target) string {
	return fmt.Sprintf("keys[%d].targets[%d].%s", i, j, t.Cloud())
}

// targetField is the field path of k's j-th target in the file.
func (r *Runner) targetField(k Key, j int) string {
	for i := range r.File.Keys {
		if r.File.Keys[i].HSMLabel == k.HSMLabel {
			return targetField(i, j, k.Targets[j])
		}
	}
	return fmt.Sprintf("targets[%d].%s", j, k.Targets[j].Cloud())
}

// TargetRow is one target of a key in a dry run: what the run would do,
// or the problem that stops it.
type TargetRow struct {
	Cloud, Target, Action, Problem string `json:",omitempty"`
}

// planTargets adds to row, read-only, every target of k with what the
// run would do for it, or its problem; it returns the problems.
func (r *Runner) planTargets(ctx context.Context, k Key, row *PlanRow) []error {
	if len(k.Targets) == 0 {
		return nil
	}
	targets := r.File.targets(k)
	if l := leadOf(targets); l != nil {
		row.Targets = []TargetRow{l.row(row)}
	}
	id, err := r.existingID(k)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", k.HSMLabel, err)}
	}
	var errs []error
	for pos, t := range targets {
		e, ok := t.(entry)
		if !ok {
			continue
		}
		tr := TargetRow{Cloud: e.Cloud(), Target: e.Name()}
		if id == nil && (k.Generate == nil || !*k.Generate) {
			tr.Problem = "the HSM key does not exist and generate is false"
		} else if act, err := r.checkTarget(ctx, k, e.Target, keyIDFor(pos, id)); err != nil {
			p := &TargetProblem{Key: k.HSMLabel, Field: r.targetField(k, e.i), Target: e.Name(), Err: err}
			tr.Problem = p.Field + ": " + p.Msg()
			errs = append(errs, p)
		} else {
			tr.Action = act
		}
		row.Targets = append(row.Targets, tr)
	}
	return errs
}
