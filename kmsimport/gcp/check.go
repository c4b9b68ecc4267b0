package gcp

import (
	"context"
	"net/url"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Check runs the import's read-only steps for req, in the flow's order
// (validate, select the HSM key, probe the token's wrapping, read Cloud
// KMS) and stops before the first change. A ceremony calls it for every
// Cloud KMS target before it changes anything anywhere, so a bad project,
// location, key ring, crypto key, trust root, endpoint or a token that
// cannot wrap for Cloud KMS stops the whole ceremony untouched. The
// Result holds what the checks found (the import method chosen, what an
// earlier run left).
func (im *Importer) Check(ctx context.Context, req Request) (*Result, error) {
	r := &run{im: im, req: &req, res: &Result{Cloud: "gcp"}}
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

// AlgorithmFor is the Cloud KMS algorithm for material of p: the one
// named, which must be p's material, or else the only one p can be (RSA
// keys fit several, so an RSA key needs a name).
func AlgorithmFor(p hsm.KeyParams, name string) (Algorithm, error) {
	if name != "" {
		a, err := ParseAlgorithm(name)
		if err != nil {
			return a, err
		}
		if !sameParams(a.HSM, p) {
			return a, invalid("algorithm %s is %s material, but the HSM key is %s: choose a Cloud KMS algorithm of the same material", a.Name, a.HSM, p)
		}
		return a, nil
	}
	var found []string
	var alg Algorithm
	for _, a := range Algorithms {
		if sameParams(a.HSM, p) {
			found, alg = append(found, a.Name), a
		}
	}
	switch len(found) {
	case 1:
		return alg, nil
	case 0:
		return alg, invalid("Cloud KMS imports no %s material that kmsbridge supports: remove this target, or choose a key of %s", p, algorithmNames())
	}
	return alg, invalid("%s material fits several Cloud KMS algorithms (%v): name one with algorithm", p, found)
}

func sameParams(a, b hsm.KeyParams) bool {
	return a.KeyType == b.KeyType && a.Bytes == b.Bytes && a.Bits == b.Bits && a.Curve.Name == b.Curve.Name
}

// JournalTarget is the journal scope of imports into req's location
// through endpoint ("" for Google's): the same for import --cloud gcp and
// a ceremony, so either finishes what the other began on this host.
func JournalTarget(req Request, endpoint string) string {
	target := "gcp-" + req.Project + "-" + req.Location
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err == nil {
			target += "@" + u.Host
		}
	}
	return target
}

// KeyName is the crypto key's full resource name.
func (r *Request) KeyName() string { return r.key() }
