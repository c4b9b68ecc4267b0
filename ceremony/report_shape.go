package ceremony

import "encoding/json"

// The report (--output json) shows a key's plan and outcome with the
// fields of its lead target's own part among the core's, where they have
// always been: the core structs hold no cloud's fields, and each cloud's
// part gives the shape it shows them in.

// cloudPart is a cloud's own part of a key's plan (Plan.part): for AWS
// KMS, its key spec and import request (aws_report.go). The plan of a
// key without a lead holds the part the report shows for every key
// (leadTarget.fillReport).
type cloudPart interface {
	// planReport is p as the report shows it.
	planReport(p *Plan) any
	// outcomeReport is o, an outcome of a plan holding this part, as the
	// report shows it, with its lead's results (Outcome.results).
	outcomeReport(o *Outcome) any
	// readOutcome sets o's results from b, o as outcomeReport showed it.
	readOutcome(b []byte, o *Outcome) error
}

// reportReader is the cloud whose fields the report shows for every key
// (reportCloud), reading them back.
type reportReader interface {
	// readPlan sets p's part from b, p as the report showed it.
	readPlan(b []byte, p *Plan) error
}

// MarshalJSON is p as the report shows it: with its part's fields
// (cloudPart.planReport), or its own fields alone when it has none.
func (p Plan) MarshalJSON() ([]byte, error) {
	if p.part != nil {
		return json.Marshal(p.part.planReport(&p))
	}
	type plain Plan
	return json.Marshal(plain(p))
}

// MarshalJSON is o as the report shows it: with its plan's part's fields
// (cloudPart.outcomeReport), or its own fields alone when it has none.
func (o Outcome) MarshalJSON() ([]byte, error) {
	if o.Plan != nil && o.Plan.part != nil {
		return json.Marshal(o.Plan.part.outcomeReport(&o))
	}
	type plain Outcome
	return json.Marshal(plain(o))
}

// UnmarshalJSON reads p as MarshalJSON wrote it, so that a report read
// back holds what was written: its part, and its targets (the report
// cloud first, as the lead, unless the key went to its targets entries
// only).
func (p *Plan) UnmarshalJSON(b []byte) error {
	type plain Plan
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	rc := reportCloud()
	p.targets = nil
	if l, ok := rc.(target); ok && p.Action != ActionTargets {
		p.targets = append(p.targets, l)
	}
	for i, t := range p.Key.Targets {
		p.targets = append(p.targets, entry{t, i})
	}
	return rc.readPlan(b, p)
}

// UnmarshalJSON reads o as MarshalJSON wrote it, its lead's results
// included.
func (o *Outcome) UnmarshalJSON(b []byte) error {
	type plain Outcome
	if err := json.Unmarshal(b, (*plain)(o)); err != nil {
		return err
	}
	if o.Plan != nil && o.Plan.part != nil {
		return o.Plan.part.readOutcome(b, o)
	}
	return nil
}
