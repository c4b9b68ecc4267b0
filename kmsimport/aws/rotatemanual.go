package aws

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// checkManual prepares the manual rotation of an HMAC or asymmetric key:
// the alias to move, and the successor an earlier run may have made.
func (ro *rotation) checkManual(ctx context.Context) error {
	k := ro.cur
	api := ro.regions[0].KMS
	if k.MultiRegion != "" {
		return invalid("KMS key %s is a multi-Region %s key: kmsbridge rotates multi-Region keys only on demand (symmetric keys)", k.KeyId, k.KeySpec)
	}
	aliases, err := aliasesOf(ctx, api, k.KeyId)
	if err != nil {
		return err
	}
	tags, err := (&run{im: &Importer{KMS: api}}).listTags(ctx, k.KeyId)
	if err != nil {
		return err
	}
	successor := tags[TagRotatedTo]
	if successor == "" && ro.intent != nil {
		successor = ro.intent.get(riNewKMSKeyID)
	}
	// The alias is settled after the successor when the key has none: an
	// earlier run may have moved it already.
	aliasLater := false
	switch {
	case ro.intent != nil && ro.intent.get(riAlias) != "":
		// The open rotation's alias; takeUpIntent checked that it points
		// to this key or to its new one.
		ro.out.AliasName = ro.intent.get(riAlias)
	case ro.rreq.Alias != "":
		target, err := AliasTarget(ctx, api, ro.rreq.Alias)
		if err != nil {
			return err
		}
		if target != k.KeyId && (successor == "" || target != successor) {
			return invalid("alias %s points to %s, not to KMS key %s: give the alias of the key being rotated", ro.rreq.Alias, dash(target), k.KeyId)
		}
		ro.out.AliasName = ro.rreq.Alias
	case len(aliases) == 1:
		ro.out.AliasName = aliases[0]
	case len(aliases) == 0 && successor != "":
		// An earlier run moved the alias already.
		moved, err := aliasesOf(ctx, api, successor)
		if err != nil {
			return err
		}
		if len(moved) == 1 {
			ro.out.AliasName = moved[0]
		}
	case len(aliases) == 0:
		aliasLater = true
	default:
		return invalid("KMS key %s has %d aliases (%v): choose the one to move with --alias", k.KeyId, len(aliases), aliases)
	}
	if successor != "" {
		ro.out.NewKeyId = successor
		s, err := describeLinked(ctx, ro.regions[0], successor)
		if err != nil {
			return err
		}
		if s == nil {
			return invalid("KMS key %s is tagged %s=%s, but that key is gone or has no link tags: remove the tag (aws kms untag-resource) and run rotate again", k.KeyId, TagRotatedTo, successor)
		}
		if ro.newKey, err = ro.findHSMKey(s.HSMKeyID, ""); err != nil {
			return err
		}
		ro.newLabel = ro.newKey.Label
		return ro.aliasOfSuccessor(ctx, aliasLater)
	}
	var notProven string // a successor this host cannot prove kmsbridge made
	err = ro.chooseNewKey(ctx, func(h *hsm.Key, l ownership.Links) bool {
		linked := l.All()
		if h.IDHex() == k.HSMKeyID || len(linked) > 1 {
			return true
		}
		if len(linked) == 1 {
			lt, err := (&run{im: &Importer{KMS: api}}).listTags(ctx, linked[0])
			if err != nil || lt[TagRotatedFrom] != "" && lt[TagRotatedFrom] != k.KeyId {
				return true
			}
			// The successor an earlier run created before tagging: this
			// host's journal shows it, or the operator adopts it (a run on
			// another host).
			if len(l.Foreign) == 1 && !ro.owner().Adopt {
				notProven = linked[0]
				return true
			}
			ro.out.NewKeyId = linked[0]
		}
		return false
	})
	if err != nil && notProven != "" {
		return fmt.Errorf("%w: KMS key %s holds the material of HSM key %q, the next generation of KMS key %s, but this host's journal does not show kmsbridge creating it (was the rotation started on another host?); nothing was changed. To finish that rotation here, run the same command again with --adopt (recorded)", ownership.ErrNotOurs, notProven, ro.newLabel, k.KeyId)
	}
	if err != nil {
		return err
	}
	return ro.aliasOfSuccessor(ctx, aliasLater)
}

// aliasOfSuccessor settles the alias of a key that has none (when needed):
// the one alias of the successor an earlier run made and moved it to,
// whichever way the request named the key.
func (ro *rotation) aliasOfSuccessor(ctx context.Context, needed bool) error {
	if !needed {
		return nil
	}
	k := ro.cur
	if ro.out.NewKeyId != "" {
		moved, err := aliasesOf(ctx, ro.regions[0].KMS, ro.out.NewKeyId)
		if err != nil {
			return err
		}
		if len(moved) == 1 {
			ro.out.AliasName = moved[0]
			return nil
		}
		if len(moved) == 0 {
			// Not moved yet, and the key had none: nothing to move.
			return invalid("KMS key %s has no alias, nor has its new key %s: manual rotation moves the alias applications use to a new KMS key; create one first (aws kms create-alias) or give --alias", k.KeyId, ro.out.NewKeyId)
		}
		return invalid("the new key %s of KMS key %s has %d aliases (%v): choose the one this rotation moves with --alias", ro.out.NewKeyId, k.KeyId, len(moved), moved)
	}
	return invalid("KMS key %s has no alias: manual rotation moves the alias applications use to a new KMS key; create one first (aws kms create-alias) or give --alias", k.KeyId)
}

// aliasesOf lists the aliases that point to keyID.
func aliasesOf(ctx context.Context, api API, keyID string) ([]string, error) {
	var out []string
	p := kms.NewListAliasesPaginator(api, &kms.ListAliasesInput{KeyId: aws.String(keyID)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, explain("ListAliases", err)
		}
		for _, a := range page.Aliases {
			if aws.ToString(a.TargetKeyId) == keyID {
				out = append(out, aws.ToString(a.AliasName))
			}
		}
	}
	return out, nil
}

// manual makes (or finishes) the successor key with new material through
// the import flow, links the two keys by tags, and moves the alias.
func (ro *rotation) manual(ctx context.Context) error {
	api := ro.regions[0].KMS
	k := ro.cur
	req := Request{
		KeySpec: k.KeySpec, KeyUsage: k.KeyUsage, Description: ro.rreq.Description, KMSKeyID: ro.out.NewKeyId,
		WrappingKeySpec: ro.req.WrappingKeySpec, Expiry: ro.req.Expiry,
	}
	if ro.newKey != nil {
		req.KeyID = ro.newKey.ID
	} else {
		req.KeyLabel, req.Generate = ro.newLabel, true
	}
	res, err := ro.im.Run(ctx, req)
	ro.out.Steps = append(ro.out.Steps, res.Steps...)
	ro.out.NewHSMKey = res.HSM
	if err != nil {
		return ro.manualFailed(err, res)
	}
	ro.out.NewKeyId = res.KeyId
	ro.out.NewKeyMaterialId = res.KeyMaterialId
	ro.out.Verification = res.Verification.Summary
	if err := ro.progress(map[string]string{riToHSMKeyID: res.HSM.KeyID, riNewKMSKeyID: res.KeyId}); err != nil {
		return err
	}
	err = ro.runSteps(ctx, []kmsimport.Step{
		{Name: StepTagRotatedKey, Run: func(ctx context.Context) (string, error) {
			return ro.tagKey(ctx, api, res.KeyId, TagRotatedFrom, k.KeyId)
		}},
		{Name: StepMoveAlias, Run: func(ctx context.Context) (string, error) {
			target, err := AliasTarget(ctx, api, ro.out.AliasName)
			if err != nil {
				return "", err
			}
			if target == res.KeyId {
				return fmt.Sprintf("alias %s already points to %s", ro.out.AliasName, res.KeyId), nil
			}
			movedHere := func(ctx context.Context, _ string) (bool, map[string]string, error) {
				target, err := AliasTarget(ctx, api, ro.out.AliasName)
				return target == res.KeyId, nil, err
			}
			if _, err := ro.do(ctx, change{
				op:     "UpdateAlias",
				target: map[string]string{"AliasName": ro.out.AliasName, "KmsKeyId": res.KeyId, "FromKmsKeyId": k.KeyId},
				call: func(ctx context.Context, _ string) (map[string]string, error) {
					_, err := api.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(ro.out.AliasName), TargetKeyId: aws.String(res.KeyId)})
					return nil, err
				},
				// A lost answer: the alias points to the new key if it took.
				settle: movedHere,
			}); err != nil {
				return "", err
			}
			return fmt.Sprintf("alias %s moved from %s to %s", ro.out.AliasName, k.KeyId, res.KeyId), nil
		}, Skip: ro.out.AliasName == ""},
		{Name: StepTagRotatedKey, Run: func(ctx context.Context) (string, error) {
			return ro.tagKey(ctx, api, k.KeyId, TagRotatedTo, res.KeyId)
		}},
		{Name: StepCloseRotation, Run: ro.closeIntent},
	})
	if err != nil {
		var se *kmsimport.StepError
		if errors.As(err, &se) {
			se.State = append(se.State, fmt.Sprintf("new KMS key %s holds the new material of HSM key %q", res.KeyId, res.HSM.KeyLabel))
			se.Resume = fmt.Sprintf("fix the cause above and run the same kmsbridge rotate --kms-key-id %s again: it finds the new key and finishes", k.KeyId)
		}
	}
	return err
}

func (ro *rotation) manualFailed(err error, res *Result) error {
	var se *kmsimport.StepError
	if errors.As(err, &se) && (res.HSM.Generated || res.CreatedKMSKey) {
		se.Resume = fmt.Sprintf("fix the cause above and run the same kmsbridge rotate --kms-key-id %s again: it finds HSM key %q and the new KMS key, and continues", ro.cur.KeyId, res.HSM.KeyLabel)
	}
	return err
}
