package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func rotateWith(l *ledger, tok *fakeToken, req RotateRequest) (*RotateResult, error) {
	req.WrappingKeySpec = types.WrappingKeySpecRsa2048
	if req.Expiry == (Expiry{}) {
		req.Expiry = Expiry{NoExpiry: true}
	}
	req.Poll = time.Millisecond
	im := &Importer{KMS: l, Token: tok, Now: func() time.Time { return now }}
	return im.Rotate(context.Background(), []Regional{{Region: "eu-west-1", KMS: l}}, req)
}

func TestRotateSymmetricOnDemand(t *testing.T) {
	l := newLedger()
	l.pollsToRotate = 3
	k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("pay", 0x0a)}}
	res, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "k1", Description: "gen 2"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "on-demand" || !slices.Equal(tok.generated, []string{"pay-r2"}) {
		t.Fatalf("mode %s, generated %v", res.Mode, tok.generated)
	}
	in := l.imports[0]
	if in.ImportType != types.ImportTypeNewKeyMaterial || in.KeyMaterialId != nil || aws.ToString(in.KeyMaterialDescription) != "gen 2" {
		t.Errorf("ImportKeyMaterial %s id %v description %v", in.ImportType, in.KeyMaterialId, in.KeyMaterialDescription)
	}
	newID := materialID("k1", 1)
	if res.NewKeyMaterialId != newID || aws.ToString(k.md.CurrentKeyMaterialId) != newID {
		t.Errorf("new material %s, current %s", res.NewKeyMaterialId, aws.ToString(k.md.CurrentKeyMaterialId))
	}
	if k.tags[MaterialTag(newID)] != res.NewHSMKey.KeyID || k.tags[TagHSMKeyID] != "0a" {
		t.Errorf("tags %v", k.tags)
	}
	if _, ok := k.tags[TagRotatingTo]; ok {
		t.Errorf("%s left behind", TagRotatingTo)
	}
	if !strings.Contains(res.Verification, "still decrypts") {
		t.Errorf("verification %q", res.Verification)
	}
	// Re-running with the label of the new generation changes nothing.
	calls := len(l.imports)
	again, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "k1", NewKeyLabel: "pay-r2"})
	if err != nil || !again.AlreadyDone || len(l.imports) != calls || len(tok.generated) != 1 {
		t.Fatalf("re-run: %+v, %v; imports %d, generated %v", again, err, len(l.imports), tok.generated)
	}
	// The second rotation makes generation 3 and keeps both others.
	if _, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "k1"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tok.generated, []string{"pay-r2", "pay-r3"}) || len(k.materials) != 3 {
		t.Errorf("generated %v, materials %d", tok.generated, len(k.materials))
	}
}

func TestRotateResumesAfterAnInterruptedImport(t *testing.T) {
	l := newLedger()
	l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("pay", 0x0a)}}
	// The first run stops when RotateKeyOnDemand fails.
	rot := l.rotateKeyOnDemand
	l.rotateKeyOnDemand = nil
	if _, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "k1"}); err == nil || !strings.Contains(err.Error(), "run the same kmsbridge rotate") {
		t.Fatalf("first run: %v", err)
	}
	l.rotateKeyOnDemand = rot
	res, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.generated) != 1 || len(l.imports) != 1 {
		t.Errorf("re-run generated %v and imported %d times: want one of each in all", tok.generated, len(l.imports))
	}
	if res.NewKeyMaterialId != materialID("k1", 1) {
		t.Errorf("new material %s", res.NewKeyMaterialId)
	}
}

func TestRotateRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*ledger) *ledgerKey
		want  string
	}{
		{"fail pending not by kmsbridge", func(l *ledger) *ledgerKey {
			k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
			k.materials = append(k.materials, types.RotationsListEntry{KeyMaterialId: aws.String("ff"), KeyMaterialState: types.KeyMaterialStatePendingRotation})
			return k
		}, "kmsbridge did not import"},
		{"fail 25 rotations", func(l *ledger) *ledgerKey {
			k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
			for i := 1; i <= 25; i++ {
				k.materials = append(k.materials, types.RotationsListEntry{KeyMaterialId: aws.String(materialID("k1", i)), KeyMaterialState: types.KeyMaterialStateNonCurrent, RotationDate: &now})
			}
			return k
		}, "KMS's limit"},
		{"fail pending import", func(l *ledger) *ledgerKey {
			return l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStatePendingImport, "0a", nil)
		}, "renew its material first"},
		{"fail other token", func(l *ledger) *ledgerKey {
			k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
			k.tags[TagTokenSerial] = "9999"
			return k
		}, "not this token"},
		{"fail no room for the rotation's tags", func(l *ledger) *ledgerKey {
			k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
			for i := len(k.tags); i < Rules.TagsPerKey-1; i++ {
				k.tags[fmt.Sprintf("user-%02d", i)] = "x"
			}
			return k
		}, "remove 1 of its own tags first"},
		{"fail hmac without alias", func(l *ledger) *ledgerKey {
			return l.addKey("k1", types.KeySpecHmac256, types.KeyStateEnabled, "0a", nil)
		}, "has no alias"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			tt.setup(l)
			hk := aesKey("pay", 0x0a)
			tok := &fakeToken{sha256: true, keys: []*hsm.Key{hk}}
			if tt.name == "fail hmac without alias" {
				hk.KeyType, hk.ValueLen = 0x10, 32
			}
			_, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "k1"})
			if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want invalid input containing %q", err, tt.want)
			}
			if len(tok.generated) != 0 || len(l.imports) != 0 || slices.Contains(l.calls, "TagResource") {
				t.Errorf("changed something before refusing: generated %v, calls %v", tok.generated, l.calls)
			}
		})
	}
}

func TestRotateManualMovesTheAlias(t *testing.T) {
	l := newLedger()
	old := l.addKey("k1", types.KeySpecHmac256, types.KeyStateEnabled, "0a", nil)
	l.aliases["alias/mac"] = "k1"
	l.createKey = func(in *kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
		k := l.addKey("k2", in.KeySpec, types.KeyStatePendingImport, "", nil)
		for _, tg := range in.Tags {
			k.tags[*tg.TagKey] = *tg.TagValue
		}
		md := k.md
		return &kms.CreateKeyOutput{KeyMetadata: &md}, nil
	}
	hk := &hsm.Key{Label: "mac", ID: []byte{0x0a}, Class: 4, KeyType: 0x10, ValueLen: 32, Extractable: true, Sensitive: true}
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{hk}}
	res, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "alias/mac"})
	// The fake token cannot HMAC, so verification of the new key fails
	// after the import; what matters here is what was made before it.
	if res == nil || res.Mode != "manual" {
		t.Fatalf("res %+v err %v", res, err)
	}
	if !slices.Equal(tok.generated, []string{"mac-r2"}) || l.keys["k2"] == nil || len(l.imports) != 1 {
		t.Fatalf("generated %v, keys %v, imports %d (err %v)", tok.generated, len(l.keys), len(l.imports), err)
	}
	if old.md.KeyState != types.KeyStateEnabled {
		t.Errorf("old key %s, want kept Enabled", old.md.KeyState)
	}
}

func TestRotateRerunAfterKMSRotatedFinishesWithoutRotatingAgain(t *testing.T) {
	l := newLedger()
	k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("pay", 0x0a)}}
	untag := l.untagResource
	l.untagResource = nil // the first run stops after KMS rotated
	if _, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "k1"}); err == nil {
		t.Fatal("first run did not fail")
	}
	l.untagResource = untag
	res, err := rotateWith(l, tok, RotateRequest{KMSKeyID: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.generated) != 1 || len(l.imports) != 1 || len(k.materials) != 2 {
		t.Errorf("re-run rotated again: generated %v, imports %d, materials %d", tok.generated, len(l.imports), len(k.materials))
	}
	if _, ok := k.tags[TagRotatingTo]; ok || res.NewKeyMaterialId != materialID("k1", 1) {
		t.Errorf("tags %v, new material %s", k.tags, res.NewKeyMaterialId)
	}
}
