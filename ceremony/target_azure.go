package ceremony

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
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
	validTo, err := k.validTo()
	if err != nil {
		return req, err
	}
	if !validTo.IsZero() {
		req.Expires = &validTo
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

func (a *AzureTarget) cloud() string { return "azure" }

// name is the vault key's URL.
func (a *AzureTarget) name() string {
	v := a.VaultURL
	if a.Endpoint != "" {
		v = a.Endpoint
	}
	return strings.TrimSuffix(v, "/") + "/keys/" + a.KeyName
}

func (a *AzureTarget) validate(c *checker, k Key, field string, now time.Time) {
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
	if _, err := k.validTo(); err != nil {
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

// open is the import --cloud azure request of key k's HSM key (CKA_ID
// id) into a, and the importer that carries it out, with a's client and
// journal.
func (a *AzureTarget) open(ctx context.Context, r *Runner, k Key, id []byte) (azure.Request, *azure.Importer, error) {
	if r.Clouds.Azure == nil {
		return azure.Request{}, nil, errNoClients
	}
	req, err := k.AzureRequest(a, id)
	if err != nil {
		return req, nil, err
	}
	api, j, err := r.Clouds.Azure.Azure(ctx, a, req.Vault)
	if err != nil {
		return req, nil, err
	}
	return req, &azure.Importer{KV: api, Token: r.Token, Journal: j, Owner: r.targetOwner(j), Command: "ceremony"}, nil
}

func (a *AzureTarget) check(ctx context.Context, r *Runner, k Key, id []byte) (string, error) {
	req, im, err := a.open(ctx, r, k, id)
	if err != nil {
		return "", err
	}
	res, err := im.Check(ctx, req)
	if err != nil {
		return "", err
	}
	if len(res.Resumed) > 0 || res.KeyID != "" {
		return "already imported: verify only", nil
	}
	return fmt.Sprintf("import as %s with %s", req.KeyType, res.ImportMethod), nil
}

func (a *AzureTarget) run(ctx context.Context, r *Runner, k Key, id []byte, observe func(kmsimport.StepEvent), to *TargetOutcome) error {
	req, im, err := a.open(ctx, r, k, id)
	if err != nil {
		return err
	}
	im.Log, im.Observe, im.Halt = r.Log, observe, r.Halt
	to.Azure, err = im.Run(ctx, req)
	if err == nil && to.Azure != nil {
		to.Done, to.Proof, to.hsmKey = true, to.Azure.Proof.Summary, to.Azure.HSM.KeyID
		if to.Azure.KeyID != "" {
			to.Target = to.Azure.KeyID
		}
	}
	return err
}
