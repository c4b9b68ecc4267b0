package ceremony

import (
	"encoding/json"

	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// The AWS KMS part's place in the report: every key's plan and outcome
// are shown with AWS KMS's fields where the report has always shown them
// (Spec before Action, Request after it; Result, Verify and Rotation
// after the plan), so --output json is the same as before the fields
// moved out of the core structs.

func (a *awsPlan) planReport(p *Plan) any {
	return struct {
		Key      Key
		Spec     awskms.KeySpec
		Action   Action
		Request  awskms.Request
		HSMKey   *hsm.Key
		KMSKeyID string
		Why      string
	}{p.Key, a.Spec, p.Action, a.Request, p.HSMKey, p.KMSKeyID, p.Why}
}

func (a *awsPlan) outcomeReport(o *Outcome) any {
	return struct {
		Plan *Plan
		awsOutcome
		Targets []*TargetOutcome `json:",omitempty"`
	}{o.Plan, *awsOutcomeOf(o), o.Targets}
}

func (a *awsPlan) readOutcome(b []byte, o *Outcome) error {
	res := &awsOutcome{}
	if err := json.Unmarshal(b, res); err != nil {
		return err
	}
	o.results = res
	return nil
}

// reportCloud is the cloud whose fields the report shows for every key:
// AWS KMS, the cloud of a file's kms section.
func reportCloud() reportReader { return awsTarget{} }

// readPlan: every plan in a report has AWS KMS's part (Spec, Request).
func (awsTarget) readPlan(b []byte, p *Plan) error {
	a := &awsPlan{}
	if err := json.Unmarshal(b, a); err != nil {
		return err
	}
	p.part = a
	return nil
}
