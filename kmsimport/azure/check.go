package azure

import (
	"context"
	"net/url"
	"sort"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Check runs the import's read-only steps for req, in the flow's order
// (validate, select the HSM key, probe the token's wrapping, read the
// vault) and stops before the first change. A ceremony calls it for every
// Key Vault target before it changes anything anywhere, so a bad vault,
// key name, Key Exchange Key, endpoint or a token that cannot wrap for
// BYOK stops the whole ceremony untouched.
func (im *Importer) Check(ctx context.Context, req Request) (*Result, error) {
	r := &run{im: im, req: &req, res: &Result{Cloud: "azure", Vault: req.Vault, KeyName: req.KeyName}}
	// The engine, without the record or the log: these steps change
	// nothing, and the ceremony reports the target's check itself.
	eng := r.engine()
	eng.Observe, eng.Log, eng.Halt = nil, nil, nil
	err := eng.Run(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: r.validate},
		{Name: StepSelectKey, Run: r.selectKey},
		{Name: StepProbe, Run: r.probe},
		{Name: StepCheck, Run: r.check},
	})
	return r.res, err
}

// KeyTypeFor is the Key Vault key type (--azure-key-type) of material p,
// or an error naming the types Key Vault imports.
func KeyTypeFor(p hsm.KeyParams) (string, error) {
	names := make([]string, 0, len(keyTypes))
	for n := range keyTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		q := keyTypes[n]
		if q.KeyType == p.KeyType && q.Bytes == p.Bytes && q.Bits == p.Bits && q.Curve.Name == p.Curve.Name {
			return n, nil
		}
	}
	return "", invalid("Key Vault BYOK imports no %s material that kmsbridge supports (%s): remove this target, or choose such a key", p, KeyTypeNames)
}

// JournalTarget is the journal scope of imports into vault: the same for
// import --cloud azure and a ceremony, so either finishes what the other
// began on this host.
func JournalTarget(vault string) string {
	u, err := url.Parse(vault)
	if err != nil {
		return "azure@" + vault
	}
	return "azure@" + u.Host
}
