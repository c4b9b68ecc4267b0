package kmsimport

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
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

// FindLinkedKMSKeys lists the KMS keys, not pending deletion, whose
// kmsbridge:hsm-key-id tag is hsmKeyID (hex) and whose token serial tag is
// serial: the keys an earlier, interrupted run made from that HSM key. It
// reads the tags of every key (at most MaxScanKeys), so it is for recovery
// and for the check before a new KMS key is made.
func FindLinkedKMSKeys(ctx context.Context, api API, hsmKeyID, serial string) ([]string, error) {
	var match []string
	err := scanKeys(ctx, api, func(id string, tags map[string]string) bool {
		if tags[TagHSMKeyID] == hsmKeyID && tags[TagTokenSerial] == serial {
			match = append(match, id)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	var found []string
	for _, id := range match {
		out, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			return nil, explain("DescribeKey", err)
		}
		md := out.KeyMetadata
		if md.KeyState == types.KeyStatePendingDeletion || md.Origin != types.OriginTypeExternal {
			continue
		}
		found = append(found, aws.ToString(md.KeyId))
	}
	return found, nil
}

// Tag keys that link a KMS key to its HSM master copy, so each side can be
// found from the other.
const (
	TagHSMKeyID    = "kmsbridge:hsm-key-id"
	TagHSMKeyLabel = "kmsbridge:hsm-key-label"
	TagTokenSerial = "kmsbridge:token-serial"
	TagTokenLabel  = "kmsbridge:token-label"
)
