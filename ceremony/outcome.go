package ceremony

import (
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// Outcome is what the run did for one key.
type Outcome struct {
	Plan   *Plan
	Result *awskms.Result
	Verify *awskms.Verification
	// Rotation is what a rotate-to key's rotation did.
	Rotation *awskms.RotateResult `json:",omitempty"`
	// Targets, for a key with targets, is every target's outcome: AWS KMS
	// first, then each of the key's targets that the run reached.
	Targets []*TargetOutcome `json:",omitempty"`
}

// Done says whether the key ended in the state the ceremony wants: verified
// enabled, imported and Enabled, or rotated and verified.
func (o *Outcome) Done() bool {
	toAWS := o.Plan == nil || o.Plan.Action != ActionTargets
	if toAWS && !o.awsDone() {
		return false
	}
	if o.Plan == nil {
		return true
	}
	if n := len(o.Plan.Key.Targets); n > 0 {
		if toAWS {
			n++ // AWS KMS is the first target
		}
		if len(o.Targets) != n {
			return false
		}
		for _, t := range o.Targets {
			if !t.Done {
				return false
			}
		}
	}
	return true
}

// awsDone says whether the key's AWS KMS part is done.
func (o *Outcome) awsDone() bool {
	return o.Verify != nil && o.Verify.KeyEnabled || o.Result != nil && o.Result.KeyState == "Enabled" || o.Rotation != nil && o.Rotation.Verification != ""
}

// Summary is the KMS key the key ended in (the new one of a manual
// rotation) and one line saying how it was verified.
func (o *Outcome) Summary() (kmsKeyID, summary string) {
	kmsKeyID = o.Plan.KMSKeyID
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

// CountDone is how many of outs are Done.
func CountDone(outs []*Outcome) int {
	n := 0
	for _, o := range outs {
		if o.Done() {
			n++
		}
	}
	return n
}
