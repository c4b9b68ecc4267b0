package ceremony

// Outcome is what the run did for one key.
type Outcome struct {
	Plan *Plan
	// Targets, for a key with targets entries, is every target's
	// outcome, in order: its lead (AWS KMS) first, when it has one, then
	// each of its targets entries that the run reached.
	Targets []*TargetOutcome `json:",omitempty"`
	// results is what the key's lead target did, its own results, which
	// only that target reads (the report shows them: see cloudPart).
	results any
}

// Summary is the cloud key the key ended in (for AWS KMS, the new one of
// a manual rotation) and one line saying how its lead target verified
// it; the plan's key and no line for a key without a lead.
func (o *Outcome) Summary() (cloudKey, summary string) {
	if l := o.Plan.lead(); l != nil {
		return l.summary(o)
	}
	return o.Plan.KMSKeyID, ""
}

// Done says whether the key ended in the state the ceremony wants: its
// lead's part verified enabled, imported and Enabled, or rotated and
// verified; and, for a key with targets entries, every target reached
// and done.
func (o *Outcome) Done() bool {
	if o.Plan == nil {
		return false
	}
	if l := o.Plan.lead(); l != nil && !l.done(o) {
		return false
	}
	if len(o.Plan.Key.Targets) > 0 {
		if len(o.Targets) != len(o.Plan.targets) {
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
