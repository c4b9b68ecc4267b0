package ceremony

import (
	"context"
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

// targetCloud is one cloud a key's HSM material goes to, as the
// ceremony's generic per-target steps see it: validateTargets,
// checkTarget and runTarget know no cloud, only this. Each cloud's side
// is in its own file (target_gcp.go, target_azure.go), built on that
// cloud's adapter (kmsimport/gcp, kmsimport/azure).
type targetCloud interface {
	// cloud is the cloud's short name (gcp, azure), as the file, the
	// results and the record name it.
	cloud() string
	// name names the target in messages, results and the record.
	name() string
	// validate checks the target, at field, on its own for key k as of
	// now (zero: no check that holds only before a ceremony): what needs
	// neither the token nor the cloud.
	validate(c *checker, k Key, field string, now time.Time)
	// check runs, read-only, every check of the import of k's HSM key
	// (CKA_ID id; nil: the key k generates or names by label) into the
	// target, and says what the run will do.
	check(ctx context.Context, r *Runner, k Key, id []byte) (string, error)
	// run imports k's HSM key (as for check) into the target, journaled
	// exactly-once in the target's own journal, and on success sets to's
	// Done, Proof, hsmKey and the cloud's result (and may name to.Target
	// more precisely).
	run(ctx context.Context, r *Runner, k Key, id []byte, observe func(kmsimport.StepEvent), to *TargetOutcome) error
}

// clouds are the clouds entry t names: exactly one in a valid file.
func (t Target) clouds() []targetCloud {
	var cs []targetCloud
	if t.GCP != nil {
		cs = append(cs, t.GCP)
	}
	if t.Azure != nil {
		cs = append(cs, t.Azure)
	}
	return cs
}

// adapter is the cloud of entry t; nil for an empty entry.
func (t Target) adapter() targetCloud {
	if cs := t.clouds(); len(cs) > 0 {
		return cs[0]
	}
	return nil
}

// Cloud is "gcp" or "azure" ("" for an empty entry).
func (t Target) Cloud() string {
	if a := t.adapter(); a != nil {
		return a.cloud()
	}
	return ""
}

// Name names the target in messages, results and the record: the crypto
// key's resource name, or the vault key's URL.
func (t Target) Name() string {
	if a := t.adapter(); a != nil {
		return a.name()
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
		switch len(t.clouds()) {
		case 1:
		case 0:
			c.add(field, "is empty: write gcp: {...} or azure: {...} (see the ceremony file's documentation)")
			continue
		default:
			c.add(field, "names both gcp and azure: each entry of targets is one cloud; split it into two entries")
			continue
		}
		t.adapter().validate(c, k, field+"."+t.Cloud(), now)
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
			if len(t.clouds()) != 1 {
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
