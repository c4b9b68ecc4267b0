package ceremony

import (
	"fmt"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
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

// generates says whether the file asks for the HSM key to be generated
// (generate: true, or unset, which validation refuses).
func (k Key) generates() bool { return k.Generate == nil || *k.Generate }

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
