package azure

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// forgetful imports without the expiry and one tag asked for, as a vault
// (or a path in between) that drops what it does not keep would.
type forgetful struct{ API }

func (a forgetful) ImportKey(ctx context.Context, name string, p azkeys.ImportKeyParameters, o *azkeys.ImportKeyOptions) (azkeys.ImportKeyResponse, error) {
	p.KeyAttributes.Expires = nil
	delete(p.Tags, "owner")
	return a.API.ImportKey(ctx, name, p, o)
}

func TestAttributesAreReadBackNotAssumed(t *testing.T) {
	s, kv, tok := setup(t)
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	im := &Importer{KV: forgetful{kv}, Token: tok}
	res, err := im.Run(context.Background(), Request{Vault: s.URL(), KeyName: "k", KeyLabel: "k", Generate: true, KeyType: "EC-P256",
		Expires: &exp, Tags: map[string]string{"owner": "payments"}})
	var se *kmsimport.StepError
	if !errors.Is(err, kmsimport.ErrVerification) || !errors.As(err, &se) || se.Step != StepVerify {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"expiry (exp, --valid-to) is unset", `tag owner is "", not "payments"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %v does not say %q", err, want)
		}
	}
	if !res.Imported {
		t.Error("the result does not say the key was imported")
	}
}
