package ceremony

import (
	"context"
	"fmt"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// The AWS KMS part of a ceremony key: its Regions and its rotation.

// regions is the home Region's client and those of k's replica Regions.
func (r *Runner) regions(k Key) []awskms.Regional {
	out := []awskms.Regional{{Region: r.File.KMS.Region, KMS: r.KMS}}
	for _, name := range k.ReplicaRegions {
		for _, rg := range r.Replicas {
			if rg.Region == name {
				out = append(out, rg)
			}
		}
	}
	return out
}

// rotateRequest is the rotation a rotate-to key asks for.
func (r *Runner) rotateRequest(p *Plan, dry bool) awskms.RotateRequest {
	return awskms.RotateRequest{KMSKeyID: p.KMSKeyID, NewKeyLabel: p.Key.RotateTo, Description: p.Key.Description,
		Expiry: p.Request.Expiry, WrappingKeySpec: p.Request.WrappingKeySpec, Alias: p.Key.Alias, DryRun: dry}
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
	im := &awskms.Importer{KMS: r.KMS, Token: r.Token, Journal: r.Journal, Owner: r.owner(), Tagging: r.Tagging}
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
