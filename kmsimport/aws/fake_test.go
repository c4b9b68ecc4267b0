package aws

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/miekg/pkcs11"
)

// fakeKMS is an API whose operations are function fields; an operation a
// test did not set fails the test through errUnexpected.
type fakeKMS struct {
	calls                  []string
	createKey              func(*kms.CreateKeyInput) (*kms.CreateKeyOutput, error)
	describeKey            func(*kms.DescribeKeyInput) (*kms.DescribeKeyOutput, error)
	getParametersForImport func(*kms.GetParametersForImportInput) (*kms.GetParametersForImportOutput, error)
	importKeyMaterial      func(*kms.ImportKeyMaterialInput) (*kms.ImportKeyMaterialOutput, error)
	listAliases            func(*kms.ListAliasesInput) (*kms.ListAliasesOutput, error)
	listResourceTags       func(*kms.ListResourceTagsInput) (*kms.ListResourceTagsOutput, error)
	listKeys               func(*kms.ListKeysInput) (*kms.ListKeysOutput, error)
	listKeyRotations       func(*kms.ListKeyRotationsInput) (*kms.ListKeyRotationsOutput, error)
	rotateKeyOnDemand      func(*kms.RotateKeyOnDemandInput) (*kms.RotateKeyOnDemandOutput, error)
	updateAlias            func(*kms.UpdateAliasInput) (*kms.UpdateAliasOutput, error)
	untagResource          func(*kms.UntagResourceInput) (*kms.UntagResourceOutput, error)
	replicateKey           func(*kms.ReplicateKeyInput) (*kms.ReplicateKeyOutput, error)
	tagResource            func(*kms.TagResourceInput) (*kms.TagResourceOutput, error)
	createAlias            func(*kms.CreateAliasInput) (*kms.CreateAliasOutput, error)
	encrypt                func(*kms.EncryptInput) (*kms.EncryptOutput, error)
	decrypt                func(*kms.DecryptInput) (*kms.DecryptOutput, error)
}

var errUnexpected = errors.New("unexpected KMS call")

func call[I, O any](f *fakeKMS, name string, fn func(I) (O, error), in I) (O, error) {
	f.calls = append(f.calls, name)
	if fn == nil {
		var zero O
		return zero, errUnexpected
	}
	return fn(in)
}

func (f *fakeKMS) CreateKey(_ context.Context, in *kms.CreateKeyInput, _ ...func(*kms.Options)) (*kms.CreateKeyOutput, error) {
	return call(f, "CreateKey", f.createKey, in)
}
func (f *fakeKMS) DescribeKey(_ context.Context, in *kms.DescribeKeyInput, _ ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	return call(f, "DescribeKey", f.describeKey, in)
}
func (f *fakeKMS) GetParametersForImport(_ context.Context, in *kms.GetParametersForImportInput, _ ...func(*kms.Options)) (*kms.GetParametersForImportOutput, error) {
	return call(f, "GetParametersForImport", f.getParametersForImport, in)
}
func (f *fakeKMS) ImportKeyMaterial(_ context.Context, in *kms.ImportKeyMaterialInput, _ ...func(*kms.Options)) (*kms.ImportKeyMaterialOutput, error) {
	return call(f, "ImportKeyMaterial", f.importKeyMaterial, in)
}
func (f *fakeKMS) DeleteImportedKeyMaterial(_ context.Context, in *kms.DeleteImportedKeyMaterialInput, _ ...func(*kms.Options)) (*kms.DeleteImportedKeyMaterialOutput, error) {
	return call[*kms.DeleteImportedKeyMaterialInput, *kms.DeleteImportedKeyMaterialOutput](f, "DeleteImportedKeyMaterial", nil, in)
}
func (f *fakeKMS) CreateAlias(_ context.Context, in *kms.CreateAliasInput, _ ...func(*kms.Options)) (*kms.CreateAliasOutput, error) {
	return call(f, "CreateAlias", f.createAlias, in)
}
func (f *fakeKMS) ListAliases(_ context.Context, in *kms.ListAliasesInput, _ ...func(*kms.Options)) (*kms.ListAliasesOutput, error) {
	return call(f, "ListAliases", f.listAliases, in)
}
func (f *fakeKMS) TagResource(_ context.Context, in *kms.TagResourceInput, _ ...func(*kms.Options)) (*kms.TagResourceOutput, error) {
	return call(f, "TagResource", f.tagResource, in)
}
func (f *fakeKMS) ListResourceTags(_ context.Context, in *kms.ListResourceTagsInput, _ ...func(*kms.Options)) (*kms.ListResourceTagsOutput, error) {
	return call(f, "ListResourceTags", f.listResourceTags, in)
}
func (f *fakeKMS) Encrypt(_ context.Context, in *kms.EncryptInput, _ ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	return call(f, "Encrypt", f.encrypt, in)
}
func (f *fakeKMS) ListKeys(_ context.Context, in *kms.ListKeysInput, _ ...func(*kms.Options)) (*kms.ListKeysOutput, error) {
	return call(f, "ListKeys", f.listKeys, in)
}
func (f *fakeKMS) GenerateMac(_ context.Context, in *kms.GenerateMacInput, _ ...func(*kms.Options)) (*kms.GenerateMacOutput, error) {
	return call[*kms.GenerateMacInput, *kms.GenerateMacOutput](f, "GenerateMac", nil, in)
}
func (f *fakeKMS) GetPublicKey(_ context.Context, in *kms.GetPublicKeyInput, _ ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error) {
	return call[*kms.GetPublicKeyInput, *kms.GetPublicKeyOutput](f, "GetPublicKey", nil, in)
}
func (f *fakeKMS) Sign(_ context.Context, in *kms.SignInput, _ ...func(*kms.Options)) (*kms.SignOutput, error) {
	return call[*kms.SignInput, *kms.SignOutput](f, "Sign", nil, in)
}
func (f *fakeKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return call(f, "Decrypt", f.decrypt, in)
}

// fakeToken is a Token that records what it was asked to do.
type fakeToken struct {
	labels       map[string]bool
	sha256       bool // whether the token can wrap with OAEP SHA-256
	noRSAAES     bool
	quirks       hsm.Quirks
	generated    []string
	generatedIDs [][]byte
	destroyed    []string
	wrapErr      error
	// keys, when set, is the token's content: FindKey searches it by
	// CKA_ID or label, Generate adds to it, ListKeys lists it.
	keys []*hsm.Key
}

func (t *fakeToken) Identity() hsm.TokenIdentity {
	return hsm.TokenIdentity{Label: "fake", Serial: "0001"}
}
func (t *fakeToken) Quirks() hsm.Quirks { return t.quirks }
func (t *fakeToken) FindKey(sel hsm.KeySelector, p hsm.KeyParams) (*hsm.Key, error) {
	if t.keys != nil {
		for _, k := range t.keys {
			if k.Class == pkcs11.CKO_PUBLIC_KEY {
				continue // a pair is found by its private key, as hsm.Token.FindKey does
			}
			if len(sel.ID) > 0 && bytes.Equal(k.ID, sel.ID) || len(sel.ID) == 0 && k.Label == sel.Label {
				return k, nil
			}
		}
		return nil, hsm.ErrKeyNotFound
	}
	if !t.labels[sel.Label] || !p.Secret() {
		return nil, hsm.ErrKeyNotFound
	}
	return cleanKey(&hsm.Key{Label: sel.Label, ID: []byte{0xab}, KeyType: 0x1f, ValueLen: 32, Extractable: true, Sensitive: true}), nil
}
func (t *fakeToken) FindByLabel(label string, p hsm.KeyParams) (*hsm.Key, bool, error) {
	inUse, _ := t.LabelInUse(label)
	k, err := t.FindKey(hsm.KeySelector{Label: label}, p)
	if errors.Is(err, hsm.ErrKeyNotFound) {
		return nil, inUse, nil
	}
	return k, inUse, err
}
func (t *fakeToken) GenerateWithID(label string, id []byte, p hsm.KeyParams, _ bool) (*hsm.Key, error) {
	t.generated = append(t.generated, label)
	t.generatedIDs = append(t.generatedIDs, id)
	if t.keys != nil {
		k := cleanKey(&hsm.Key{Label: label, ID: id, Class: 4, KeyType: p.KeyType, ValueLen: uint(p.Bytes), Extractable: true, Sensitive: true})
		t.keys = append(t.keys, k)
		return k, nil
	}
	return cleanKey(&hsm.Key{Label: label, ID: id, KeyType: p.KeyType, ValueLen: uint(p.Bytes), Extractable: true, Sensitive: true}), nil
}
func (t *fakeToken) Incomplete(k *hsm.Key) bool { return k.ValueLen == 0 }
func (t *fakeToken) OnlyPublicHalf(label string, id []byte) (bool, error) {
	n := 0
	for _, k := range t.keys {
		if k.Label != label {
			continue
		}
		if k.Class != pkcs11.CKO_PUBLIC_KEY || !bytes.Equal(k.ID, id) {
			return false, nil
		}
		n++
	}
	return n > 0, nil
}
func (t *fakeToken) DestroyInterrupted(label string, id []byte) (int, error) {
	n, kept := 0, t.keys[:0]
	for _, k := range t.keys {
		if k.Label == label && bytes.Equal(k.ID, id) {
			n++
			continue
		}
		kept = append(kept, k)
	}
	t.keys = kept
	t.destroyed = append(t.destroyed, label)
	return n, nil
}
func (t *fakeToken) ProbeRSAAES(h hsm.OAEPHash) error {
	if t.noRSAAES {
		return &hsm.UnsupportedError{Token: "fake", What: "RSA-AES", Why: "fake"}
	}
	return t.ProbeOAEP(h)
}
func (t *fakeToken) WrapRSAAES(*hsm.Key, *rsa.PublicKey, hsm.OAEPHash) ([]byte, error) {
	return nil, t.wrapErr
}
func (t *fakeToken) HMAC(*hsm.Key, crypto.Hash, []byte) ([]byte, error) { return nil, errUnexpected }
func (t *fakeToken) PublicKeyDER(*hsm.Key) ([]byte, error)              { return nil, errUnexpected }
func (t *fakeToken) LabelInUse(label string) (bool, error) {
	for _, k := range t.keys {
		if k.Label == label {
			return true, nil
		}
	}
	return t.labels[label], nil
}
func (t *fakeToken) ListKeys() ([]*hsm.Key, error) { return t.keys, nil }
func (t *fakeToken) ProbeOAEP(h hsm.OAEPHash) error {
	if h == hsm.OAEPSHA256 && !t.sha256 {
		return &hsm.UnsupportedError{Token: "fake", What: "RSA-OAEP SHA-256", Why: "fake"}
	}
	return nil
}
func (t *fakeToken) WrapOAEP(*hsm.Key, *rsa.PublicKey, hsm.OAEPHash) ([]byte, error) {
	return nil, t.wrapErr
}
func (t *fakeToken) Approval(*rsa.PublicKey) (*hsm.Approval, error) { return nil, nil }
func (t *fakeToken) EndApproval(*rsa.PublicKey) (bool, error)       { return false, nil }
func (t *fakeToken) NativeRSAAES(hsm.OAEPHash) (bool, string)       { return false, "fake" }

// Check answers as a token with the fake's capabilities would.
func (t *fakeToken) Check(a hsm.Ask) ([]string, error) {
	if a.Wrap.RSAAES {
		return nil, t.ProbeRSAAES(a.Wrap.OAEP)
	}
	return nil, t.ProbeOAEP(a.Wrap.OAEP)
}
func (f *fakeKMS) ListKeyRotations(_ context.Context, in *kms.ListKeyRotationsInput, _ ...func(*kms.Options)) (*kms.ListKeyRotationsOutput, error) {
	return call(f, "ListKeyRotations", f.listKeyRotations, in)
}
func (f *fakeKMS) RotateKeyOnDemand(_ context.Context, in *kms.RotateKeyOnDemandInput, _ ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
	return call(f, "RotateKeyOnDemand", f.rotateKeyOnDemand, in)
}
func (f *fakeKMS) UpdateAlias(_ context.Context, in *kms.UpdateAliasInput, _ ...func(*kms.Options)) (*kms.UpdateAliasOutput, error) {
	return call(f, "UpdateAlias", f.updateAlias, in)
}
func (f *fakeKMS) UntagResource(_ context.Context, in *kms.UntagResourceInput, _ ...func(*kms.Options)) (*kms.UntagResourceOutput, error) {
	return call(f, "UntagResource", f.untagResource, in)
}
func (f *fakeKMS) ReplicateKey(_ context.Context, in *kms.ReplicateKeyInput, _ ...func(*kms.Options)) (*kms.ReplicateKeyOutput, error) {
	return call(f, "ReplicateKey", f.replicateKey, in)
}

// cleanKey gives k the provenance a token reports for a key it generated
// and never showed in the clear.
func cleanKey(k *hsm.Key) *hsm.Key {
	k.Local, k.LocalKnown, k.AlwaysSensitive, k.AlwaysSensitiveKnown = true, true, true, true
	return k
}
