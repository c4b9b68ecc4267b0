package ceremony

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// The AWS KMS part of a ceremony key, carried out: the import, the
// verification of a key already imported, or the rotation, as planned
// (planAWS); what it tells the key's other targets (the HSM key, and AWS
// KMS as the key's first target); and its outcome.

// awsOutcome is what the AWS KMS part did (Outcome.results), which only
// the AWS KMS part reads; the report shows its fields among the
// outcome's own (Result, Verify, Rotation), where they have always been
// (awsPlan.outcomeReport).
type awsOutcome struct {
	// Result is the import's result, when the key was imported.
	Result *awskms.Result
	// Verify is the verification of a key imported before.
	Verify *awskms.Verification
	// Rotation is the rotation's result, when the key was rotated.
	Rotation *awskms.RotateResult `json:",omitempty"`
}

// runAWS carries out p's AWS KMS part: verify a key imported before,
// rotate, or import (generating the HSM key and creating the KMS key as
// planned), journaled exactly-once in the AWS journal.
func (r *Runner) runAWS(ctx context.Context, p *Plan, out *Outcome) error {
	a, res := awsPlanOf(p), &awsOutcome{}
	out.results = res
	observe := func(ev kmsimport.StepEvent) {
		if r.Observe != nil {
			r.Observe(p.Key, ev)
		}
	}
	if p.Action == ActionVerify {
		v, err := awskms.Verify(ctx, r.Clouds.AWS.KMS, r.Token, p.KMSKeyID, p.HSMKey, a.Spec)
		res.Verify = &v
		tok := r.Token.Identity()
		facts := map[string]string{"KmsKeyId": p.KMSKeyID, "HsmKeyId": p.HSMKey.IDHex(), "HsmKeyLabel": p.HSMKey.Label, "VerificationSummary": v.Summary}
		observe(kmsimport.StepEvent{Step: awskms.StepVerify, Summary: v.Summary, Err: err, Facts: facts, Token: &tok})
		return err
	}
	im := &awskms.Importer{KMS: r.Clouds.AWS.KMS, Token: r.Token, Log: r.Log, Observe: observe, Journal: r.Journal, Command: "ceremony", Halt: r.Halt, Replicas: r.regions(p.Key)[1:],
		Owner: r.owner(), Tagging: r.Clouds.AWS.Tagging}
	var err error
	if p.Action == ActionRotate {
		res.Rotation, err = im.Rotate(ctx, r.regions(p.Key), r.rotateRequest(p, false))
		return err
	}
	res.Result, err = im.Run(ctx, a.Request)
	return err
}

// checkAWS checks, read-only, that the token can generate p's key type and
// wrap it with the file's wrapping algorithm.
func (r *Runner) checkAWS(p *Plan) error {
	a := awsPlanOf(p)
	return awskms.CheckTokenCan(r.Token, a.Spec, a.Request, p.HSMKey)
}

// awsHSMKeyID is the CKA_ID of the HSM key p's AWS KMS part imported (or
// found imported), which the key's other targets get.
func awsHSMKeyID(p *Plan, out *Outcome) ([]byte, error) {
	k, res := p.Key, awsOutcomeOf(out)
	switch {
	case p.HSMKey != nil && p.Action != ActionRotate:
		return p.HSMKey.ID, nil
	case res.Result != nil && res.Result.HSM.KeyID != "":
		b, err := hex.DecodeString(res.Result.HSM.KeyID)
		if err != nil {
			return nil, fmt.Errorf("key %q: the AWS import reported CKA_ID %q: %w", k.HSMLabel, res.Result.HSM.KeyID, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: key %q: the AWS part named no HSM key to send to the other targets", kmsimport.ErrInvalidInput, k.HSMLabel)
}

// awsTarget is AWS KMS as the first of the key's targets, as the results
// and the record show it.
func awsEntry(o *Outcome) *TargetOutcome {
	kmsID, summary := awsSummary(o)
	return &TargetOutcome{Cloud: "aws", Target: kmsID, Done: awsDone(o), Proof: summary}
}

// awsOutcomeOf is what o's AWS KMS part did (runAWS), else an empty one.
func awsOutcomeOf(o *Outcome) *awsOutcome {
	if res, ok := o.results.(*awsOutcome); ok {
		return res
	}
	return &awsOutcome{}
}

// awsDone says whether the key's AWS KMS part is done.
func awsDone(out *Outcome) bool {
	o := awsOutcomeOf(out)
	return o.Verify != nil && o.Verify.KeyEnabled || o.Result != nil && o.Result.KeyState == "Enabled" || o.Rotation != nil && o.Rotation.Verification != ""
}

// awsSummary is the KMS key the key ended in (the new one of a manual
// rotation) and one line saying how it was verified.
func awsSummary(out *Outcome) (kmsKeyID, summary string) {
	kmsKeyID = out.Plan.KMSKeyID
	o := awsOutcomeOf(out)
	if o.Result != nil {
		kmsKeyID, summary = o.Result.KeyId, o.Result.Verification.Summary
	}
	if o.Verify != nil {
		summary = o.Verify.Summary
	}
	if o.Rotation != nil {
		kmsKeyID, summary = o.Rotation.KeyId, o.Rotation.Mode+" rotation: "+o.Rotation.Verification
		if o.Rotation.NewKeyId != "" {
			kmsKeyID = o.Rotation.NewKeyId
		}
	}
	return kmsKeyID, summary
}

// awsBulk gives res, a bulk run's result for key out, the KMS key and
// the summary of its AWS KMS part, as a bulk run has always shown them.
func awsBulk(out *Outcome, res *BulkResult) {
	o := awsOutcomeOf(out)
	if o.Result != nil && o.Result.KeyId != "" {
		res.KMSKeyID = o.Result.KeyId
		res.Summary = o.Result.Verification.Summary
	}
	if o.Verify != nil {
		res.Summary = o.Verify.Summary
	}
}
