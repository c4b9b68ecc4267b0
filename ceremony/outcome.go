package ceremony

// Outcome is what the run did for one key.
type Outcome struct {
	Plan *Plan
	// awsOutcome is what the AWS KMS part did (Result, Verify, Rotation),
	// in the place the report has always shown it.
	awsOutcome
	// Targets, for a key with targets, is every target's outcome: the
	// primary target (AWS KMS) first, then each of the key's targets that the run reached.
	Targets []*TargetOutcome `json:",omitempty"`
}

// Done says whether the key ended in the state the ceremony wants: verified
// enabled, imported and Enabled, or rotated and verified.
func (o *Outcome) Done() bool {
	pt := o.primary()
	if pt != nil && !pt.done(o) {
		return false
	}
	if o.Plan == nil {
		return true
	}
	if n := len(o.Plan.Key.Targets); n > 0 {
		if pt != nil {
			n++ // the primary target is the first
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
