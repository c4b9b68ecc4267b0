package ceremony

import (
	"context"
	"fmt"
	"time"
)

// AWS KMS as a key's primary target (see primaryTarget): its plan,
// checks, run, and place among the key's targets are the AWS KMS part's
// own (aws_plan.go, aws_validate.go, aws_run.go).

// awsPrimary is AWS KMS, the cloud of the file's kms section.
type awsPrimary struct{}

// primaryCloud is the cloud the file's kms section names: AWS KMS.
func (f *File) primaryCloud() primaryTarget { return awsPrimary{} }

// primary is key k's primary target: AWS KMS when k goes there (see
// GoesToAWS), else nil.
func (f *File) primary(k Key) primaryTarget {
	if f.GoesToAWS(k) {
		return awsPrimary{}
	}
	return nil
}

func (awsPrimary) cloud() string { return "aws" }

func (awsPrimary) validateKey(c *checker, f *File, i int, now time.Time) {
	f.Keys[i].validateAWS(c, fmt.Sprintf("keys[%d]", i), f.DualControl.WrapWithTrusted, now)
}

func (awsPrimary) validateSection(c *checker, f *File, i int) { f.validateReplicaRegions(c, i) }

func (awsPrimary) plan(ctx context.Context, r *Runner, k Key, labels map[string]int) (*Plan, error) {
	return r.planAWS(ctx, k, labels)
}

// check: a rotation's plan (planRotation) ran its checks already.
func (awsPrimary) check(r *Runner, p *Plan) error {
	if p.Action == ActionRotate {
		return nil
	}
	return r.checkAWS(p)
}

// run: a rotation ends the key, which then has no targets entries
// (validateTargets refuses them with rotate-to).
func (awsPrimary) run(ctx context.Context, r *Runner, p *Plan, out *Outcome) (bool, error) {
	err := r.runAWS(ctx, p, out)
	return p.Action == ActionRotate, err
}

func (awsPrimary) hsmKeyID(p *Plan, out *Outcome) ([]byte, error) { return awsHSMKeyID(p, out) }

func (awsPrimary) entry(out *Outcome) *TargetOutcome { return out.awsTarget() }

// row is AWS KMS under the key's alias, with the key's own action.
func (awsPrimary) row(row *PlanRow) TargetRow {
	return TargetRow{Cloud: "aws", Target: row.Alias, Action: row.Action}
}

func (awsPrimary) done(out *Outcome) bool { return out.awsDone() }

// fillReport: the report has always shown every key's Spec as AWS KMS
// names it.
func (awsPrimary) fillReport(p *Plan) { p.awsSpec = reportSpec(p.Material) }

// primary is the primary target of the key o is the outcome of: its
// plan's; for an outcome without a plan, or whose plan was made
// elsewhere, AWS KMS unless the plan sends the key to its targets only.
func (o *Outcome) primary() primaryTarget {
	switch {
	case o.Plan == nil:
		return awsPrimary{}
	case o.Plan.primary != nil:
		return o.Plan.primary
	case o.Plan.Action != ActionTargets:
		return awsPrimary{}
	}
	return nil
}
