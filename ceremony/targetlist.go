package ceremony

import (
	"context"
	"time"
)

// A key's targets are the clouds its HSM material goes to, in one list
// and in order (File.targets): the cloud of the file's kms section (AWS
// KMS, aws_target.go) first when the key goes there, then each entry of
// its targets list (Cloud KMS, Key Vault: targetCloud). The planner, the
// checks, the dry run and the step engine (RunKey) walk that list; what
// sets one target apart from another is a capability it has, never its
// name. Every target is journaled exactly-once in its own journal.
//
// The first target chooses the HSM key: by label, generating it when the
// file says so; every later target gets the key it chose by CKA_ID
// (keyIDFor).

// target is one of a key's targets.
type target interface {
	// cloud is the cloud's short name (aws, gcp, azure), as the file, the
	// results and the record name it.
	cloud() string
}

// leadTarget is a target that leads its key, which only the first of a
// key's targets can be. It has these capabilities over an entry of the
// targets list:
//
//   - it plans the key from what exists (planner): the key's action
//     (generate, create, import, rotate, verify only) is decided before
//     the run, from the HSM key, the cloud's state and what earlier runs
//     recorded;
//   - its failure is the key's own error, and its steps are recorded as
//     the key's own (no CeremonyTarget fact, no failed target entry);
//   - it appears in the results and the record as one of the key's
//     targets only when the key has targets entries after it;
//   - its run may end the key (stop), as a rotation does.
//
// A key whose first target is an entry of its targets list has no lead
// (ActionTargets): that entry's import chooses (or generates) the HSM key.
type leadTarget interface {
	target
	planner
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
	// which the key's later targets get.
	hsmKeyID(p *Plan, out *Outcome) ([]byte, error)
	// entry is this cloud as the first of the key's targets, as the
	// results and the record show it.
	entry(out *Outcome) *TargetOutcome
	// row is this cloud as the first target of row, a key's dry run row.
	row(row *PlanRow) TargetRow
	// done says whether out's part in this cloud is done.
	done(out *Outcome) bool
	// summary is the cloud key the key ended in and one line saying how
	// it was verified.
	summary(out *Outcome) (cloudKey, summary string)
	// bulk gives res, a bulk run's result for out, this cloud's key and
	// summary.
	bulk(out *Outcome, res *BulkResult)
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

// entry is entry i of a key's targets list, as one of its targets.
type entry struct {
	Target
	i int
}

func (e entry) cloud() string { return e.Cloud() }

// targets is key k's targets, in order: the cloud of the file's kms
// section when k goes there (lead), then each entry of k's targets list.
func (f *File) targets(k Key) []target {
	var ts []target
	if l := f.lead(k); l != nil {
		ts = append(ts, l)
	}
	for i, t := range k.Targets {
		ts = append(ts, entry{t, i})
	}
	return ts
}

// lead is the target that leads p's key, or nil.
func (p *Plan) lead() leadTarget { return leadOf(p.targets) }

// leadOf is the target that leads a key with targets ts: its first, when
// that one leads; else nil.
func leadOf(ts []target) leadTarget {
	if len(ts) == 0 {
		return nil
	}
	l, _ := ts[0].(leadTarget)
	return l
}

// keyIDFor is the CKA_ID the target at position pos of a key's targets is
// given, from id, the HSM key known so far (nil: none yet): the first
// target gets none, and chooses the key by its label (generating it, or
// taking up the one an earlier run generated, proven its own, exactly as
// import --cloud gcp|azure --generate does); every later one gets the key
// by CKA_ID.
func keyIDFor(pos int, id []byte) []byte {
	if pos == 0 {
		return nil
	}
	return id
}

// needsLead says whether any key of f goes to the cloud of its kms section.
func (f *File) needsLead() bool {
	for _, k := range f.Keys {
		if f.lead(k) != nil {
			return true
		}
	}
	return false
}
