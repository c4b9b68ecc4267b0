package aws

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestImportMultiRegionFillsEveryReplica(t *testing.T) {
	home, west := newLedger(), newLedger()
	home.replicateTo("us-west-2", west)
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{}}
	im := &Importer{KMS: home, Token: tok, Now: func() time.Time { return now }, Replicas: []Regional{{Region: "us-west-2", KMS: west}}}
	res, err := im.Run(context.Background(), Request{KeyLabel: "mr", Generate: true, MultiRegion: true, Alias: "alias/mr",
		WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{ValidTo: now.Add(100 * 24 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.KeyId, "mrk-") || len(res.Replicas) != 1 || !res.Replicas[0].Created {
		t.Fatalf("key %s replicas %+v", res.KeyId, res.Replicas)
	}
	rep := west.keys[res.KeyId]
	if rep == nil || rep.md.KeyState != types.KeyStateEnabled || rep.tags[TagHSMKeyID] != res.HSM.KeyID {
		t.Fatalf("replica %+v", rep)
	}
	if len(west.imports) != 1 || west.imports[0].ImportType != types.ImportTypeExistingKeyMaterial || aws.ToString(west.imports[0].KeyMaterialId) != res.KeyMaterialId {
		t.Errorf("replica import %+v, want EXISTING with the primary's KeyMaterialId %s", west.imports, res.KeyMaterialId)
	}
	if west.aliases["alias/mr"] != res.KeyId || res.Replicas[0].Verification == "" {
		t.Errorf("replica alias %q, verification %q", west.aliases["alias/mr"], res.Replicas[0].Verification)
	}
	if len(tok.generated) != 1 {
		t.Errorf("one HSM key for all Regions, got %v", tok.generated)
	}
}

func TestImportMultiRegionBadInputs(t *testing.T) {
	home, west := newLedger(), newLedger()
	base := Request{KeyLabel: "mr", Generate: true, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}}
	im := &Importer{KMS: home, Token: &fakeToken{keys: []*hsm.Key{}}, Replicas: []Regional{{Region: "us-west-2", KMS: west}}}
	if _, err := im.Run(context.Background(), base); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "add --multi-region") {
		t.Errorf("replicas without --multi-region: %v", err)
	}
	west.keys["other"] = &ledgerKey{md: types.KeyMetadata{KeyId: aws.String("other")}, tags: map[string]string{}}
	west.aliases["alias/taken"] = "other"
	mr := base
	mr.MultiRegion, mr.Alias = true, "alias/taken"
	if _, err := im.Run(context.Background(), mr); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "replica Region us-west-2") {
		t.Errorf("alias taken in a replica Region: %v", err)
	}
	if len(home.keys) != 0 {
		t.Errorf("created %d keys before refusing", len(home.keys))
	}
}

func TestRotateMultiRegionImportsIntoEveryReplicaBeforeRotating(t *testing.T) {
	home, west := newLedger(), newLedger()
	home.replicateTo("us-west-2", west)
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{}}
	regions := []Regional{{Region: "eu-west-1", KMS: home}, {Region: "us-west-2", KMS: west}}
	im := &Importer{KMS: home, Token: tok, Now: func() time.Time { return now }, Replicas: regions[1:]}
	res, err := im.Run(context.Background(), Request{KeyLabel: "mr", Generate: true, MultiRegion: true, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}})
	if err != nil {
		t.Fatal(err)
	}
	// Without the replica's Region, rotate refuses before any change.
	_, err = (&Importer{KMS: home, Token: tok}).Rotate(context.Background(), regions[:1], RotateRequest{KMSKeyID: res.KeyId, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}})
	if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "--replica-region us-west-2") {
		t.Fatalf("rotate without the replica Region: %v", err)
	}
	west.imports = nil
	replicaAt := -1
	imp := west.importKeyMaterial
	west.importKeyMaterial = func(in *kms.ImportKeyMaterialInput) (*kms.ImportKeyMaterialOutput, error) {
		replicaAt = len(home.calls)
		return imp(in)
	}
	rot, err := (&Importer{KMS: home, Token: tok}).Rotate(context.Background(), regions, RotateRequest{KMSKeyID: res.KeyId, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(west.imports) != 1 || aws.ToString(west.imports[0].KeyMaterialId) != rot.NewKeyMaterialId || west.imports[0].ImportType != types.ImportTypeExistingKeyMaterial {
		t.Fatalf("replica imports %+v, want the new material %s as EXISTING", west.imports, rot.NewKeyMaterialId)
	}
	rotateAt := -1
	for i, c := range home.calls {
		if c == "RotateKeyOnDemand" {
			rotateAt = i
		}
	}
	if west.keys[res.KeyId].tags[MaterialTag(rot.NewKeyMaterialId)] != rot.NewHSMKey.KeyID {
		t.Errorf("replica lacks the material tag: %v", west.keys[res.KeyId].tags)
	}
	if rotateAt < 0 || replicaAt < 0 || replicaAt > rotateAt {
		t.Errorf("the replica import (after primary call %d) must come before RotateKeyOnDemand (call %d): %v", replicaAt, rotateAt, home.calls)
	}
}
