package ceremony

import (
	"context"
	"fmt"
	"time"
)

// AWS KMS as the first of a key's targets, which leads the key (see
// leadTarget): its plan, checks, run, and place among the key's targets
// are the AWS KMS part's own (aws_plan.go, aws_validate.go, aws_run.go).

// awsTarget is AWS KMS, the cloud of the file's kms section.
type awsTarget struct{}

// kmsCloud is the cloud the file's kms section names: AWS KMS.
func (f *File) kmsCloud() leadTarget { return awsTarget{} }

// lead is the target that leads key k, the first of its targets: AWS KMS
// when k goes there (see GoesToAWS), else nil.
func (f *File) lead(k Key) leadTarget {
	if f.GoesToAWS(k) {
		return awsTarget{}
	}
	return nil
}

func (awsTarget) cloud() string { return "aws" }

func (awsTarget) validateKey(c *checker, f *File, i int, now time.Time) {
	f.Keys[i].validateAWS(c, fmt.Sprintf("keys[%d]", i), f.DualControl.WrapWithTrusted, now)
}

func (awsTarget) validateSection(c *checker, f *File, i int) { f.validateReplicaRegions(c, i) }

func (awsTarget) plan(ctx context.Context, r *Runner, k Key, labels map[string]int) (*Plan, error) {
	return r.planAWS(ctx, k, labels)
}

// check: a rotation's plan (planRotation) ran its checks already.
func (awsTarget) check(r *Runner, p *Plan) error {
	if p.Action == ActionRotate {
		return nil
	}
	return r.checkAWS(p)
}

// run: a rotation ends the key, which then has no targets entries
// (validateTargets refuses them with rotate-to).
func (awsTarget) run(ctx context.Context, r *Runner, p *Plan, out *Outcome) (bool, error) {
	err := r.runAWS(ctx, p, out)
	return p.Action == ActionRotate, err
}

func (awsTarget) hsmKeyID(p *Plan, out *Outcome) ([]byte, error) { return awsHSMKeyID(p, out) }

func (awsTarget) entry(out *Outcome) *TargetOutcome { return awsEntry(out) }

// row is AWS KMS under the key's alias, with the key's own action.
func (awsTarget) row(row *PlanRow) TargetRow {
	return TargetRow{Cloud: "aws", Target: row.Alias, Action: row.Action}
}

func (awsTarget) done(out *Outcome) bool { return awsDone(out) }

func (awsTarget) summary(out *Outcome) (string, string) { return awsSummary(out) }

func (awsTarget) bulk(out *Outcome, res *BulkResult) { awsBulk(out, res) }

// fillReport: the report has always shown every key's Spec as AWS KMS
// names it.
func (awsTarget) fillReport(p *Plan) { p.part = &awsPlan{Spec: reportSpec(p.Material)} }
