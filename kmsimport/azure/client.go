package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// API is what the import needs of Key Vault; *azkeys.Client satisfies it.
type API interface {
	CreateKey(ctx context.Context, name string, p azkeys.CreateKeyParameters, o *azkeys.CreateKeyOptions) (azkeys.CreateKeyResponse, error)
	GetKey(ctx context.Context, name, version string, o *azkeys.GetKeyOptions) (azkeys.GetKeyResponse, error)
	ImportKey(ctx context.Context, name string, p azkeys.ImportKeyParameters, o *azkeys.ImportKeyOptions) (azkeys.ImportKeyResponse, error)
	// Encrypt and Decrypt prove an AES (oct-HSM) import (oct.go).
	Encrypt(ctx context.Context, name, version string, p azkeys.KeyOperationParameters, o *azkeys.EncryptOptions) (azkeys.EncryptResponse, error)
	Decrypt(ctx context.Context, name, version string, p azkeys.KeyOperationParameters, o *azkeys.DecryptOptions) (azkeys.DecryptResponse, error)
	// GetKeyAttestation reads a Managed HSM's attestation of the KEK.
	GetKeyAttestation(ctx context.Context, name, version string, o *azkeys.GetKeyAttestationOptions) (azkeys.GetKeyAttestationResponse, error)
}

var _ API = (*azkeys.Client)(nil)

// EnvAccessToken names the environment variable that may hold a bearer
// token for the vault (e.g. from `az account get-access-token --resource
// https://vault.azure.net`). Without it, azidentity's default credential
// chain is used.
const EnvAccessToken = "KMSBRIDGE_AZURE_ACCESS_TOKEN"

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// NewClientAt returns the azkeys client for vault behind the endpoint
// policy: vault must be Azure's own, or named and confirmed in allowed
// (--allow-endpoint); every request passes the policy in the transport,
// and the returned *kmsimport.CloudEndpoint says where they went and the
// TLS peer.
func NewClientAt(vault string, allowed []string) (*azkeys.Client, *kmsimport.CloudEndpoint, error) {
	c, ep, _, err := NewObservedClientAt(vault, allowed)
	return c, ep, err
}

// NewObservedClientAt is NewClientAt with the Challenge that records which
// service the vault says it is (Importer.Challenge). It is the only place
// a Key Vault client is made (kmsimport's
// TestEveryCloudClientGoesThroughThePolicy).
func NewObservedClientAt(vault string, allowed []string) (*azkeys.Client, *kmsimport.CloudEndpoint, *Challenge, error) {
	ep, err := vaultEndpoint("", "", nil)
	if u, perr := url.Parse(vault); perr == nil {
		if _, genuine := Azure.Match(strings.ToLower(u.Hostname())); genuine {
			ep, err = vaultEndpoint(vault, "", nil)
		} else {
			ep, err = vaultEndpoint("", vault, allowed)
		}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	var cred azcore.TokenCredential
	if tok := os.Getenv(EnvAccessToken); tok != "" {
		cred = staticToken(tok)
	} else {
		c, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: no Azure credential: sign in with `az login`, set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or set %s (%v)", kmsimport.ErrInvalidInput, EnvAccessToken, err)
		}
		cred = c
	}
	cred = vaultScopesOnly{cred}
	own := ep.Endpoint().AllowedAs == kmsimport.AllowedOptIn
	ch := &Challenge{}
	c, err := azkeys.NewClient(ep.Endpoint().URL, cred, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: ep.HTTPClient(2*time.Minute, nil),
			PerRetryPolicies: []policy.Policy{ch}},
		DisableChallengeResourceVerification: own,
	})
	if err != nil {
		return nil, nil, nil, invalid("the Key Vault client cannot start: %s", kmsimport.Excerpt(err.Error()))
	}
	return c, ep, ch, nil
}

// vaultScopesOnly hands out tokens for Key Vault and Managed HSM only. The
// SDK asks the credential for the scope the vault's 401 challenge names;
// for an endpoint named with --allow-endpoint the SDK cannot check that
// resource against the vault's host (DisableChallengeResourceVerification),
// so without this an endpoint could name https://management.azure.com and
// be sent a token for the operator's whole subscription.
type vaultScopesOnly struct{ azcore.TokenCredential }

// vaultScopes are the token scopes of Key Vault and Managed HSM in every
// cloud kmsbridge knows (the resource of each of vaultDomains + /.default).
var vaultScopes = func() map[string]bool {
	m := map[string]bool{}
	for _, d := range vaultDomains {
		m["https://"+strings.TrimPrefix(d, ".")+"/.default"] = true
	}
	return m
}()

func (v vaultScopesOnly) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	for _, s := range o.Scopes {
		if !vaultScopes[strings.ToLower(s)] {
			return azcore.AccessToken{}, &scopeRefused{scope: s}
		}
	}
	return v.TokenCredential.GetToken(ctx, o)
}

// scopeRefused: the vault asked for a token kmsbridge does not give.
type scopeRefused struct{ scope string }

func (e *scopeRefused) Error() string {
	return fmt.Sprintf("the vault asked for a token for %s, which is not Key Vault's or Managed HSM's; no token was sent", kmsimport.Excerpt(e.scope))
}

// noRetry sends a change once: an answer lost after Key Vault acted must
// not become a second version. Throttling (429: not processed) is retried.
func noRetry(ctx context.Context) context.Context {
	return policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: 3, StatusCodes: []int{http.StatusTooManyRequests}})
}

// kvError is a Key Vault error as a KMSError (exit code of the KMS kind).
func kvError(op string, err error) error {
	var sr *scopeRefused
	if errors.As(err, &sr) {
		return &kmsimport.KMSError{Op: op, Message: sr.Error(),
			Advice: "a genuine vault asks for https://vault.azure.net or https://managedhsm.azure.net: check that --vault-url (and --allow-endpoint) name the vault you meant"}
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		advice := ""
		switch re.StatusCode {
		case 401, 403:
			advice = "check the credential and that it may use keys in this vault (keys/create, keys/get, keys/import)"
		case 429, 500, 502, 503, 504:
			advice = "Key Vault is busy or failed: re-run the same command"
		}
		return &kmsimport.KMSError{Op: op, Code: re.ErrorCode, Message: fmt.Sprintf("HTTP %d", re.StatusCode), Advice: advice,
			Transient: re.StatusCode == 429 || re.StatusCode >= 500}
	}
	return &kmsimport.KMSError{Op: op, Message: err.Error(), Advice: "check that the vault URL is reachable, then re-run the same command", Transient: true}
}

func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}
