package ceremony

import (
	"context"
	"log/slog"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// Action is what a ceremony run will do for one key, decided from what
// exists: the HSM key, the KMS key its alias or tags point to, and what
// earlier runs of the ceremony recorded.
type Action string

// The actions, from nothing done to everything done.
const (
	// ActionGenerate generates the HSM key, then creates and imports.
	ActionGenerate Action = "generate the HSM key, create the KMS key, import"
	// ActionCreate imports an HSM key that exists into a new KMS key.
	ActionCreate Action = "create the KMS key and import the existing HSM key"
	// ActionImport imports an HSM key into a KMS key that exists without material.
	ActionImport Action = "import the existing HSM key into the existing KMS key"
	// ActionRotate rotates the existing key to a new HSM key (rotate-to).
	ActionRotate Action = "rotate to a new HSM key"
	// ActionVerify: already imported; verify only.
	ActionVerify Action = "already done: verify only"
)

// Plan is one key's step in the ceremony.
type Plan struct {
	Key Key
	// Material is the HSM key the key names, as every cloud sees it.
	Material Material `json:"-"`
	Action   Action
	// HSMKey is the existing HSM key, or nil.
	HSMKey *hsm.Key
	// KMSKeyID is the existing KMS key, or "".
	KMSKeyID string
	// Why explains how earlier work was recognised.
	Why string
	// part is the lead target's own part of the plan, which only that
	// target reads (see cloudPart); for a key without a lead, the part
	// the report shows for every key (leadTarget.fillReport).
	part cloudPart
	// targets is the key's targets, in order (File.targets): the first
	// planned the key when it leads it (leadTarget); a key that goes to
	// its targets entries only has no lead (ActionTargets).
	targets []target
}

// Runner runs a ceremony file against one token and one KMS.
type Runner struct {
	File *File
	// Clouds is every cloud's clients, which only that cloud's part of
	// the ceremony reads; cmd/kmsbridge opens them.
	Clouds Clouds
	Token  kmsimport.Token
	Log    *slog.Logger
	// Observe hears of every import step, for the ceremony record, and of
	// what stops a key before its first step: a planning failure (step
	// StepPlan) and, in RunKeys, a signal between keys (step
	// kmsimport.StepInterrupted). Those two events have no facts; see
	// LabelledObserver for the fact naming the key.
	Observe func(key Key, ev kmsimport.StepEvent)
	// Generated maps HSM labels this ceremony generated in earlier runs to
	// their CKA_ID (hex), as the ceremony record shows them: a label in use
	// is this ceremony's own work only if the record (or the journal) says
	// so. An empty CKA_ID means an intent to generate was recorded but not
	// its outcome (the run was killed in between): the label was free then,
	// so the key under it is the ceremony's own.
	Generated map[string]string
	// RecordKMS and RecordAttempts are the KMS keys and lost CreateKey
	// attempts the ceremony record shows (see Evidence), for the ownership
	// authority.
	RecordKMS, RecordAttempts map[string]string
	// Journal is the journal of intents of this token and KMS target; nil
	// journals nothing.
	Journal *journal.Journal
	// Halt stops a key's import before its next change when the record
	// could not be written; every cloud's importer takes it.
	Halt func() error
	// Durable, when set, makes what a key's run wrote durable before
	// RunAll reports the key (the journal's and the record's Sync, when
	// their entries are written without waiting for their fsync). A key
	// whose entries cannot be made durable is reported failed.
	Durable func() error
}

// owner is the ownership authority the planner and every key's import
// ask: this token, this host's journal, and the ceremony record's
// generated keys.
func (r *Runner) owner() *ownership.Authority {
	return &ownership.Authority{TokenSerial: r.Token.Identity().Serial, Journal: r.Journal, Record: r.Generated,
		RecordKMS: r.RecordKMS, RecordAttempts: r.RecordAttempts, Command: "ceremony"}
}

// PlanKey decides, read-only, what the run will do for key k.
func (r *Runner) PlanKey(ctx context.Context, k Key) (*Plan, error) {
	return r.planKey(ctx, k, nil)
}

// planKey is PlanKey; labels, when not nil, is the token's labels as a
// bulk run read them at its start (see RunAll): a label not among them is
// free without searching the token again. The key's lead target plans it;
// a key without one goes to its targets entries only.
func (r *Runner) planKey(ctx context.Context, k Key, labels map[string]int) (*Plan, error) {
	targets := r.File.targets(k)
	var (
		p   *Plan
		err error
	)
	if l := leadOf(targets); l != nil {
		p, err = l.plan(ctx, r, k, labels)
	} else {
		p, err = r.planTargetsOnly(k)
	}
	if p != nil {
		p.targets = targets
	}
	return p, err
}

// RunKey carries out p: each of the key's targets in order, stopping at
// the first failure. The lead target, when the key has one, goes first
// (import, verify or rotate, as planned; a rotation ends the key there);
// each targets entry then gets the HSM key the first target chose
// (runEntry). A key with targets entries ends each target with a
// StepTarget entry in the record, the lead's included.
func (r *Runner) RunKey(ctx context.Context, p *Plan) (*Outcome, error) {
	out := &Outcome{Plan: p}
	var id []byte // the HSM key, once a target chose it
	for pos, t := range p.targets {
		var (
			stop bool
			err  error
		)
		switch t := t.(type) {
		case leadTarget:
			id, stop, err = r.runLead(ctx, p, t, out)
		case entry:
			id, err = r.runEntry(ctx, p.Key, t, keyIDFor(pos, id), out)
		}
		if err != nil || stop {
			return out, err
		}
	}
	return out, nil
}

// runLead carries out p's lead target l, as the key's own steps, and
// returns the HSM key it chose; stop says the key ends there: a rotation,
// or a key with no targets entries. Before the entries, the lead shows
// as the key's first target (its StepTarget entry).
func (r *Runner) runLead(ctx context.Context, p *Plan, l leadTarget, out *Outcome) (id []byte, stop bool, err error) {
	if stop, err = l.run(ctx, r, p, out); err != nil || stop || len(p.Key.Targets) == 0 {
		return nil, true, err
	}
	if id, err = l.hsmKeyID(p, out); err != nil {
		return nil, true, err
	}
	to := l.entry(out)
	out.Targets = append(out.Targets, to)
	r.observeTarget(p.Key, to, nil)
	kmsimport.CrashPoint(ctx, "ceremony-target:"+l.cloud())
	return id, false, nil
}

// CheckPlan checks, read-only, what the token must be able to do for p:
// generate the key type and wrap it for the key's lead target. The
// targets entries' checks are CheckTargets'.
func (r *Runner) CheckPlan(p *Plan) error {
	l := p.lead()
	if l == nil {
		return nil // CheckTargets ran the checks
	}
	return l.check(r, p)
}
