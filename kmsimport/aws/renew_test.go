package aws

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func renewWith(l *ledger, tok *fakeToken, req RenewRequest) (*RenewResult, error) {
	if req.WrappingKeySpec == "" {
		req.WrappingKeySpec = types.WrappingKeySpecRsa2048
	}
	if req.Expiry == (Expiry{}) {
		req.Expiry = Expiry{ValidTo: now.Add(300 * 24 * time.Hour)}
	}
	// This host's journal shows kmsbridge creating every key of the
	// ledger, as it would after the imports.
	j, done := journalOf(l)
	defer done()
	im := &Importer{KMS: l, Token: tok, Journal: j, Now: func() time.Time { return now }}
	return im.Renew(context.Background(), []Regional{{Region: "eu-west-1", KMS: l}}, req)
}

func TestRenewTouchesOnlyWhatIsDue(t *testing.T) {
	l := newLedger()
	l.addKey("k-due", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", days(10))
	l.addKey("k-fine", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0b", days(100))
	l.addKey("k-expired", types.KeySpecSymmetricDefault, types.KeyStatePendingImport, "0c", nil)
	l.addKey("k-other-token", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0d", days(1)).tags[TagTokenSerial] = "9999"
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("a", 0x0a), aesKey("b", 0x0b), aesKey("c", 0x0c)}}
	res, err := renewWith(l, tok, RenewRequest{WithinDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if res.Renewed != 2 || len(l.imports) != 2 {
		t.Fatalf("renewed %d, imports %d, want 2", res.Renewed, len(l.imports))
	}
	var ids []string
	for _, in := range l.imports {
		ids = append(ids, *in.KeyId)
		if in.ImportType != types.ImportTypeExistingKeyMaterial || aws.ToString(in.KeyMaterialId) != materialID(*in.KeyId, 0) {
			t.Errorf("%s: ImportType %s KeyMaterialId %s, want EXISTING with the material's id", *in.KeyId, in.ImportType, aws.ToString(in.KeyMaterialId))
		}
		if !in.ValidTo.Equal(now.Add(300 * 24 * time.Hour)) {
			t.Errorf("%s: ValidTo %s", *in.KeyId, in.ValidTo)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"k-due", "k-expired"}) {
		t.Errorf("renewed %v", ids)
	}
	// A second run finds nothing due.
	l.imports = nil
	res, err = renewWith(l, tok, RenewRequest{WithinDays: 30})
	if err != nil || res.Renewed != 0 || len(l.imports) != 0 {
		t.Errorf("second run: renewed %d, imports %d, err %v", res.Renewed, len(l.imports), err)
	}
}

func TestRenewDryRunChangesNothing(t *testing.T) {
	l := newLedger()
	l.addKey("k-due", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", days(10))
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("a", 0x0a)}}
	res, err := renewWith(l, tok, RenewRequest{WithinDays: 30, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.imports) != 0 || slices.Contains(l.calls, "GetParametersForImport") {
		t.Errorf("dry run called %v", l.calls)
	}
	if len(res.Materials) != 1 || res.Materials[0].Action != "would-renew" {
		t.Errorf("plan %+v", res.Materials)
	}
}

func TestRenewChecksEveryHSMKeyBeforeTheFirstImport(t *testing.T) {
	l := newLedger()
	l.addKey("k-a", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", days(10))
	l.addKey("k-b", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0b", days(10))
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("a", 0x0a)}} // 0b is missing
	_, err := renewWith(l, tok, RenewRequest{WithinDays: 30})
	if !errors.Is(err, hsm.ErrKeyNotFound) || !strings.Contains(err.Error(), "k-b") {
		t.Fatalf("got %v, want the missing HSM key of k-b named", err)
	}
	if len(l.imports) != 0 {
		t.Errorf("imported %d before finding a missing HSM key", len(l.imports))
	}
}

func TestRenewBadInputs(t *testing.T) {
	tests := []struct {
		name string
		req  RenewRequest
		want string
	}{
		{"fail key and label", RenewRequest{KMSKeyID: "k", KeyLabel: "l", WithinDays: 30}, "not both"},
		{"fail within negative", RenewRequest{WithinDays: -1}, "--within -1"},
		{"fail new expiry inside window", RenewRequest{WithinDays: 30, Expiry: Expiry{ValidTo: now.Add(10 * 24 * time.Hour)}}, "due again at once"},
		{"fail expiry past", RenewRequest{WithinDays: 0, Expiry: Expiry{ValidTo: now.Add(-time.Hour)}}, "in the past"},
		{"fail unknown key", RenewRequest{KMSKeyID: "nope", WithinDays: 30}, "was not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			_, err := renewWith(l, &fakeToken{keys: []*hsm.Key{}}, tt.req)
			if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want invalid input containing %q", err, tt.want)
			}
		})
	}
}
