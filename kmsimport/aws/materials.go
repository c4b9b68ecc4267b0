package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Tags that record which HSM key backs each generation of a rotated key's
// material. kmsbridge:hsm-key-id always names the first generation; every
// later generation gets one kmsbridge:material:<first 16 hex digits of its
// KeyMaterialId> tag whose value is the CKA_ID (hex) of its HSM key, and
// kmsbridge:rotating-to names the HSM key of a rotation under way until its
// material has its own tag. KMS allows 50 tags per key: the 4 link tags,
// the kmsbridge:attempt tag of the CreateKey that made the key, at most 25
// rotation tags (KMS's limit on on-demand rotations) and one rotating-to
// tag leave 19 for the user; a rotation that would not fit is refused
// before any change (rotation.checkTagRoom).
const (
	TagMaterialPrefix = "kmsbridge:material:"
	TagRotatingTo     = "kmsbridge:rotating-to"
	// materialTagIDLen is how much of a KeyMaterialId names its tag: 64
	// bits are ample to tell a key's at most 26 materials apart.
	materialTagIDLen = 16
)

// MaterialTag is the tag key that names the HSM key behind materialID.
func MaterialTag(materialID string) string {
	if len(materialID) > materialTagIDLen {
		materialID = materialID[:materialTagIDLen]
	}
	return TagMaterialPrefix + materialID
}

// Material is one key material of a KMS key, as ListKeyRotations (or, for
// keys without rotation, DescribeKey) reports it, with the HSM key that
// backs it by the key's tags.
type Material struct {
	KeyMaterialId string `json:"KeyMaterialId,omitempty"`
	// State is CURRENT, NON_CURRENT, PENDING_ROTATION or
	// PENDING_MULTI_REGION_IMPORT_AND_ROTATION.
	State           string     `json:"KeyMaterialState,omitempty"`
	ImportState     string     `json:"ImportState,omitempty"`
	ExpirationModel string     `json:"ExpirationModel,omitempty"`
	ValidTo         *time.Time `json:"ValidTo,omitempty"`
	RotationDate    *time.Time `json:"RotationDate,omitempty"`
	Description     string     `json:"KeyMaterialDescription,omitempty"`
	// HSMKeyID is the CKA_ID (hex) of the HSM key holding this material,
	// or "" when the tags do not say.
	HSMKeyID string `json:"HsmKeyId,omitempty"`
}

// ListMaterials lists every key material of the KMS key md: for symmetric
// keys by ListKeyRotations with IncludeKeyMaterial=ALL_KEY_MATERIAL, for
// HMAC and asymmetric keys (whose one material never changes) from md
// itself. tags are the key's tags; they name the HSM key of each material.
// A KMS endpoint without ListKeyRotations (older emulators) falls back to
// DescribeKey's CurrentKeyMaterialId, and the note says so.
func ListMaterials(ctx context.Context, api API, md *types.KeyMetadata, tags map[string]string) ([]Material, string, error) {
	if md.KeySpec != types.KeySpecSymmetricDefault {
		return []Material{singleMaterial(md, tags)}, "", nil
	}
	var out []Material
	p := kms.NewListKeyRotationsPaginator(api, &kms.ListKeyRotationsInput{KeyId: md.KeyId, IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			var ke *kmsimport.KMSError
			if e := explain("ListKeyRotations", err); errors.As(e, &ke) && ke.Code == "UnsupportedOperationException" {
				return []Material{singleMaterial(md, tags)}, "this KMS endpoint has no ListKeyRotations: only the current material is shown", nil
			}
			return nil, "", explain("ListKeyRotations", err)
		}
		for _, r := range page.Rotations {
			m := Material{
				KeyMaterialId: aws.ToString(r.KeyMaterialId), State: string(r.KeyMaterialState),
				ImportState: string(r.ImportState), ExpirationModel: string(r.ExpirationModel),
				ValidTo: utc(r.ValidTo), RotationDate: utc(r.RotationDate), Description: aws.ToString(r.KeyMaterialDescription),
			}
			out = append(out, m)
		}
	}
	assignHSMKeys(out, md, tags)
	return out, "", nil
}

// assignHSMKeys fills each material's HSMKeyID from the tags: its own
// material tag; else, for a pending material, kmsbridge:rotating-to; else,
// for the first material (no rotation date), kmsbridge:hsm-key-id.
func assignHSMKeys(ms []Material, md *types.KeyMetadata, tags map[string]string) {
	for i := range ms {
		m := &ms[i]
		switch id, ok := tags[MaterialTag(m.KeyMaterialId)]; {
		case ok && m.KeyMaterialId != "":
			m.HSMKeyID = id
		case strings.HasPrefix(m.State, "PENDING") && tags[TagRotatingTo] != "":
			m.HSMKeyID = tags[TagRotatingTo]
		case m.RotationDate == nil && !strings.HasPrefix(m.State, "PENDING"):
			m.HSMKeyID = tags[TagHSMKeyID]
		}
	}
}

// singleMaterial is the one material of a key without rotations.
func singleMaterial(md *types.KeyMetadata, tags map[string]string) Material {
	m := Material{
		KeyMaterialId: aws.ToString(md.CurrentKeyMaterialId), State: string(types.KeyMaterialStateCurrent),
		ExpirationModel: string(md.ExpirationModel), ValidTo: utc(md.ValidTo), HSMKeyID: tags[TagHSMKeyID],
	}
	m.ImportState = string(types.ImportStateImported)
	if md.KeyState == types.KeyStatePendingImport {
		m.ImportState = string(types.ImportStatePendingImport)
		m.ValidTo = nil
	}
	return m
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// DaysLeft is the number of whole days from now until t, negative once t
// has passed.
func DaysLeft(now, t time.Time) int {
	d := t.Sub(now)
	days := int(d / (24 * time.Hour))
	if d < 0 && d%(24*time.Hour) != 0 {
		days--
	}
	return days
}

// describeMaterial is a short description of m for messages.
func describeMaterial(m Material) string {
	s := "material"
	if m.KeyMaterialId != "" {
		s += " " + shortID(m.KeyMaterialId)
	}
	if m.ValidTo != nil {
		s += fmt.Sprintf(" (valid to %s)", m.ValidTo.Format(time.RFC3339))
	}
	return s
}

// shortID shortens a 64-hex KeyMaterialId for tables and messages.
func shortID(id string) string {
	if len(id) > materialTagIDLen {
		return id[:materialTagIDLen] + "…"
	}
	return id
}

// settleMaterial says whether an ImportKeyMaterial whose answer was lost
// took effect: for NEW_KEY_MATERIAL, a material pending rotation exists
// (rotate imports only when none was pending before); for a named
// KeyMaterialId, that material is imported with the ValidTo asked for.
func settleMaterial(ctx context.Context, api API, in *kms.ImportKeyMaterialInput) (bool, map[string]string, error) {
	ms, err := rotations(ctx, api, aws.ToString(in.KeyId))
	if err != nil {
		return false, nil, err
	}
	for _, m := range ms {
		id := aws.ToString(m.KeyMaterialId)
		switch {
		case in.ImportType == types.ImportTypeNewKeyMaterial && strings.HasPrefix(string(m.KeyMaterialState), "PENDING"):
			return true, map[string]string{"KeyMaterialId": id}, nil
		case in.KeyMaterialId != nil && id == *in.KeyMaterialId && m.ImportState == types.ImportStateImported &&
			(in.ValidTo == nil && m.ValidTo == nil || in.ValidTo != nil && m.ValidTo != nil && m.ValidTo.Equal(*in.ValidTo)):
			return true, map[string]string{"KeyMaterialId": id}, nil
		}
	}
	return false, nil, nil
}

// MaterialOf is the material of ms that the HSM key with CKA_ID hsmKeyID
// (hex) backs, or nil. It is the one place that maps an HSM key to its
// material: import, verify and delete-material all ask it.
func MaterialOf(ms []Material, hsmKeyID string) *Material {
	for i := range ms {
		if ms[i].HSMKeyID != "" && strings.EqualFold(ms[i].HSMKeyID, hsmKeyID) {
			return &ms[i]
		}
	}
	return nil
}

// materialOfKey finds, among the materials of the linked KMS key md, the
// one the run's HSM key backs. A key with material, none of it backed by
// this HSM key, is refused before any change: KMS only ever re-accepts a
// material it already holds, so the import could not succeed. nil (no
// error) means the key has no material yet to compare with.
func (r *run) materialOfKey(ctx context.Context, md *types.KeyMetadata, tags map[string]string) (*Material, error) {
	keyID, mine := aws.ToString(md.KeyId), r.key.IDHex()
	if md.KeyState == types.KeyStatePendingImport && md.CurrentKeyMaterialId == nil && !aws.ToBool(md.MultiRegion) &&
		md.KeySpec == types.KeySpecSymmetricDefault && strings.EqualFold(tags[TagHSMKeyID], mine) {
		// Linked, never imported (KMS names the current material of a
		// single-Region symmetric key once it has one).
		return nil, nil
	}
	ms, _, err := ListMaterials(ctx, r.im.KMS, md, tags)
	if err != nil {
		return nil, err
	}
	if m := MaterialOf(ms, mine); m != nil {
		if strings.HasPrefix(m.State, "PENDING") && m.ImportState != string(types.ImportStateImported) {
			return nil, invalid("HSM key %q (CKA_ID %s) is the new material of a rotation of KMS key %s that is under way: finish it with kmsbridge rotate --kms-key-id %s", r.key.Label, mine, keyID, keyID)
		}
		return m, nil
	}
	if strings.EqualFold(tags[TagRotatingTo], mine) {
		return nil, invalid("HSM key %q (CKA_ID %s) is the new material of a rotation of KMS key %s that is under way: finish it with kmsbridge rotate --kms-key-id %s", r.key.Label, mine, keyID, keyID)
	}
	if len(ms) == 0 && strings.EqualFold(tags[TagHSMKeyID], mine) {
		// Linked, never imported: an earlier run stopped before its import.
		return nil, nil
	}
	var backing, ids []string
	for _, m := range ms {
		if m.HSMKeyID == "" {
			continue
		}
		s := "CKA_ID " + m.HSMKeyID
		if strings.EqualFold(m.HSMKeyID, tags[TagHSMKeyID]) && tags[TagHSMKeyLabel] != "" {
			s += fmt.Sprintf(" (label %q)", tags[TagHSMKeyLabel])
		}
		if m.KeyMaterialId != "" {
			s += " for material " + shortID(m.KeyMaterialId)
		}
		backing, ids = append(backing, s), append(ids, m.HSMKeyID)
	}
	if len(backing) == 0 {
		backing = append(backing, fmt.Sprintf("CKA_ID %s (label %q)", tags[TagHSMKeyID], tags[TagHSMKeyLabel]))
		ids = append(ids, tags[TagHSMKeyID])
	}
	return nil, invalid("KMS key %s holds material from HSM key %s (token serial %s), not from the chosen HSM key %q (CKA_ID %s): KMS only re-accepts material it already holds; choose --hsm-key-id %s",
		keyID, strings.Join(backing, ", "), tags[TagTokenSerial], r.key.Label, mine, strings.Join(ids, " or --hsm-key-id "))
}
