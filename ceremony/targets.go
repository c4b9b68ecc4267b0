package ceremony

import (
	"fmt"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// Target is one more cloud a key's HSM material goes to, besides AWS KMS
// (the key's own fields): exactly one of GCP and Azure. The HSM key is
// generated once, for AWS; every target then gets the same material,
// wrapped inside the token for that cloud, each journaled and proven on
// its own. The fields are the flags of import --cloud gcp|azure.
type Target struct {
	GCP   *GCPTarget   `yaml:"gcp"`
	Azure *AzureTarget `yaml:"azure"`
}

// GCPTarget is a Cloud KMS crypto key (import --cloud gcp).
type GCPTarget struct {
	// Project, Location, KeyRing and CryptoKey name the crypto key; the key
	// ring and the import-only key are created when absent.
	Project   string `yaml:"project"`
	Location  string `yaml:"location"`
	KeyRing   string `yaml:"key-ring"`
	CryptoKey string `yaml:"crypto-key"`
	// Algorithm is the Cloud KMS algorithm; "" takes the one the key's
	// key-spec implies (RSA keys must name one).
	Algorithm string `yaml:"algorithm"`
	// ProtectionLevel is HSM (default) or SOFTWARE.
	ProtectionLevel string `yaml:"protection-level"`
	// ImportJob uses an existing import job instead of creating one.
	ImportJob string `yaml:"import-job"`
	// ManufacturerRoot and OwnerRoot are the attestation trust roots (PEM
	// files), required for an HSM job unless SkipAttestation.
	ManufacturerRoot string `yaml:"manufacturer-root"`
	OwnerRoot        string `yaml:"owner-root"`
	SkipAttestation  bool   `yaml:"skip-attestation"`
	// Endpoint replaces Google's endpoint; one that is not Google's is used
	// only when AllowEndpoint repeats it (docs/endpoint-policy.md).
	Endpoint      string `yaml:"endpoint"`
	AllowEndpoint string `yaml:"allow-endpoint"`
}

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

// Cloud is "gcp" or "azure" ("" for an empty entry).
func (t Target) Cloud() string {
	switch {
	case t.GCP != nil:
		return "gcp"
	case t.Azure != nil:
		return "azure"
	}
	return ""
}

// Name names the target in messages, results and the record: the crypto
// key's resource name, or the vault key's URL.
func (t Target) Name() string {
	switch {
	case t.GCP != nil:
		r := t.GCP.request(nil)
		return r.KeyName()
	case t.Azure != nil:
		v := t.Azure.VaultURL
		if t.Azure.Endpoint != "" {
			v = t.Azure.Endpoint
		}
		return strings.TrimSuffix(v, "/") + "/keys/" + t.Azure.KeyName
	}
	return ""
}

func allowed(a string) []string {
	if a == "" {
		return nil
	}
	return []string{a}
}

// request is the import --cloud gcp request of this target, for the HSM
// key with CKA_ID id (nil: the key is still to be generated, under label).
func (g *GCPTarget) request(id []byte) gcp.Request {
	return gcp.Request{Project: g.Project, Location: g.Location, KeyRing: g.KeyRing, CryptoKey: g.CryptoKey, Algorithm: g.Algorithm,
		ProtectionLevel: g.ProtectionLevel, ImportJob: g.ImportJob, ManufacturerRoot: g.ManufacturerRoot, OwnerRoot: g.OwnerRoot,
		SkipAttestation: g.SkipAttestation, KeyID: id}
}

// generates says whether the file asks for the HSM key to be generated
// (generate: true, or unset, which validation refuses).
func (k Key) generates() bool { return k.Generate == nil || *k.Generate }

// GCPRequest is the import --cloud gcp request target t makes for key k:
// the existing HSM key with CKA_ID id, or, with id nil, the one k
// generates (label k.HSMLabel). The algorithm is the one k's key-spec
// implies unless the target names it.
func (k Key) GCPRequest(t *GCPTarget, id []byte) (gcp.Request, error) {
	req := t.request(id)
	spec, err := awskms.ParseKeySpec(k.KeySpec)
	if err != nil {
		return req, err
	}
	alg, err := gcp.AlgorithmFor(spec.HSM, t.Algorithm)
	if err != nil {
		return req, err
	}
	req.Algorithm = alg.Name
	if id == nil {
		req.KeyLabel, req.Generate = k.HSMLabel, k.generates()
	}
	return req, nil
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
	spec, err := awskms.ParseKeySpec(k.KeySpec)
	if err != nil {
		return req, err
	}
	if req.KeyType, err = azure.KeyTypeFor(spec.HSM); err != nil {
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

// targetTerms maps the flags the clouds' checks name to a target's
// fields, which carry the same names.
var targetTerms = strings.NewReplacer(
	"--gcp-project", "project", "--gcp-location", "location", "--key-ring", "key-ring", "--crypto-key", "crypto-key",
	"--gcp-algorithm", "algorithm", "--gcp-protection-level", "protection-level", "--import-job", "import-job",
	"--gcp-manufacturer-root", "manufacturer-root", "--gcp-owner-root", "owner-root", "--gcp-skip-attestation", "skip-attestation",
	"--vault-url", "vault-url", "--key-name", "key-name", "--kek-name", "kek-name", "--kek-size", "kek-size",
	"--azure-key-type", "the key's key-spec", "--not-before", "not-before", "--valid-to", "the key's valid-to", "--tag", "the key's tag",
	"--endpoint-url", "endpoint", "--allow-endpoint", "allow-endpoint", "--key-label", "hsm-label", "--generate", "generate",
)

func targetMsg(err error) string {
	return targetTerms.Replace(strings.TrimPrefix(err.Error(), kmsimport.ErrInvalidInput.Error()+": "))
}

// validateTargets checks key k's targets on their own, as of now: each is
// exactly one cloud, its names, endpoint opt-in and trust-root settings
// pass that cloud's own request checks, and the key's material is one the
// cloud imports. What needs the token or the cloud is checked by
// Runner.CheckTargets before the first change.
func (k Key) validateTargets(c *checker, path string, now time.Time) {
	if len(k.Targets) > 0 && k.RotateTo != "" {
		c.add(path+".targets", "cannot be combined with rotate-to: a ceremony rotates the AWS KMS key only; remove targets from this key, or rotate-to")
	}
	seen := map[string]int{}
	for i, t := range k.Targets {
		field := fmt.Sprintf("%s.targets[%d]", path, i)
		switch {
		case t.GCP != nil && t.Azure != nil:
			c.add(field, "names both gcp and azure: each entry of targets is one cloud; split it into two entries")
			continue
		case t.GCP == nil && t.Azure == nil:
			c.add(field, "is empty: write gcp: {...} or azure: {...} (see the ceremony file's documentation)")
			continue
		}
		if t.GCP != nil {
			k.validateGCP(c, field+".gcp", t.GCP)
		} else {
			k.validateAzure(c, field+".azure", t.Azure, now)
		}
		if j, dup := seen[t.Name()]; dup {
			c.add(field, "%s is also targets[%d]: a key goes to each target once", t.Name(), j)
			continue
		}
		seen[t.Name()] = i
	}
}

func (k Key) validateGCP(c *checker, field string, g *GCPTarget) {
	if err := gcp.CheckEndpoint(g.Endpoint, allowed(g.AllowEndpoint)); err != nil {
		c.add(field+".endpoint", "%s", targetMsg(err))
	}
	if g.AllowEndpoint != "" && g.Endpoint == "" {
		c.add(field+".allow-endpoint", "must repeat the endpoint named in endpoint, which is missing: add endpoint with the same URL, or remove both to use Google's")
	}
	// A CKA_ID stands in for the key so that the request's own checks
	// judge the target, not the key still to be generated.
	req := g.request([]byte{1})
	if err := req.Validate(); err != nil {
		c.add(field, "%s", targetMsg(err))
	}
	if k.KeySpec == "" {
		return
	}
	if spec, err := awskms.ParseKeySpec(k.KeySpec); err == nil {
		if _, err := gcp.AlgorithmFor(spec.HSM, g.Algorithm); err != nil {
			c.add(field+".algorithm", "%s (the key's key-spec is %s)", targetMsg(err), spec.Name)
		}
	}
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
	if _, err := awskms.ParseKeySpec(k.KeySpec); err != nil {
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

// validateTargetsUnique refuses two keys sent to one target: a crypto key
// or a vault key holds one HSM key's material.
func (f *File) validateTargetsUnique(c *checker) {
	first := map[string]string{}
	for i, k := range f.Keys {
		for j, t := range k.Targets {
			if t.Cloud() == "" || (t.GCP != nil && t.Azure != nil) {
				continue
			}
			field := fmt.Sprintf("keys[%d].targets[%d]", i, j)
			if other, dup := first[t.Name()]; dup && !strings.HasPrefix(other, fmt.Sprintf("keys[%d].", i)) {
				c.add(field, "%s is also %s: a crypto key or vault key holds the material of one HSM key only", t.Name(), other)
				continue
			}
			first[t.Name()] = field
		}
	}
}

// LoadTargets reads a ceremony file for the keys' targets only, as status
// reads it: parsed as strictly as Load does, with each target checked on
// its own, but without the checks that hold only before a ceremony (an
// expiry in the future, labels free), which a file that already ran may
// no longer pass.
func LoadTargets(path string) (*File, error) {
	data, err := safefile.Read("ceremony file", path, safefile.MaxCeremony)
	if err != nil {
		return nil, err
	}
	f, errs, broken := parse(path, data)
	if f != nil {
		c := &checker{f: f}
		for i := range f.Keys {
			f.Keys[i].validateTargets(c, fmt.Sprintf("keys[%d]", i), time.Time{})
		}
		f.validateTargetsUnique(c)
		errs = append(errs, c.errs.outside(broken)...)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return f, nil
}
