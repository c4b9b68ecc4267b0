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
	// awsSpec and awsRequest are the AWS KMS part's key spec and import
	// request (Spec, Request), in the place the report has always shown
	// them.
	awsSpec
	Action Action
	awsRequest
	// HSMKey is the existing HSM key, or nil.
	HSMKey *hsm.Key
	// KMSKeyID is the existing KMS key, or "".
	KMSKeyID string
	// Why explains how earlier work was recognised.
	Why string
	// primary is the key's primary target, which planned it; nil for a
	// key that goes to its targets entries only (ActionTargets).
	primary primaryTarget
}

// Runner runs a ceremony file against one token and one KMS.
type Runner struct {
	File *File
	// AWSClients are the AWS KMS clients of the keys that go there.
	AWSClients
	Token kmsimport.Token
	Log   *slog.Logger
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
	// could not be written; see awskms.Importer.Halt.
	Halt func() error
	// Durable, when set, makes what a key's run wrote durable before
	// RunAll reports the key (the journal's and the record's Sync, when
	// their entries are written without waiting for their fsync). A key
	// whose entries cannot be made durable is reported failed.
	Durable func() error
	// Clouds opens the clients and journals of the keys' targets (Cloud
	// KMS, Key Vault); nil when the file names no target.
	Clouds Clouds
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
// free without searching the token again.
func (r *Runner) planKey(ctx context.Context, k Key, labels map[string]int) (*Plan, error) {
	pt := r.File.primary(k)
	if pt == nil {
		return r.planTargetsOnly(k)
	}
	p, err := pt.plan(ctx, r, k, labels)
	if p != nil {
		p.primary = pt
	}
	return p, err
}

// RunKey carries out p: the key's primary target first, when it has one
// (import, verify or rotate, as planned; a rotation ends the key there),
// then each of its targets entries in order (runTargets).
func (r *Runner) RunKey(ctx context.Context, p *Plan) (*Outcome, error) {
	out := &Outcome{Plan: p}
	if p.primary != nil {
		if stop, err := p.primary.run(ctx, r, p, out); err != nil || stop {
			return out, err
		}
	}
	var err error
	if len(p.Key.Targets) > 0 {
		err = r.runTargets(ctx, p, out)
	}
	return out, err
}

// CheckPlan checks, read-only, what the token must be able to do for p:
// generate the key type and wrap it for the key's primary target. The
// targets entries' checks are CheckTargets'.
func (r *Runner) CheckPlan(p *Plan) error {
	if p.primary == nil {
		return nil // CheckTargets ran the checks
	}
	return p.primary.check(r, p)
}
