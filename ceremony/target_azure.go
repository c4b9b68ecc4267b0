package ceremony

import (
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
)

// A ceremony target in Azure Key Vault or Managed HSM: its fields in the
// file, the import --cloud azure request it makes, and its checks.

// AzureTarget is a Key Vault or Managed HSM key (import --cloud azure).
// Its expiry (exp) is the key's valid-to, its tags the key's tags.
type AzureTarget struct {
	// VaultURL is https://NAME.vault.azure.net or NAME.managedhsm.azure.net.
	VaultURL string `yaml:"vault-url"`
	// KeyName is the Key Vault key to import into.
	KeyName string `yaml:"key-name"`
	// KEKName and KEKSize are the Key Exchange Key's name and, when
	// kmsbridge creates it, size (default kmsbridge-kek, 4096).
	KEKName string `yaml:"kek-name"`
	KEKSize uint   `yaml:"kek-size"`
	// NotBefore (RFC 3339 or a date) and Disabled are the key's attributes.
	NotBefore string `yaml:"not-before"`
	Disabled  bool   `yaml:"disabled"`
	// Endpoint is a vault of your own (an emulator); it is used only when
	// AllowEndpoint repeats it, and then it is the vault.
	Endpoint      string `yaml:"endpoint"`
	AllowEndpoint string `yaml:"allow-endpoint"`
}

// AzureRequest is the import --cloud azure request target t makes for key
// k (see GCPRequest): the key type is k's key-spec's, the expiry its
// valid-to, the tags its tags.
func (k Key) AzureRequest(t *AzureTarget, id []byte) (azure.Request, error) {
	req := azure.Request{KeyName: t.KeyName, KEKName: t.KEKName, KEKBits: int(t.KEKSize), KeyLabel: k.HSMLabel, KeyID: id,
		Generate: id == nil && k.generates(), Disabled: t.Disabled, Tags: map[string]string{}}
	vault, err := azure.VaultURL(t.VaultURL, t.Endpoint, allowed(t.AllowEndpoint))
	if err != nil {
		return req, err
	}
	req.Vault = vault
	m, err := k.material()
	if err != nil {
		return req, err
	}
	if req.KeyType, err = azure.KeyTypeFor(m.HSM); err != nil {
		return req, err
	}
	exp, err := k.expiry()
	if err != nil {
		return req, err
	}
	if !exp.ValidTo.IsZero() {
		v := exp.ValidTo
		req.Expires = &v
	}
	if t.NotBefore != "" {
		nb, err := parseTime(t.NotBefore)
		if err != nil {
			return req, err
		}
		req.NotBefore = &nb
	}
	for name, v := range k.Tags {
		req.Tags[name] = v
	}
	return req, nil
}

func (k Key) validateAzure(c *checker, field string, a *AzureTarget, now time.Time) {
	if _, err := azure.VaultURL(a.VaultURL, a.Endpoint, allowed(a.AllowEndpoint)); err != nil {
		f := field + ".vault-url"
		if a.Endpoint != "" {
			f = field + ".endpoint"
		}
		c.add(f, "%s", targetMsg(err))
		return
	}
	if a.NotBefore != "" {
		if _, err := parseTime(a.NotBefore); err != nil {
			c.add(field+".not-before", "%s", targetMsg(err))
			return
		}
	}
	if k.KeySpec == "" {
		return
	}
	if _, err := k.material(); err != nil {
		return // the key's own check says so
	}
	if _, err := k.expiry(); err != nil {
		return
	}
	req, err := k.AzureRequest(a, []byte{1})
	if err != nil {
		c.add(field, "%s", targetMsg(err))
		return
	}
	if err := req.Validate(now); err != nil {
		c.add(field, "%s", targetMsg(err))
	}
}
