package ceremony

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
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
	// Spec is the material as AWS KMS names it (what the report has
	// always shown).
	Spec    awskms.KeySpec
	Action  Action
	Request awskms.Request
	// HSMKey is the existing HSM key, or nil.
	HSMKey *hsm.Key
	// KMSKeyID is the existing KMS key, or "".
	KMSKeyID string
	// Why explains how earlier work was recognised.
	Why string
}

// Runner runs a ceremony file against one token and one KMS.
type Runner struct {
	File  *File
	KMS   awskms.API
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
	// Replicas are the clients of every replica Region the file names.
	Replicas []awskms.Regional
	// Journal is the journal of intents of this token and KMS target; nil
	// journals nothing.
	Journal *journal.Journal
	// Tagging searches the home Region's KMS keys by tag (the Resource
	// Groups Tagging API); nil searches nothing.
	Tagging awskms.TagSearch
	// Halt stops a key's import before its next change when the record
	// could not be written; see awskms.Importer.Halt.
	Halt func() error
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
	if !r.File.GoesToAWS(k) {
		return r.planTargetsOnly(k)
	}
	req, err := k.Request(r.File)
	if err != nil {
		return nil, err
	}
	spec, err := awskms.ParseKeySpec(k.KeySpec)
	if err != nil {
		return nil, err
	}
	m, err := k.material()
	if err != nil {
		return nil, err
	}
	p := &Plan{Key: k, Material: m, Spec: spec, Request: req}
	// One search answers both what the plan needs (the key under the
	// label) and what generating needs (that nothing else has it); a bulk
	// run's list of labels answers both for a label no object had.
	if labels == nil || labels[k.HSMLabel] > 0 {
		hk, inUse, err := r.Token.FindByLabel(k.HSMLabel, m.HSM)
		if err != nil {
			return nil, err
		}
		p.HSMKey = hk
		p.Request.LabelFree = !inUse
	} else {
		p.Request.LabelFree = true
	}

	// The KMS key: named in the file, else the alias's target, else one an
	// interrupted run created from this HSM key (found by its tags).
	kmsID, how := k.KMSKeyID, "kms-key-id in the file"
	if kmsID == "" && k.Alias != "" {
		if kmsID, err = awskms.AliasTarget(ctx, r.KMS, k.Alias); err != nil {
			return nil, err
		}
		how = "alias " + k.Alias
		// The import need not look the alias up again.
		p.Request.AliasFree = kmsID == ""
	}
	if kmsID == "" && p.HSMKey != nil {
		links, err := r.owner().LinkedKMSKeys(ctx, awskms.NewKMSView(r.KMS, r.Tagging), p.HSMKey.IDHex())
		if err != nil {
			return nil, err
		}
		if len(links.Foreign) > 0 {
			return nil, fmt.Errorf("%w: key %q: HSM key CKA_ID %s already backs KMS key(s) %s, which carry its link tags but which this host's journal does not show kmsbridge making: if one is yours, name it with kms-key-id in the file; nothing was changed", ownership.ErrNotOurs, k.HSMLabel, p.HSMKey.IDHex(), strings.Join(links.Foreign, ", "))
		}
		ids := links.Ours
		if len(ids) > 1 {
			return nil, fmt.Errorf("%w: HSM key %q is linked to several KMS keys (%s): resolve by hand, then add kms-key-id to the file", kmsimport.ErrInvalidInput, k.HSMLabel, strings.Join(ids, ", "))
		}
		if len(ids) == 1 {
			kmsID, how = ids[0], "its kmsbridge:hsm-key-id tag"
		}
	}
	var st *awskms.KMSKeyState
	if kmsID != "" {
		if st, err = awskms.DescribeKMSKey(ctx, r.KMS, kmsID); err != nil {
			return nil, err
		}
		p.KMSKeyID = st.KeyID()
	}

	if st != nil && !st.External() {
		return nil, fmt.Errorf("%w: key %q: %s leads to KMS key %s, whose origin is %s, not EXTERNAL: KMS made its material itself, so it can never hold this HSM key's; point %s at another key or choose another alias", kmsimport.ErrInvalidInput, k.HSMLabel, how, p.KMSKeyID, st.Origin(), how)
	}
	if k.RotateTo != "" {
		return r.planRotation(ctx, p)
	}
	switch {
	case p.HSMKey == nil && !req.Generate:
		return nil, fmt.Errorf("%w: key %q: the token has no HSM key labelled %q, and the file says generate: false", kmsimport.ErrInvalidInput, k.HSMLabel, k.HSMLabel)
	case p.HSMKey == nil && st != nil && st.LinkedHSMKeyID() != "":
		return nil, fmt.Errorf("%w: key %q: %s leads to KMS key %s, which holds material from HSM key CKA_ID %s, not in this token", kmsimport.ErrInvalidInput, k.HSMLabel, how, p.KMSKeyID, st.LinkedHSMKeyID())
	case p.HSMKey == nil:
		p.Action = ActionGenerate
		p.Request.KMSKeyID = p.KMSKeyID
		return p, nil
	}
	id := p.HSMKey.IDHex()
	if st != nil {
		if linked := st.LinkedHSMKeyID(); linked != "" && linked != id {
			return nil, fmt.Errorf("%w: key %q: %s leads to KMS key %s, linked to HSM key CKA_ID %s, but the token's key %q is CKA_ID %s", kmsimport.ErrInvalidInput, k.HSMLabel, how, p.KMSKeyID, linked, k.HSMLabel, id)
		}
	}
	if req.Generate && (st == nil || st.LinkedHSMKeyID() == "") {
		if _, err := r.owner().GeneratedKey(k.HSMLabel, p.HSMKey, "choose another hsm-label, or set generate: false for this key to import it as named"); err != nil {
			return nil, fmt.Errorf("%w: key %q: the token already has a key labelled %q: %w", kmsimport.ErrInvalidInput, k.HSMLabel, k.HSMLabel, err)
		}
	}
	// From here on the HSM key exists: import it by CKA_ID, never generate.
	p.Request.Generate, p.Request.KeyLabel, p.Request.KeyID = false, "", p.HSMKey.ID
	switch {
	case st == nil:
		p.Action, p.Why = ActionCreate, "the HSM key exists (generated by an earlier run), no KMS key does yet"
	case st.Enabled() && (st.LinkedHSMKeyID() != id || st.Tags[awskms.TagTokenSerial] != r.Token.Identity().Serial):
		// Done means: EXTERNAL, linked to this HSM key on this token, and
		// the proof passes. Anything else is not this ceremony's work.
		return nil, fmt.Errorf("%w: key %q: %s leads to KMS key %s, which is Enabled but whose link tags (%s %q, %s %q) do not name HSM key CKA_ID %s on token serial %s: it was not imported from this key by kmsbridge; point %s at another key, or resolve by hand",
			kmsimport.ErrInvalidInput, k.HSMLabel, how, p.KMSKeyID, awskms.TagHSMKeyID, kmsimport.Excerpt(st.LinkedHSMKeyID()), awskms.TagTokenSerial, kmsimport.Excerpt(st.Tags[awskms.TagTokenSerial]), id, r.Token.Identity().Serial, how)
	case st.Enabled():
		p.Action, p.Why = ActionVerify, "found through "+how
		if k.Alias != "" && how != "alias "+k.Alias {
			// Imported, but the alias was not made yet: the import path makes it.
			p.Action = ActionImport
		}
		p.Request.KMSKeyID = p.KMSKeyID
	default:
		p.Action, p.Why = ActionImport, fmt.Sprintf("found through %s, %s", how, st.State())
		p.Request.KMSKeyID = p.KMSKeyID
	}
	return p, nil
}

// RunKey carries out p.
func (r *Runner) RunKey(ctx context.Context, p *Plan) (*Outcome, error) {
	out := &Outcome{Plan: p}
	if p.Action == ActionTargets {
		return out, r.runTargets(ctx, p, out)
	}
	observe := func(ev kmsimport.StepEvent) {
		if r.Observe != nil {
			r.Observe(p.Key, ev)
		}
	}
	if p.Action == ActionVerify {
		v, err := awskms.Verify(ctx, r.KMS, r.Token, p.KMSKeyID, p.HSMKey, p.Spec)
		out.Verify = &v
		tok := r.Token.Identity()
		facts := map[string]string{"KmsKeyId": p.KMSKeyID, "HsmKeyId": p.HSMKey.IDHex(), "HsmKeyLabel": p.HSMKey.Label, "VerificationSummary": v.Summary}
		observe(kmsimport.StepEvent{Step: awskms.StepVerify, Summary: v.Summary, Err: err, Facts: facts, Token: &tok})
		if err == nil && len(p.Key.Targets) > 0 {
			err = r.runTargets(ctx, p, out)
		}
		return out, err
	}
	im := &awskms.Importer{KMS: r.KMS, Token: r.Token, Log: r.Log, Observe: observe, Journal: r.Journal, Command: "ceremony", Halt: r.Halt, Replicas: r.regions(p.Key)[1:],
		Owner: r.owner(), Tagging: r.Tagging}
	if p.Action == ActionRotate {
		res, err := im.Rotate(ctx, r.regions(p.Key), r.rotateRequest(p, false))
		out.Rotation = res
		return out, err
	}
	res, err := im.Run(ctx, p.Request)
	out.Result = res
	if err == nil && len(p.Key.Targets) > 0 {
		err = r.runTargets(ctx, p, out)
	}
	return out, err
}

// CheckPlan checks, read-only, what the token must be able to do for p:
// generate the key type and wrap it with the file's wrapping algorithm.
func (r *Runner) CheckPlan(p *Plan) error {
	if p.Action == ActionRotate || p.Action == ActionTargets {
		return nil // planRotation, or CheckTargets, ran the checks
	}
	return awskms.CheckTokenCan(r.Token, p.Spec, p.Request, p.HSMKey)
}
