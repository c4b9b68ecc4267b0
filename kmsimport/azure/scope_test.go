package azure

import (
	"context"
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

type countingCred struct{ calls int }

func (c *countingCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls++
	return azcore.AccessToken{Token: "t"}, nil
}

// An endpoint's challenge may name any resource; the credential behind
// every Key Vault client gives tokens for Key Vault and Managed HSM only,
// and a refusal is a non-transient KMS error that names the scope.
func TestVaultClientsGetTokensForVaultsOnly(t *testing.T) {
	for _, scope := range []string{"https://vault.azure.net/.default", "https://managedhsm.azure.net/.default", "https://vault.usgovcloudapi.net/.default", "https://managedhsm.azure.cn/.default"} {
		inner := &countingCred{}
		if _, err := (vaultScopesOnly{inner}).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}}); err != nil || inner.calls != 1 {
			t.Errorf("%s: %v, %d calls", scope, err, inner.calls)
		}
	}
	for _, scopes := range [][]string{
		{"https://management.azure.com/.default"},
		{"https://graph.microsoft.com/.default"},
		{"https://vault.azure.net/.default", "https://storage.azure.com/.default"},
		{"https://vault.azure.net.evil.example/.default"},
		{"https://evil.example/https://vault.azure.net/.default"},
	} {
		inner := &countingCred{}
		_, err := (vaultScopesOnly{inner}).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: scopes})
		var sr *scopeRefused
		if !errors.As(err, &sr) || inner.calls != 0 {
			t.Errorf("%v: %v, %d calls to the real credential", scopes, err, inner.calls)
			continue
		}
		var ke *kmsimport.KMSError
		if !errors.As(kvError("GetKey", err), &ke) || ke.Transient || ke.Message != sr.Error() {
			t.Errorf("%v: %+v", scopes, ke)
		}
	}
}
