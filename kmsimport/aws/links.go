package aws

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/ownership"
)

// KMSKeyState is a KMS key as a ceremony sees it: its metadata and the
// kmsbridge tags that link it to an HSM key.
type KMSKeyState struct {
	Metadata *types.KeyMetadata
	Tags     map[string]string
}

// LinkedHSMKeyID is the CKA_ID (hex) of the HSM key the KMS key's material
// came from, by its kmsbridge:hsm-key-id tag, or "".
func (s *KMSKeyState) LinkedHSMKeyID() string { return s.Tags[TagHSMKeyID] }

// KeyID is the KMS key's ID.
func (s *KMSKeyState) KeyID() string { return aws.ToString(s.Metadata.KeyId) }

// External says whether the key's origin is EXTERNAL: only such a key can
// ever hold material from the HSM.
func (s *KMSKeyState) External() bool { return s.Metadata.Origin == types.OriginTypeExternal }

// Origin is the key's origin as KMS names it (AWS_KMS, EXTERNAL, ...).
func (s *KMSKeyState) Origin() string { return string(s.Metadata.Origin) }

// Enabled says whether the key's state is Enabled.
func (s *KMSKeyState) Enabled() bool { return s.Metadata.KeyState == types.KeyStateEnabled }

// State is the key's state as KMS names it (Enabled, PendingImport, ...).
func (s *KMSKeyState) State() string { return string(s.Metadata.KeyState) }

// DescribeKMSKey returns the key's metadata and tags.
func DescribeKMSKey(ctx context.Context, api API, keyID string) (*KMSKeyState, error) {
	out, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, explain("DescribeKey", err)
	}
	r := &run{im: &Importer{KMS: api}}
	tags, err := r.listTags(ctx, aws.ToString(out.KeyMetadata.KeyId))
	if err != nil {
		return nil, err
	}
	return &KMSKeyState{Metadata: out.KeyMetadata, Tags: tags}, nil
}

// AliasTarget returns the key id alias points to, or "" when it is free.
func AliasTarget(ctx context.Context, api API, alias string) (string, error) {
	return (&run{im: &Importer{KMS: api}}).findAlias(ctx, alias)
}

// Tag keys that link a KMS key to its HSM master copy, so each side can be
// found from the other.
const (
	TagHSMKeyID    = ownership.TagHSMKeyID
	TagHSMKeyLabel = "kmsbridge:hsm-key-label"
	TagTokenSerial = ownership.TagTokenSerial
	TagTokenLabel  = "kmsbridge:token-label"
)
