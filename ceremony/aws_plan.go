package ceremony

import (
	"context"
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// The AWS KMS part of a ceremony key, planned: what exists (the HSM key,
// the KMS key its kms-key-id, alias or link tags lead to, what earlier
// runs recorded) decides whether the run generates, creates, imports,
// rotates or only verifies.

// AWSClients are the AWS KMS clients a ceremony's keys that go to AWS KMS
// use.
type AWSClients struct {
	// KMS is the home Region's client.
	KMS awskms.API
	// Replicas are the clients of every replica Region the file names.
	Replicas []awskms.Regional
	// Tagging searches the home Region's KMS keys by tag (the Resource
	// Groups Tagging API); nil searches nothing.
	Tagging awskms.TagSearch
}

// awsPlan is the AWS KMS part of a key's plan (Plan.part), which only
// the AWS KMS part reads. The report shows its fields among the plan's
// own, where they have always been (report.go: awsPlan.planReport).
type awsPlan struct {
	// Spec is the key's material as AWS KMS names it.
	Spec awskms.KeySpec
	// Request is the import the AWS KMS part runs.
	Request awskms.Request
}

// awsPlanOf is p's AWS KMS part: what planAWS (or, for a key that does
// not go to AWS KMS, fillReport) gave it, else an empty one.
func awsPlanOf(p *Plan) *awsPlan {
	if a, ok := p.part.(*awsPlan); ok {
		return a
	}
	return &awsPlan{}
}

// planAWS decides, read-only, what the run will do for key k, which goes
// to AWS KMS: from the HSM key under its label, the KMS key its
// kms-key-id, alias or link tags lead to, and what earlier runs recorded.
func (r *Runner) planAWS(ctx context.Context, k Key, labels map[string]int) (*Plan, error) {
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
	a := &awsPlan{Spec: spec, Request: req}
	p := &Plan{Key: k, Material: m, part: a}
	// One search answers both what the plan needs (the key under the
	// label) and what generating needs (that nothing else has it); a bulk
	// run's list of labels answers both for a label no object had.
	if labels == nil || labels[k.HSMLabel] > 0 {
		hk, inUse, err := r.Token.FindByLabel(k.HSMLabel, m.HSM)
		if err != nil {
			return nil, err
		}
		p.HSMKey = hk
		if hk != nil {
			if _, ok := r.owner().Interrupted(k.HSMLabel, hk, r.Token.Incomplete(hk)); ok {
				// What a generation stopped inside the token left: the
				// import destroys it and generates again (kmsimport.GenerateHSMKey).
				p.HSMKey = nil
			}
		}
		a.Request.LabelFree = !inUse
	} else {
		a.Request.LabelFree = true
	}

	// The KMS key: named in the file, else the alias's target, else one an
	// interrupted run created from this HSM key (found by its tags).
	kmsID, how := k.KMSKeyID, "kms-key-id in the file"
	if kmsID == "" && k.Alias != "" {
		if kmsID, err = awskms.AliasTarget(ctx, r.Clouds.AWS.KMS, k.Alias); err != nil {
			return nil, err
		}
		how = "alias " + k.Alias
		// The import need not look the alias up again.
		a.Request.AliasFree = kmsID == ""
	}
	if kmsID == "" && p.HSMKey != nil {
		links, err := r.owner().LinkedKMSKeys(ctx, awskms.NewKMSView(r.Clouds.AWS.KMS, r.Clouds.AWS.Tagging), p.HSMKey.IDHex())
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
		if st, err = awskms.DescribeKMSKey(ctx, r.Clouds.AWS.KMS, kmsID); err != nil {
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
		a.Request.KMSKeyID = p.KMSKeyID
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
	a.Request.Generate, a.Request.KeyLabel, a.Request.KeyID = false, "", p.HSMKey.ID
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
		a.Request.KMSKeyID = p.KMSKeyID
	default:
		p.Action, p.Why = ActionImport, fmt.Sprintf("found through %s, %s", how, st.State())
		a.Request.KMSKeyID = p.KMSKeyID
	}
	return p, nil
}

// planRotation decides, read-only, whether rotate-to is still to be done:
// a dry run of the rotation says so, and checks everything it can.
func (r *Runner) planRotation(ctx context.Context, p *Plan) (*Plan, error) {
	k := p.Key
	if p.KMSKeyID == "" {
		return nil, fmt.Errorf("%w: key %q: rotate-to needs the existing KMS key, but neither kms-key-id nor alias %s leads to one", kmsimport.ErrInvalidInput, k.HSMLabel, k.Alias)
	}
	// With the journal, so that the plan finishes a rotation this host
	// left open, and knows one it finished.
	im := &awskms.Importer{KMS: r.Clouds.AWS.KMS, Token: r.Token, Journal: r.Journal, Owner: r.owner(), Tagging: r.Clouds.AWS.Tagging}
	res, err := im.Rotate(ctx, r.regions(k), r.rotateRequest(p, true))
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", k.HSMLabel, err)
	}
	p.Action, p.Why = ActionRotate, fmt.Sprintf("%s rotation of KMS key %s to new HSM key %q", res.Mode, p.KMSKeyID, k.RotateTo)
	if res.AlreadyDone {
		p.Action, p.Why = ActionVerify, fmt.Sprintf("already rotated: HSM key %q backs KMS key %s", k.RotateTo, p.KMSKeyID)
		if p.HSMKey, err = r.Token.FindKey(hsm.KeySelector{Label: k.RotateTo}, p.Material.HSM); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// regions is the home Region's client and those of k's replica Regions.
func (r *Runner) regions(k Key) []awskms.Regional {
	out := []awskms.Regional{{Region: r.File.KMS.Region, KMS: r.Clouds.AWS.KMS}}
	for _, name := range k.ReplicaRegions {
		for _, rg := range r.Clouds.AWS.Replicas {
			if rg.Region == name {
				out = append(out, rg)
			}
		}
	}
	return out
}

// rotateRequest is the rotation a rotate-to key asks for.
func (r *Runner) rotateRequest(p *Plan, dry bool) awskms.RotateRequest {
	req := awsPlanOf(p).Request
	return awskms.RotateRequest{KMSKeyID: p.KMSKeyID, NewKeyLabel: p.Key.RotateTo, Description: p.Key.Description,
		Expiry: req.Expiry, WrappingKeySpec: req.WrappingKeySpec, Alias: p.Key.Alias, DryRun: dry}
}
