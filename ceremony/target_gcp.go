package ceremony

import (
	"context"
	"fmt"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// A ceremony target in Google Cloud KMS: its fields in the file, the
// import --cloud gcp request it makes, and its checks.

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

// request is the import --cloud gcp request of this target, for the HSM
// key with CKA_ID id (nil: the key is still to be generated, under label).
func (g *GCPTarget) request(id []byte) gcp.Request {
	return gcp.Request{Project: g.Project, Location: g.Location, KeyRing: g.KeyRing, CryptoKey: g.CryptoKey, Algorithm: g.Algorithm,
		ProtectionLevel: g.ProtectionLevel, ImportJob: g.ImportJob, ManufacturerRoot: g.ManufacturerRoot, OwnerRoot: g.OwnerRoot,
		SkipAttestation: g.SkipAttestation, KeyID: id}
}

// GCPRequest is the import --cloud gcp request target t makes for key k:
// the existing HSM key with CKA_ID id, or, with id nil, the one k
// generates (label k.HSMLabel). The algorithm is the one k's key-spec
// implies unless the target names it.
func (k Key) GCPRequest(t *GCPTarget, id []byte) (gcp.Request, error) {
	req := t.request(id)
	m, err := k.material()
	if err != nil {
		return req, err
	}
	alg, err := gcp.AlgorithmFor(m.HSM, t.Algorithm)
	if err != nil {
		return req, err
	}
	req.Algorithm = alg.Name
	if id == nil {
		req.KeyLabel, req.Generate = k.HSMLabel, k.generates()
	}
	return req, nil
}

func (g *GCPTarget) cloud() string { return "gcp" }

// name is the crypto key's resource name.
func (g *GCPTarget) name() string {
	r := g.request(nil)
	return r.KeyName()
}

func (g *GCPTarget) validate(c *checker, k Key, field string, _ time.Time) {
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
	if m, err := k.material(); err == nil {
		if _, err := gcp.AlgorithmFor(m.HSM, g.Algorithm); err != nil {
			c.add(field+".algorithm", "%s (the key's key-spec is %s)", targetMsg(err), m.Name)
		}
	}
}

// open is the import --cloud gcp request of key k's HSM key (CKA_ID id)
// into g, and the importer that carries it out, with g's client and
// journal.
func (g *GCPTarget) open(ctx context.Context, r *Runner, k Key, id []byte) (gcp.Request, *gcp.Importer, error) {
	if r.Clouds.GCP == nil {
		return gcp.Request{}, nil, errNoClients
	}
	req, err := k.GCPRequest(g, id)
	if err != nil {
		return req, nil, err
	}
	api, j, err := r.Clouds.GCP.GCP(ctx, g)
	if err != nil {
		return req, nil, err
	}
	return req, &gcp.Importer{KMS: api, Token: r.Token, Journal: j, Owner: r.targetOwner(j), Command: "ceremony"}, nil
}

func (g *GCPTarget) check(ctx context.Context, r *Runner, k Key, id []byte) (string, error) {
	req, im, err := g.open(ctx, r, k, id)
	if err != nil {
		return "", err
	}
	res, err := im.Check(ctx, req)
	if err != nil {
		return "", err
	}
	if res.CryptoKeyVersion != "" {
		return "already imported (" + res.CryptoKeyVersion + "): verify only", nil
	}
	return fmt.Sprintf("import as %s with %s", res.Algorithm, res.ImportMethod), nil
}

func (g *GCPTarget) run(ctx context.Context, r *Runner, k Key, id []byte, observe func(kmsimport.StepEvent), to *TargetOutcome) error {
	req, im, err := g.open(ctx, r, k, id)
	if err != nil {
		return err
	}
	im.Log, im.Observe, im.Halt = r.Log, observe, r.Halt
	to.Gcp, err = im.Run(ctx, req)
	if err == nil && to.Gcp != nil {
		to.Done, to.Proof, to.hsmKey = true, to.Gcp.Proof.Summary, to.Gcp.HSM.KeyID
		if to.Gcp.CryptoKeyVersion != "" {
			to.Target = to.Gcp.CryptoKeyVersion
		}
	}
	return err
}
