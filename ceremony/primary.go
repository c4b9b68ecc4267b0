package ceremony

import (
	"context"
	"time"
)

// A key's primary target is the cloud the key itself goes to, before the
// entries of its targets list (targetCloud). The runner (planKey, RunKey,
// CheckPlan, runTargets, the dry run) and the validation treat it through
// this interface only, by the capabilities that set it apart from a
// targets entry, never by its name:
//
//   - it plans from what exists (planner): the key's action (generate,
//     create, import, rotate, verify only) is decided before the run, from
//     the HSM key, the cloud's state and what earlier runs recorded;
//   - its failure is the key's own error, and its steps are recorded as
//     the key's own (no CeremonyTarget fact, no failed target entry);
//   - it is the first of the key's targets in the results and the record,
//     and appears there only when the key has targets entries;
//   - its run may end the key (stop), as a rotation does.
//
// The file's primary cloud is the one its kms section names (AWS KMS,
// aws_primary.go); a key that does not go there has no primary target,
// and its first targets entry chooses (or generates) the HSM key.
type primaryTarget interface {
	planner
	// cloud is the cloud's short name, as the results and the record name
	// it.
	cloud() string
	// validateKey checks keys[i] of f, which goes to this cloud, on its
	// own as of now: what needs neither the token nor the cloud.
	validateKey(c *checker, f *File, i int, now time.Time)
	// validateSection checks keys[i] of f against this cloud's section of
	// the file, whether or not the key goes there.
	validateSection(c *checker, f *File, i int)
	// run carries out p's part in this cloud, as the key's own steps; stop
	// says the key ends after it (its targets entries are not run).
	run(ctx context.Context, r *Runner, p *Plan, out *Outcome) (stop bool, err error)
	// hsmKeyID is the CKA_ID of the HSM key the run of p used (or found),
	// which the key's targets entries get.
	hsmKeyID(p *Plan, out *Outcome) ([]byte, error)
	// entry is this cloud as the first of the key's targets, as the
	// results and the record show it.
	entry(out *Outcome) *TargetOutcome
	// row is this cloud as the first target of row, a key's dry run row.
	row(row *PlanRow) TargetRow
	// done says whether out's part in this cloud is done.
	done(out *Outcome) bool
	// fillReport gives p, the plan of a key that does not go to this
	// cloud, the report fields this cloud's plans own, which the report
	// shows for every key.
	fillReport(p *Plan)
}

// planner is a target that plans from what exists, before the run.
type planner interface {
	// plan decides, read-only, what the run will do for k; labels, when
	// not nil, is the token's labels as a bulk run read them (see planKey).
	plan(ctx context.Context, r *Runner, k Key, labels map[string]int) (*Plan, error)
	// check runs, read-only, the checks of p that its plan did not run:
	// what the token must be able to do for it.
	check(r *Runner, p *Plan) error
}

// needsPrimary says whether any key of f goes to the file's primary cloud.
func (f *File) needsPrimary() bool {
	for _, k := range f.Keys {
		if f.primary(k) != nil {
			return true
		}
	}
	return false
}
