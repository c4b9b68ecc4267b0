package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
)

// TestAzureRenewMovesExpOnce: renew --cloud azure moves a Key Vault key's
// exp when it is due, after proving the key is the HSM key's; it leaves a
// key that is not due alone, changes nothing on a dry run, and refuses a
// key this token did not import.
func TestAzureRenewMovesExpOnce(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	soon := time.Now().Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	azureResult(t, v.importAzure(t, tok, "--key-name", "renewed", "--key-label", "renewed", "--generate", "--azure-key-type", "EC-P256", "--valid-to", soon.Format(time.RFC3339)))
	exp := func(name string) time.Time {
		t.Helper()
		got, err := v.kv.GetKey(context.Background(), name, "", nil)
		if err != nil || got.Attributes == nil || got.Attributes.Expires == nil {
			t.Fatalf("GetKey %s: %v", name, err)
		}
		return got.Attributes.Expires.UTC()
	}
	renew := func(args ...string) (azure.RenewResult, run) {
		t.Helper()
		full := append(append([]string{}, v.env...), "renew", "--cloud", "azure", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(),
			"--token-label", tok.Label, "--state-dir", v.state, "-o", "json")
		r := kmsbridge(t, tok, append(full, args...)...)
		var res azure.RenewResult
		if r.Code == 0 {
			if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
				t.Fatalf("no JSON: %v\n%s", err, r.Stdout)
			}
		}
		return res, r
	}

	// Not due within 5 days: nothing moves.
	res, r := renew("--key-name", "renewed", "--within", "5")
	if r.Code != 0 || res.Renewed || !strings.Contains(res.Reason, "not due") || !exp("renewed").Equal(soon) {
		t.Fatalf("not due: exit %d %+v\n%s", r.Code, res, r.Stderr)
	}
	// A dry run says what it would do, and does nothing.
	res, r = renew("--key-name", "renewed", "--within", "30", "--dry-run")
	if r.Code != 0 || res.Renewed || !strings.Contains(res.Reason, "would move exp") || !exp("renewed").Equal(soon) {
		t.Fatalf("dry run: exit %d %+v\n%s", r.Code, res, r.Stderr)
	}
	// Due: exp moves a year on, proven first, read back after.
	res, r = renew("--key-name", "renewed", "--within", "30", "--valid-for", "365")
	if r.Code != 0 || !res.Renewed || !res.Proof.MaterialConfirmed || res.HSM.KeyLabel != "renewed" {
		t.Fatalf("renew: exit %d %+v\n%s", r.Code, res, r.Stderr)
	}
	if got := exp("renewed"); got.Sub(time.Now()) < 364*24*time.Hour || res.Expires == nil || !res.Expires.Equal(got) {
		t.Errorf("exp after renew %s, result %v", got, res.Expires)
	}
	if n := v.Calls("update"); n != 1 {
		t.Errorf("%d UpdateKey calls, want 1", n)
	}
	// Again: not due any more, nothing sent.
	res, r = renew("--key-name", "renewed", "--within", "30")
	if r.Code != 0 || res.Renewed || v.Calls("update") != 1 {
		t.Errorf("re-run: exit %d %+v, %d updates", r.Code, res, v.Calls("update"))
	}

	// A key kmsbridge did not import from this token is refused, unchanged.
	foreignExp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	if _, err := v.kv.CreateKey(context.Background(), "foreign", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(azkeys.CurveNameP256),
		KeyAttributes: &azkeys.KeyAttributes{Expires: &foreignExp}}, nil); err != nil {
		t.Fatal(err)
	}
	_, r = renew("--key-name", "foreign", "--within", "30")
	if r.Code != 2 || !strings.Contains(r.Stderr, "not tagged as imported from token") || !exp("foreign").Equal(foreignExp) || v.Calls("update") != 1 {
		t.Errorf("foreign key: exit %d\n%s", r.Code, r.Stderr)
	}
	// AWS flags mean nothing here.
	if _, r = renew("--key-name", "renewed", "--kms-key-id", "x"); r.Code != 2 || !strings.Contains(r.Stderr, "is an AWS KMS flag") {
		t.Errorf("--kms-key-id with --cloud azure: exit %d %s", r.Code, r.Stderr)
	}
}
