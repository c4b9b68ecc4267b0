package aws

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// rotatedKey is a ledger key rotated once: generation 1 (HSM key 0a,
// NON_CURRENT) and generation 2 (HSM key 0b, CURRENT, its material tag).
func rotatedKey(l *ledger) (*ledgerKey, string, string) {
	k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
	gen1, gen2 := materialID("k1", 0), materialID("k1", 1)
	k.materials[0].KeyMaterialState = types.KeyMaterialStateNonCurrent
	k.materials = append(k.materials, types.RotationsListEntry{KeyId: aws.String("k1"), KeyMaterialId: aws.String(gen2), KeyMaterialState: types.KeyMaterialStateCurrent,
		ImportState: types.ImportStateImported, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire, RotationDate: aws.Time(now)})
	k.md.CurrentKeyMaterialId = aws.String(gen2)
	k.tags[MaterialTag(gen2)] = "0b"
	return k, gen1, gen2
}

func importHSMKey(l *ledger, label string) (*Result, error) {
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("gen1", 0x0a), aesKey("gen2", 0x0b), aesKey("other", 0x0c)}}
	im := &Importer{KMS: l, Token: tok, Now: func() time.Time { return now }}
	return im.Run(context.Background(), Request{KeyLabel: label, KMSKeyID: "k1", WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}})
}

func TestReimportNamesTheMaterialOfItsHSMKey(t *testing.T) {
	l := newLedger()
	k, gen1, gen2 := rotatedKey(l)
	// Generation 1's material was deleted: the key is PendingImport.
	k.materials[0].ImportState, k.md.KeyState = types.ImportStatePendingImport, types.KeyStatePendingImport
	res, err := importHSMKey(l, "gen1")
	if err != nil {
		t.Fatal(err)
	}
	in := l.imports[len(l.imports)-1]
	if in.ImportType != types.ImportTypeExistingKeyMaterial || aws.ToString(in.KeyMaterialId) != gen1 || res.KeyMaterialId != gen1 {
		t.Errorf("re-import of generation 1 sent %s %s, reported %s; want EXISTING_KEY_MATERIAL %s", in.ImportType, aws.ToString(in.KeyMaterialId), res.KeyMaterialId, gen1)
	}
	// Generation 2's material is imported already: nothing to import, and
	// the result names generation 2's material, not the key's first.
	n := len(l.imports)
	res, err = importHSMKey(l, "gen2")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.imports) != n || res.KeyMaterialId != gen2 || k.tags[TagHSMKeyID] != "0a" {
		t.Errorf("import of generation 2: %d new imports, KeyMaterialId %s (want %s), link tag %s", len(l.imports)-n, res.KeyMaterialId, gen2, k.tags[TagHSMKeyID])
	}
}

func TestImportOfAnHSMKeyBehindNoMaterialIsRefused(t *testing.T) {
	l := newLedger()
	rotatedKey(l)
	_, err := importHSMKey(l, "other")
	if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "--hsm-key-id 0a or --hsm-key-id 0b") || len(l.imports) != 0 {
		t.Fatalf("got %v (%d imports), want a refusal naming both generations' HSM keys", err, len(l.imports))
	}
}

func TestDeleteMaterialChoosesOneMaterial(t *testing.T) {
	l := newLedger()
	k, gen1, _ := rotatedKey(l)
	k.md.KeyState = types.KeyStatePendingImport
	mk, err := DescribeKeyMaterial(context.Background(), l, "k1", gen1)
	if err != nil || mk.KeyMaterialId != gen1 || mk.HSMKeyID != "0a" || !mk.imported() {
		t.Fatalf("%+v, %v", mk, err)
	}
	if _, err := DescribeKeyMaterial(context.Background(), l, "k1", "ABC"); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "64 lowercase hex") {
		t.Errorf("malformed id: %v", err)
	}
	if _, err := DescribeKeyMaterial(context.Background(), l, "k1", strings.Repeat("0", 64)); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), gen1) {
		t.Errorf("unknown id: %v", err)
	}
}
