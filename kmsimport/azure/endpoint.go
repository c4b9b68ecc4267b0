package azure

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// vaultDomains are the DNS suffixes of Key Vault and Managed HSM in
// Azure's public and sovereign clouds (docs/endpoint-policy.md, "Azure",
// has the sources).
var vaultDomains = []string{
	".vault.azure.net", ".managedhsm.azure.net", // public
	".vault.azure.cn", ".managedhsm.azure.cn", // China (21Vianet)
	".vault.usgovcloudapi.net", ".managedhsm.usgovcloudapi.net", // US Government
	".vault.microsoftazure.de", ".managedhsm.microsoftazure.de", // Germany (closed; kept for existing vaults)
}

// Azure is Key Vault's own endpoints: one label (the vault's name)
// before one of vaultDomains. The policy is kmsimport.CheckCloudEndpoint's,
// the same as every cloud's.
var Azure = kmsimport.Genuine{Cloud: "azure",
	Match: func(host string) (string, bool) {
		for _, d := range vaultDomains {
			if name, ok := strings.CutSuffix(host, d); ok && name != "" && !strings.Contains(name, ".") {
				return strings.TrimPrefix(d, "."), true
			}
		}
		return "", false
	},
	Names: "a Key Vault or Managed HSM of Azure (https://NAME" + strings.Join(vaultDomains, ", https://NAME") + ")"}

// VaultURL decides, before anything is read or changed, which vault an
// import talks to: vaultURL when it is a Key Vault or Managed HSM of one
// of Azure's clouds, or endpointURL when the operator named it AND
// allowed it on purpose (allowed lists the URLs given with
// --allow-endpoint). The decision is the endpoint policy's
// (kmsimport.CheckCloudEndpoint with Azure); Key Vault is spoken to over
// TLS only.
func VaultURL(vaultURL, endpointURL string, allowed []string) (string, error) {
	ep, err := vaultEndpoint(vaultURL, endpointURL, allowed)
	if err != nil {
		return "", err
	}
	return ep.Endpoint().URL, nil
}

func vaultEndpoint(vaultURL, endpointURL string, allowed []string) (*kmsimport.CloudEndpoint, error) {
	if endpointURL != "" {
		e, err := normalize(endpointURL, "--endpoint-url")
		if err != nil {
			return nil, err
		}
		if vaultURL != "" {
			if v, err := normalize(vaultURL, "--vault-url"); err != nil || v != e {
				return nil, invalid("--vault-url %s and --endpoint-url %s differ: with an endpoint of your own the endpoint is the vault; give one of them", vaultURL, endpointURL)
			}
		}
		ep, err := kmsimport.CheckCloudEndpoint(Azure, e, "", allowed)
		if err == nil && ep.Endpoint().AllowedAs != kmsimport.AllowedOptIn {
			err = invalid("--endpoint-url %s is an Azure vault: name it with --vault-url instead", endpointURL)
		}
		return ep, err
	}
	if vaultURL == "" {
		return nil, invalid("name the vault with --vault-url https://NAME.vault.azure.net (or https://NAME.managedhsm.azure.net)")
	}
	v, err := normalize(vaultURL, "--vault-url")
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(v)
	if u.Port() != "" && u.Port() != "443" {
		return nil, invalid("--vault-url %s has a port: Key Vault answers on 443 only", vaultURL)
	}
	if _, ok := Azure.Match(strings.ToLower(u.Hostname())); !ok {
		return nil, invalid("--vault-url %s is not a Key Vault or Managed HSM of Azure (*%s): check the URL, or name your own endpoint with --endpoint-url URL --allow-endpoint URL", vaultURL, strings.Join(vaultDomains, ", *"))
	}
	return kmsimport.CheckCloudEndpoint(Azure, "https://"+strings.ToLower(u.Hostname()), "", nil)
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
