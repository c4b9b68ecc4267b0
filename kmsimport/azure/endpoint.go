package azure

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// vaultDomains are the DNS suffixes of Key Vault and Managed HSM in
// Azure's public and sovereign clouds (docs/azure-import.md, "Endpoints").
var vaultDomains = []string{
	".vault.azure.net", ".managedhsm.azure.net", // public
	".vault.azure.cn", ".managedhsm.azure.cn", // China (21Vianet)
	".vault.usgovcloudapi.net", ".managedhsm.usgovcloudapi.net", // US Government
}

// VaultURL decides, before anything is read or changed, which vault an
// import talks to: vaultURL when it is a Key Vault or Managed HSM of one
// of Azure's clouds, or endpointURL when the operator named it AND
// allowed it on purpose (allowed lists the URLs given with
// --allow-endpoint). It is the one check every Azure call goes through.
func VaultURL(vaultURL, endpointURL string, allowed []string) (string, error) {
	if endpointURL != "" {
		e, err := normalize(endpointURL, "--endpoint-url")
		if err != nil {
			return "", err
		}
		if vaultURL != "" {
			if v, err := normalize(vaultURL, "--vault-url"); err != nil || v != e {
				return "", invalid("--vault-url %s and --endpoint-url %s differ: with an endpoint of your own the endpoint is the vault; give one of them", vaultURL, endpointURL)
			}
		}
		for _, a := range allowed {
			if n, err := normalize(a, "--allow-endpoint"); err == nil && n == e {
				return e, nil
			}
		}
		return "", invalid("--endpoint-url %s is not Azure's and was not allowed: add --allow-endpoint %s if you mean to wrap under a key this endpoint gives", endpointURL, e)
	}
	if vaultURL == "" {
		return "", invalid("name the vault with --vault-url https://NAME.vault.azure.net (or https://NAME.managedhsm.azure.net)")
	}
	v, err := normalize(vaultURL, "--vault-url")
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(v)
	if u.Port() != "" && u.Port() != "443" {
		return "", invalid("--vault-url %s has a port: Key Vault answers on 443 only", vaultURL)
	}
	host := strings.ToLower(u.Hostname())
	for _, d := range vaultDomains {
		if name, ok := strings.CutSuffix(host, d); ok && name != "" && !strings.Contains(name, ".") {
			return "https://" + host, nil
		}
	}
	return "", invalid("--vault-url %s is not a Key Vault or Managed HSM of Azure (*%s): check the URL, or name your own endpoint with --endpoint-url URL --allow-endpoint URL", vaultURL, strings.Join(vaultDomains, ", *"))
}

// IsManagedHSM reports whether the vault URL is a Managed HSM's.
func IsManagedHSM(vaultURL string) bool {
	u, err := url.Parse(vaultURL)
	return err == nil && strings.Contains(strings.ToLower(u.Hostname()), ".managedhsm.")
}

func normalize(raw, flag string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", invalid("%s %q is not https://HOST[:PORT] with nothing after the host: Key Vault is spoken to over TLS only", flag, raw)
	}
	return "https://" + strings.ToLower(u.Host), nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", kmsimport.ErrInvalidInput, fmt.Sprintf(format, a...))
}
