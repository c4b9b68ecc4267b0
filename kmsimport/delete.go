package kmsimport

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/journal"
)

// MaterialKey describes an EXTERNAL KMS key and the HSM key its material
// came from, as its kmsbridge tags record it.
type MaterialKey struct {
	KeyId       string `json:"KeyId"`
	Arn         string `json:"Arn"`
	KeyState    string `json:"KeyState"`
	HSMKeyID    string `json:"HsmKeyId,omitempty"`
	HSMKeyLabel string `json:"HsmKeyLabel,omitempty"`
	TokenSerial string `json:"TokenSerial,omitempty"`
}

// DescribeMaterialKey looks the key up and refuses anything that has no
// imported material to delete (origin not EXTERNAL).
func DescribeMaterialKey(ctx context.Context, api API, keyID string) (*MaterialKey, error) {
	out, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, explain("DescribeKey", err)
	}
	md := out.KeyMetadata
	if md.Origin != types.OriginTypeExternal {
		return nil, invalid("KMS key %s has origin %s: only keys with origin EXTERNAL have imported material to delete", aws.ToString(md.KeyId), md.Origin)
	}
	r := &run{im: &Importer{KMS: api}}
	tags, err := r.listTags(ctx, aws.ToString(md.KeyId))
	if err != nil {
		return nil, err
	}
	return &MaterialKey{
		KeyId: aws.ToString(md.KeyId), Arn: aws.ToString(md.Arn), KeyState: string(md.KeyState),
		HSMKeyID: tags[TagHSMKeyID], HSMKeyLabel: tags[TagHSMKeyLabel], TokenSerial: tags[TagTokenSerial],
	}, nil
}

// DeleteMaterial deletes the imported material of k. KMS keeps the key,
// which returns to PendingImport; the same material can be imported again
// from the HSM.
func DeleteMaterial(ctx context.Context, api API, k *MaterialKey) error {
	if err := k.CheckDeletable(); err != nil {
		return err
	}
	if k.KeyState == string(types.KeyStatePendingImport) {
		return invalid("KMS key %s has no key material to delete (it is PendingImport)", k.KeyId)
	}
	_, err := api.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(k.KeyId)})
	if err != nil {
		return explain("DeleteImportedKeyMaterial", err)
	}
	return nil
}

// CheckDeletable refuses, before anything is changed, a key whose state
// has no imported material that DeleteImportedKeyMaterial would delete and
// leave PendingImport: a key pending deletion (the deletion takes the
// material with it), being created or updated, or unavailable.
func (k *MaterialKey) CheckDeletable() error {
	switch types.KeyState(k.KeyState) {
	case types.KeyStateEnabled, types.KeyStateDisabled, types.KeyStatePendingImport:
		return nil
	case types.KeyStatePendingDeletion, types.KeyStatePendingReplicaDeletion:
		return invalid("KMS key %s is %s: nothing was deleted; its scheduled deletion removes the key and its material together. To keep the key and delete only its material, cancel the deletion first (aws kms cancel-key-deletion --key-id %s), then run delete-material again", k.KeyId, k.KeyState, k.KeyId)
	}
	return invalid("KMS key %s is %s: nothing was deleted; its material can be deleted only while it is Enabled or Disabled: wait until it is, then run delete-material again", k.KeyId, k.KeyState)
}

// String describes the key for a confirmation prompt.
func (k *MaterialKey) String() string {
	s := fmt.Sprintf("KMS key %s (%s)", k.KeyId, k.KeyState)
	if k.HSMKeyID != "" {
		s += fmt.Sprintf(", material from HSM key %q CKA_ID %s on token serial %s", k.HSMKeyLabel, k.HSMKeyID, k.TokenSerial)
	}
	return s
}

// StepDeleteMaterial names the delete-material step in errors and records.
const StepDeleteMaterial = "delete-material"

// DeleteMaterialOnce deletes k's imported material through im's journal.
// A re-run after an earlier delete whose answer was lost (or that
// finished) finds the key PendingImport and the delete in the journal,
// and reports it done (already is true) instead of refusing.
func DeleteMaterialOnce(ctx context.Context, im *Importer, k *MaterialKey) (already bool, err error) {
	if im.Command == "" {
		im.Command = "delete-material"
	}
	if err := k.CheckDeletable(); err != nil {
		return false, err
	}
	r := &run{im: im, req: &Request{}, res: &Result{KeyId: k.KeyId, Origin: string(types.OriginTypeExternal)}}
	if k.KeyState == string(types.KeyStatePendingImport) {
		earlier := im.Journal.Intents("DeleteImportedKeyMaterial", func(e journal.Entry) bool { return e.Target["KmsKeyId"] == k.KeyId })
		for _, in := range earlier {
			if out, ok := im.Journal.Outcome(in.Attempt); !ok || out.Result != journal.ResultFailed {
				return true, im.Journal.Note(im.Command, "settled DeleteImportedKeyMaterial", map[string]string{"KmsKeyId": k.KeyId, "Attempt": in.Attempt})
			}
		}
		return false, DeleteMaterial(ctx, im.KMS, k)
	}
	_, err = r.do(ctx, change{
		op:     "DeleteImportedKeyMaterial",
		target: map[string]string{"KmsKeyId": k.KeyId, "HsmKeyId": k.HSMKeyID},
		call: func(ctx context.Context, _ string) (map[string]string, error) {
			_, err := im.KMS.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(k.KeyId)})
			return nil, err
		},
		settle: func(ctx context.Context, _ string) (bool, map[string]string, error) {
			out, err := im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.KeyId)})
			if err != nil {
				return false, nil, explain("DescribeKey", err)
			}
			return out.KeyMetadata.KeyState == types.KeyStatePendingImport, nil, nil
		},
	})
	if err != nil {
		return false, r.fail(StepDeleteMaterial, err)
	}
	return false, nil
}
