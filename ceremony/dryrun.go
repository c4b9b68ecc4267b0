package ceremony

import (
	"context"
	"fmt"
	"strings"
)

// PlanRow is one key of a dry run: what the run would do for it, and how
// earlier work was recognised, or the problem that stops it.
type PlanRow struct {
	Label, KeySpec, Alias, Action, KMSKeyID, Why, Problem string
	// Targets, for a key with targets, is AWS KMS and each target.
	Targets []TargetRow `json:",omitempty"`
}

// DryRun is the plan of a whole ceremony, key by key, in the file's order.
type DryRun struct {
	Rows []PlanRow
	// Problems counts the problems: rows with a Problem, and targets
	// with one.
	Problems int
	errs     []error
}

// DryRun plans every key of the file and runs the read-only checks of
// each plan still to be carried out (CheckPlan); it changes nothing, on
// the token or in KMS. A key's problem is its own: the others are still
// planned, so one dry run shows every problem.
func (r *Runner) DryRun(ctx context.Context) *DryRun {
	d := &DryRun{}
	for _, k := range r.File.Keys {
		row := PlanRow{Label: k.HSMLabel, KeySpec: k.KeySpec, Alias: k.Alias}
		p, err := r.PlanKey(ctx, k)
		if err == nil {
			row.Action, row.KMSKeyID, row.Why = string(p.Action), p.KMSKeyID, p.Why
			if p.Action != ActionVerify {
				err = r.CheckPlan(p)
			}
		}
		if err != nil {
			row.Problem = err.Error()
			d.Problems++
			d.errs = append(d.errs, fmt.Errorf("%s: %w", k.HSMLabel, err))
		}
		for _, terr := range r.planTargets(ctx, k, &row) {
			d.Problems++
			d.errs = append(d.errs, terr)
		}
		d.Rows = append(d.Rows, row)
	}
	return d
}

// Err is nil when the dry run found no problem, else a PlanProblems
// holding every problem, each naming its key.
func (d *DryRun) Err() error {
	if d.Problems == 0 {
		return nil
	}
	return PlanProblems(d.errs)
}

// PlanProblems is every problem a dry run found, each naming its key. It
// unwraps to each problem, so errors.Is finds their kinds (invalid input,
// HSM, KMS) and the exit code is that of the problems.
type PlanProblems []error

// Error lists every problem, one a line.
func (d PlanProblems) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the dry run found %d problem(s); fix them before the ceremony:", len(d))
	for _, e := range d {
		b.WriteString("\n\t" + e.Error())
	}
	return b.String()
}

// Unwrap is every problem.
func (d PlanProblems) Unwrap() []error { return d }
