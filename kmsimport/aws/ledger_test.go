package aws

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// ledger is a small stateful KMS for flow tests: keys with tags, aliases
// and materials, enough of the rotation rules to drive status, renew and
// rotate. The real rules are tested against the emulator end to end.
type ledger struct {
	*fakeKMS
	keys    map[string]*ledgerKey
	aliases map[string]string
	imports []*kms.ImportKeyMaterialInput
	// pollsToRotate is how many ListKeyRotations calls a rotation takes.
	pollsToRotate int
	polls         int
}

type ledgerKey struct {
	md        types.KeyMetadata
	tags      map[string]string
	materials []types.RotationsListEntry
}

var (
	ledgerPubOnce sync.Once
	ledgerPubDER  []byte
)

func ledgerPub() []byte {
	ledgerPubOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ledgerPubDER, _ = x509.MarshalPKIXPublicKey(&k.PublicKey)
	})
	return ledgerPubDER
}

func notFound(id string) error {
	return &smithy.GenericAPIError{Code: "NotFoundException", Message: "no key " + id}
}

func materialID(keyID string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", keyID, n)))
	return hex.EncodeToString(sum[:])
}

func newLedger() *ledger {
	l := &ledger{fakeKMS: &fakeKMS{}, keys: map[string]*ledgerKey{}, aliases: map[string]string{}}
	f := l.fakeKMS
	f.listKeys = func(*kms.ListKeysInput) (*kms.ListKeysOutput, error) {
		var ids []string
		for id := range l.keys {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		out := &kms.ListKeysOutput{}
		for _, id := range ids {
			out.Keys = append(out.Keys, types.KeyListEntry{KeyId: aws.String(id)})
		}
		return out, nil
	}
	f.describeKey = func(in *kms.DescribeKeyInput) (*kms.DescribeKeyOutput, error) {
		k, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		md := k.md
		return &kms.DescribeKeyOutput{KeyMetadata: &md}, nil
	}
	f.listResourceTags = func(in *kms.ListResourceTagsInput) (*kms.ListResourceTagsOutput, error) {
		k, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		out := &kms.ListResourceTagsOutput{}
		for tk, tv := range k.tags {
			out.Tags = append(out.Tags, types.Tag{TagKey: aws.String(tk), TagValue: aws.String(tv)})
		}
		return out, nil
	}
	f.tagResource = func(in *kms.TagResourceInput) (*kms.TagResourceOutput, error) {
		k, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		for _, t := range in.Tags {
			k.tags[*t.TagKey] = *t.TagValue
		}
		return &kms.TagResourceOutput{}, nil
	}
	f.untagResource = func(in *kms.UntagResourceInput) (*kms.UntagResourceOutput, error) {
		k, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		for _, t := range in.TagKeys {
			delete(k.tags, t)
		}
		return &kms.UntagResourceOutput{}, nil
	}
	f.listAliases = func(in *kms.ListAliasesInput) (*kms.ListAliasesOutput, error) {
		out := &kms.ListAliasesOutput{}
		for a, target := range l.aliases {
			if in.KeyId == nil || *in.KeyId == target {
				out.Aliases = append(out.Aliases, types.AliasListEntry{AliasName: aws.String(a), TargetKeyId: aws.String(target)})
			}
		}
		return out, nil
	}
	f.createKey = func(in *kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
		id := fmt.Sprintf("key-%d", len(l.keys)+1)
		if aws.ToBool(in.MultiRegion) {
			id = "mrk-" + id
		}
		k := l.addKey(id, in.KeySpec, types.KeyStatePendingImport, "", nil)
		k.materials = nil
		k.md.CurrentKeyMaterialId = nil
		for _, tg := range in.Tags {
			k.tags[*tg.TagKey] = *tg.TagValue
		}
		if aws.ToBool(in.MultiRegion) {
			k.md.MultiRegion = aws.Bool(true)
			k.md.MultiRegionConfiguration = &types.MultiRegionConfiguration{MultiRegionKeyType: types.MultiRegionKeyTypePrimary}
		}
		md := k.md
		return &kms.CreateKeyOutput{KeyMetadata: &md}, nil
	}
	f.createAlias = func(in *kms.CreateAliasInput) (*kms.CreateAliasOutput, error) {
		if _, ok := l.aliases[*in.AliasName]; ok {
			return nil, &smithy.GenericAPIError{Code: "AlreadyExistsException"}
		}
		l.aliases[*in.AliasName] = *in.TargetKeyId
		return &kms.CreateAliasOutput{}, nil
	}
	f.updateAlias = func(in *kms.UpdateAliasInput) (*kms.UpdateAliasOutput, error) {
		l.aliases[*in.AliasName] = *in.TargetKeyId
		return &kms.UpdateAliasOutput{}, nil
	}
	f.listKeyRotations = func(in *kms.ListKeyRotationsInput) (*kms.ListKeyRotationsOutput, error) {
		k, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		l.polls++
		if l.polls >= l.pollsToRotate {
			l.completeRotation(k)
		}
		return &kms.ListKeyRotationsOutput{Rotations: append([]types.RotationsListEntry(nil), k.materials...)}, nil
	}
	f.getParametersForImport = func(in *kms.GetParametersForImportInput) (*kms.GetParametersForImportOutput, error) {
		if _, err := l.key(*in.KeyId); err != nil {
			return nil, err
		}
		return &kms.GetParametersForImportOutput{PublicKey: ledgerPub(), ImportToken: []byte("token"), ParametersValidTo: aws.Time(now.Add(24 * time.Hour))}, nil
	}
	f.importKeyMaterial = func(in *kms.ImportKeyMaterialInput) (*kms.ImportKeyMaterialOutput, error) {
		k, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		l.imports = append(l.imports, in)
		if in.ImportType == types.ImportTypeNewKeyMaterial {
			id := materialID(*in.KeyId, len(k.materials))
			k.materials = append(k.materials, types.RotationsListEntry{KeyId: in.KeyId, KeyMaterialId: aws.String(id), KeyMaterialState: types.KeyMaterialStatePendingRotation,
				ImportState: types.ImportStateImported, ExpirationModel: in.ExpirationModel, ValidTo: in.ValidTo, KeyMaterialDescription: in.KeyMaterialDescription})
			return &kms.ImportKeyMaterialOutput{KeyId: in.KeyId, KeyMaterialId: aws.String(id)}, nil
		}
		if len(k.materials) == 0 && k.md.KeySpec == types.KeySpecSymmetricDefault {
			// The first import into a key (a new key, or a replica).
			id := materialID(*in.KeyId, 0)
			if in.KeyMaterialId != nil {
				id = *in.KeyMaterialId
			}
			k.materials = []types.RotationsListEntry{{KeyId: in.KeyId, KeyMaterialId: aws.String(id), KeyMaterialState: types.KeyMaterialStateCurrent, ImportState: types.ImportStateImported, ExpirationModel: in.ExpirationModel, ValidTo: in.ValidTo}}
			k.md.CurrentKeyMaterialId, k.md.KeyState = aws.String(id), types.KeyStateEnabled
			return &kms.ImportKeyMaterialOutput{KeyId: in.KeyId, KeyMaterialId: aws.String(id)}, nil
		}
		if k.md.KeySpec != types.KeySpecSymmetricDefault {
			k.md.KeyState = types.KeyStateEnabled
			return &kms.ImportKeyMaterialOutput{KeyId: in.KeyId}, nil
		}
		for i := range k.materials {
			m := &k.materials[i]
			if in.KeyMaterialId == nil || *in.KeyMaterialId == *m.KeyMaterialId {
				m.ImportState, m.ValidTo, m.ExpirationModel = types.ImportStateImported, in.ValidTo, in.ExpirationModel
				k.md.KeyState = types.KeyStateEnabled
				return &kms.ImportKeyMaterialOutput{KeyId: in.KeyId, KeyMaterialId: m.KeyMaterialId}, nil
			}
		}
		if in.KeyMaterialId != nil && k.md.MultiRegionConfiguration != nil && k.md.MultiRegionConfiguration.MultiRegionKeyType == types.MultiRegionKeyTypeReplica {
			// New material of the primary, imported into a replica.
			k.materials = append(k.materials, types.RotationsListEntry{KeyId: in.KeyId, KeyMaterialId: in.KeyMaterialId, KeyMaterialState: types.KeyMaterialStatePendingRotation, ImportState: types.ImportStateImported})
			return &kms.ImportKeyMaterialOutput{KeyId: in.KeyId, KeyMaterialId: in.KeyMaterialId}, nil
		}
		return nil, &smithy.GenericAPIError{Code: "IncorrectKeyMaterialException"}
	}
	f.rotateKeyOnDemand = func(in *kms.RotateKeyOnDemandInput) (*kms.RotateKeyOnDemandOutput, error) {
		k, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		for i := range k.materials {
			if k.materials[i].KeyMaterialState == types.KeyMaterialStatePendingRotation {
				k.materials[i].RotationType = types.RotationTypeOnDemand // marks "rotation asked"
				l.polls = 0
				return &kms.RotateKeyOnDemandOutput{KeyId: in.KeyId}, nil
			}
		}
		return nil, &smithy.GenericAPIError{Code: "KMSInvalidStateException", Message: "No available key material pending rotation"}
	}
	f.encrypt = func(in *kms.EncryptInput) (*kms.EncryptOutput, error) {
		k, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		if k.md.KeyState != types.KeyStateEnabled {
			return nil, &smithy.GenericAPIError{Code: "KMSInvalidStateException"}
		}
		ct := aws.ToString(k.md.CurrentKeyMaterialId) + "|" + string(in.Plaintext)
		return &kms.EncryptOutput{KeyId: in.KeyId, CiphertextBlob: []byte(ct)}, nil
	}
	f.decrypt = func(in *kms.DecryptInput) (*kms.DecryptOutput, error) {
		mid, pt, _ := strings.Cut(string(in.CiphertextBlob), "|")
		return &kms.DecryptOutput{KeyId: in.KeyId, KeyMaterialId: aws.String(mid), Plaintext: []byte(pt)}, nil
	}
	return l
}

// completeRotation makes an asked-for pending material current.
func (l *ledger) completeRotation(k *ledgerKey) {
	for i := range k.materials {
		m := &k.materials[i]
		if m.KeyMaterialState == types.KeyMaterialStatePendingRotation && m.RotationType == types.RotationTypeOnDemand {
			for j := range k.materials {
				if k.materials[j].KeyMaterialState == types.KeyMaterialStateCurrent {
					k.materials[j].KeyMaterialState = types.KeyMaterialStateNonCurrent
				}
			}
			m.KeyMaterialState, m.RotationDate = types.KeyMaterialStateCurrent, aws.Time(now)
			k.md.CurrentKeyMaterialId = m.KeyMaterialId
		}
	}
}

func (l *ledger) key(id string) (*ledgerKey, error) {
	if t, ok := l.aliases[id]; ok {
		id = t
	}
	k, ok := l.keys[id]
	if !ok {
		return nil, notFound(id)
	}
	return k, nil
}

// addKey adds an EXTERNAL key linked to HSM key hsmID of token 0001, with
// one material valid to validTo (nil: does not expire).
func (l *ledger) addKey(id string, spec types.KeySpec, state types.KeyState, hsmID string, validTo *time.Time) *ledgerKey {
	k := &ledgerKey{
		md: types.KeyMetadata{KeyId: aws.String(id), Arn: aws.String("arn:aws:kms:eu-west-1:111122223333:key/" + id), KeySpec: spec, KeyState: state,
			Origin: types.OriginTypeExternal, KeyUsage: types.KeyUsageTypeEncryptDecrypt, ValidTo: validTo},
		tags: map[string]string{TagHSMKeyID: hsmID, TagHSMKeyLabel: "label-" + hsmID, TagTokenSerial: "0001", TagTokenLabel: "fake"},
	}
	if spec == types.KeySpecHmac256 {
		k.md.KeyUsage = types.KeyUsageTypeGenerateVerifyMac
	}
	model := types.ExpirationModelTypeKeyMaterialDoesNotExpire
	if validTo != nil {
		model = types.ExpirationModelTypeKeyMaterialExpires
	}
	k.md.ExpirationModel = model
	imp := types.ImportStateImported
	if state == types.KeyStatePendingImport {
		imp = types.ImportStatePendingImport
	}
	if spec == types.KeySpecSymmetricDefault {
		mid := materialID(id, 0)
		k.md.CurrentKeyMaterialId = aws.String(mid)
		k.materials = []types.RotationsListEntry{{KeyId: aws.String(id), KeyMaterialId: aws.String(mid), KeyMaterialState: types.KeyMaterialStateCurrent, ImportState: imp, ExpirationModel: model, ValidTo: validTo}}
	}
	l.keys[id] = k
	return k
}

// aesKey is an HSM AES-256 key as the fake token holds it.
func aesKey(label string, id byte) *hsm.Key {
	return cleanKey(&hsm.Key{Label: label, ID: []byte{id}, Class: 4, KeyType: 0x1f, ValueLen: 32, Extractable: true, Sensitive: true})
}

func days(n int) *time.Time {
	t := now.Add(time.Duration(n) * 24 * time.Hour)
	return &t
}

// replicateTo makes primary's ReplicateKey create the replica in replica,
// as KMS does for an EXTERNAL key: PendingImport, same key id.
func (l *ledger) replicateTo(region string, replica *ledger) {
	l.replicateKey = func(in *kms.ReplicateKeyInput) (*kms.ReplicateKeyOutput, error) {
		p, err := l.key(*in.KeyId)
		if err != nil {
			return nil, err
		}
		if *in.ReplicaRegion != region {
			return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "unknown region " + *in.ReplicaRegion}
		}
		k := replica.addKey(*p.md.KeyId, p.md.KeySpec, types.KeyStatePendingImport, "", nil)
		k.materials, k.md.CurrentKeyMaterialId = nil, nil
		for _, tg := range in.Tags {
			k.tags[*tg.TagKey] = *tg.TagValue
		}
		k.md.MultiRegion = aws.Bool(true)
		k.md.MultiRegionConfiguration = &types.MultiRegionConfiguration{MultiRegionKeyType: types.MultiRegionKeyTypeReplica}
		p.md.MultiRegionConfiguration.ReplicaKeys = append(p.md.MultiRegionConfiguration.ReplicaKeys, types.MultiRegionKey{Region: aws.String(region), Arn: k.md.Arn})
		md := k.md
		return &kms.ReplicateKeyOutput{ReplicaKeyMetadata: &md}, nil
	}
}
