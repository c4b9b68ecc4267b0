package azure

import (
	"net/http"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
)

// Which service a vault is: Key Vault or Managed HSM. Azure's own vault
// URLs say it by their host; an endpoint of one's own says it with
// --managed-hsm. Either way the vault itself says it too, in its bearer
// challenge: `WWW-Authenticate: Bearer authorization="…",
// resource="https://vault.azure.net"` for Key Vault and
// "https://managedhsm.azure.net" for Managed HSM (recorded; see
// docs/azure-emulator.md). Challenge keeps what it said, so check-azure can
// refuse a contradiction before any change.

// Challenge records the resource named by the vault's bearer challenge.
// It is a per-retry policy: it runs after azkeys' own challenge policy, so
// it sees the 401 that policy answers.
type Challenge struct {
	mu       sync.Mutex
	resource string
}

var resourceRE = lazyre.New(`(?i)\b(?:resource|scope)="([^"]*)"`)

// Do implements policy.Policy.
func (c *Challenge) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if resp != nil && resp.StatusCode == http.StatusUnauthorized {
		if m := resourceRE.FindStringSubmatch(resp.Header.Get("WWW-Authenticate")); m != nil {
			c.mu.Lock()
			c.resource = strings.TrimSuffix(strings.TrimSuffix(m[1], "/.default"), "/")
			c.mu.Unlock()
		}
	}
	return resp, err
}

// Resource is the resource the last challenge named, or "".
func (c *Challenge) Resource() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resource
}

// serviceOf says whether a challenge resource is Managed HSM's (true) or
// Key Vault's (false); known is false for any other resource.
func serviceOf(resource string) (managedHSM, known bool) {
	r := strings.ToLower(resource)
	for _, d := range vaultDomains {
		if r == "https://"+strings.TrimPrefix(d, ".") {
			return strings.Contains(d, "managedhsm"), true
		}
	}
	return false, false
}

// checkService holds the request to what the vault's challenge said. A
// vault that says it is a Key Vault while the request is for a Managed HSM
// is refused (an AES key would be refused only after the KEK was made);
// a Managed HSM the request did not know of is taken as one.
func (r *run) checkService() error {
	res := r.im.Challenge.Resource()
	mhsm, known := serviceOf(res)
	switch {
	case !known:
		return nil
	case r.req.ManagedHSM && !mhsm:
		return invalid("%s answers as a Key Vault (its bearer challenge names %s), not a Managed HSM: drop --managed-hsm, or name the Managed HSM", r.req.Vault, res)
	case !r.req.ManagedHSM && mhsm:
		if r.params.Secret() {
			return invalid("%s answers as a Managed HSM (its bearer challenge names %s): add --managed-hsm", r.req.Vault, res)
		}
		r.req.ManagedHSM, r.res.ManagedHSM = true, true
		r.res.Warnings = append(r.res.Warnings, r.req.Vault+" answers as a Managed HSM (its bearer challenge names "+res+"): taken as one; say --managed-hsm to make it explicit")
	}
	return nil
}
