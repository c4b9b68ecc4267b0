package aws

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// MaterialKey describes an EXTERNAL KMS key, the one material of it chosen
// for deletion, and the HSM key that material came from, as its kmsbridge
// tags record it.
type MaterialKey struct {
	KeyId       string `json:"KeyId"`
	Arn         string `json:"Arn"`
	KeyState    string `json:"KeyState"`
	HSMKeyID    string `json:"HsmKeyId,omitempty"`
	HSMKeyLabel string `json:"HsmKeyLabel,omitempty"`
	TokenSerial string `json:"TokenSerial,omitempty"`
	// KeyMaterialId is the chosen material (--key-material-id, else the
	// current one); empty for keys whose one material has no id.
	KeyMaterialId string `json:"KeyMaterialId,omitempty"`
	// ImportState is the chosen material's: IMPORTED, or PENDING_IMPORT
	// once deleted or expired.
	ImportState string `json:"ImportState,omitempty"`

	symmetric bool
}

// DescribeMaterialKey looks the key up, with its current material, and
// refuses anything that has no imported material to delete (origin not
// EXTERNAL).
func DescribeMaterialKey(ctx context.Context, api API, keyID string) (*MaterialKey, error) {
	return DescribeKeyMaterial(ctx, api, keyID, "")
}

// DescribeKeyMaterial is DescribeMaterialKey for the material materialID
// of the key (empty: its current material). A material the key does not
// have is refused, naming the ones it has.
func DescribeKeyMaterial(ctx context.Context, api API, keyID, materialID string) (*MaterialKey, error) {
	if materialID != "" && !materialIDRE.MatchString(materialID) {
		return nil, invalid("--key-material-id %q is not a KeyMaterialId (64 lowercase hex digits): copy it from kmsbridge status or aws kms list-key-rotations --include-key-material ALL_KEY_MATERIAL", kmsimport.Excerpt(materialID))
	}
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
	k := &MaterialKey{
		KeyId: aws.ToString(md.KeyId), Arn: aws.ToString(md.Arn), KeyState: string(md.KeyState),
		HSMKeyID: tags[TagHSMKeyID], HSMKeyLabel: tags[TagHSMKeyLabel], TokenSerial: tags[TagTokenSerial],
		symmetric: md.KeySpec == types.KeySpecSymmetricDefault,
	}
	ms, _, err := ListMaterials(ctx, api, md, tags)
	if err != nil {
		return nil, err
	}
	var m *Material
	var ids []string
	for i := range ms {
		ids = append(ids, ms[i].KeyMaterialId)
		if materialID != "" && ms[i].KeyMaterialId == materialID || materialID == "" && ms[i].State == string(types.KeyMaterialStateCurrent) {
			m = &ms[i]
		}
	}
	switch {
	case m == nil && materialID != "":
		return nil, invalid("KMS key %s has no key material %s; its materials are %s (kmsbridge status lists them with their HSM keys)", k.KeyId, materialID, orNone(strings.Join(ids, ", ")))
	case m == nil:
		return k, nil
	}
	k.KeyMaterialId, k.ImportState = m.KeyMaterialId, m.ImportState
	if m.HSMKeyID != "" && !strings.EqualFold(m.HSMKeyID, k.HSMKeyID) {
		k.HSMKeyID, k.HSMKeyLabel = m.HSMKeyID, ""
	}
	return k, nil
}

// imported says whether the chosen material (or, for a key without
// material ids, the key) holds imported material now.
func (k *MaterialKey) imported() bool {
	if k.ImportState != "" {
		return k.ImportState == string(types.ImportStateImported)
	}
	return k.KeyState != string(types.KeyStatePendingImport)
}

func (k *MaterialKey) input() *kms.DeleteImportedKeyMaterialInput {
	in := &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(k.KeyId)}
	if k.symmetric && k.KeyMaterialId != "" {
		in.KeyMaterialId = aws.String(k.KeyMaterialId)
	}
	return in
}

// DeleteMaterial deletes the chosen imported material of k. KMS keeps the
// key, which becomes PendingImport when the material was current or
// non-current (not when it was pending rotation); the same material can be
// imported again from the HSM.
func DeleteMaterial(ctx context.Context, api API, k *MaterialKey) error {
	if err := k.CheckDeletable(); err != nil {
		return err
	}
	if !k.imported() {
		return invalid("%s has no imported key material to delete: it was already deleted or expired", k.what())
	}
	_, err := api.DeleteImportedKeyMaterial(ctx, k.input())
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

// what names the chosen material in messages.
func (k *MaterialKey) what() string {
	if k.KeyMaterialId == "" {
		return "KMS key " + k.KeyId
	}
	return fmt.Sprintf("key material %s of KMS key %s", k.KeyMaterialId, k.KeyId)
}

// String describes the key for a confirmation prompt.
func (k *MaterialKey) String() string {
	s := fmt.Sprintf("KMS key %s (%s)", k.KeyId, k.KeyState)
	if k.KeyMaterialId != "" {
		s += fmt.Sprintf(", key material %s (%s)", k.KeyMaterialId, k.ImportState)
	}
	if k.HSMKeyID != "" {
		s += fmt.Sprintf(", material from HSM key %q CKA_ID %s on token serial %s", k.HSMKeyLabel, k.HSMKeyID, k.TokenSerial)
	}
	return s
}

// materialIDRE is the form of a KeyMaterialId: 64 lowercase hex digits.
var materialIDRE = lazyre.New(`^[0-9a-f]{64}$`)

// StepDeleteMaterial names the delete-material step in errors and records.
const StepDeleteMaterial = "delete-material"

// DeleteMaterialOnce deletes k's chosen imported material through im's
// journal. A re-run after an earlier delete whose answer was lost (or that
// finished) finds the material deleted and the delete in the journal, and
// reports it done (already is true) instead of refusing. The key's state
// does not decide: a key whose other material was deleted is PendingImport
// and still holds this one.
func DeleteMaterialOnce(ctx context.Context, im *Importer, k *MaterialKey) (already bool, err error) {
	if im.Command == "" {
		im.Command = "delete-material"
	}
	if err := k.CheckDeletable(); err != nil {
		return false, err
	}
	r := &run{im: im, req: &Request{}, res: &Result{KeyId: k.KeyId, Origin: string(types.OriginTypeExternal)}}
	if !k.imported() {
		earlier := im.Journal.Intents("DeleteImportedKeyMaterial", func(e journal.Entry) bool {
			return e.Target["KmsKeyId"] == k.KeyId && (e.Target["KeyMaterialId"] == "" || e.Target["KeyMaterialId"] == k.KeyMaterialId)
		})
		for _, in := range earlier {
			if out, ok := im.Journal.Outcome(in.Attempt); !ok || out.Result != journal.ResultFailed {
				return true, im.Journal.Note(im.Command, "settled DeleteImportedKeyMaterial", map[string]string{"KmsKeyId": k.KeyId, "Attempt": in.Attempt})
			}
		}
		return false, DeleteMaterial(ctx, im.KMS, k)
	}
	target := map[string]string{"KmsKeyId": k.KeyId, "HsmKeyId": k.HSMKeyID}
	if k.KeyMaterialId != "" {
		target["KeyMaterialId"] = k.KeyMaterialId
	}
	_, err = r.do(ctx, change{
		op:     "DeleteImportedKeyMaterial",
		target: target,
		call: func(ctx context.Context, _ string) (map[string]string, error) {
			_, err := im.KMS.DeleteImportedKeyMaterial(ctx, k.input())
			return nil, err
		},
		settle: func(ctx context.Context, _ string) (bool, map[string]string, error) {
			now, err := DescribeKeyMaterial(ctx, im.KMS, k.KeyId, k.KeyMaterialId)
			if err != nil {
				return false, nil, err
			}
			return !now.imported(), nil, nil
		},
	})
	if err != nil {
		return false, r.fail(StepDeleteMaterial, err)
	}
	return false, nil
}
