package main

import (
	"context"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// flagTargets is status's ceremony file whose keys' targets it reads.
const flagTargets = "targets"

func targetsFlag() cli.Flag {
	return &cli.StringFlag{Name: flagTargets, Category: catKMS, Usage: "also read the Cloud KMS and Key Vault targets of the keys of ceremony `FILE`, with the file's endpoints and opt-ins (a row per imported version or key, labelled with its cloud)"}
}

// statusTargets reads every target of the ceremony file named by
// --targets, changing nothing: the HSM key each should hold (by label,
// when the token is open) and what each cloud holds. The clouds are
// spoken to under the file's endpoint rules, as ceremony run does.
func statusTargets(ctx context.Context, path string, tok awskms.InventoryToken) ([]kmsimport.StatusTarget, error) {
	f, err := ceremony.LoadTargets(path)
	if err != nil {
		return nil, err
	}
	gcpClients := map[string]gcp.API{}
	defer func() {
		for _, c := range gcpClients {
			if cl, ok := c.(interface{ Close() error }); ok {
				_ = cl.Close()
			}
		}
	}()
	serial := ""
	if tok != nil {
		serial = tok.Identity().Serial
	}
	var out []kmsimport.StatusTarget
	for _, k := range f.Keys {
		if len(k.Targets) == 0 {
			continue
		}
		// The HSM key the targets should hold; "" without the token, when
		// each target's own link names it.
		id := ""
		if tok != nil {
			if spec, err := awskms.ParseKeySpec(k.KeySpec); err == nil {
				if hk, _, err := tok.FindByLabel(k.HSMLabel, spec.HSM); err == nil && hk != nil {
					id = hk.IDHex()
				}
			}
		}
		for _, t := range k.Targets {
			switch {
			case t.GCP != nil:
				req, err := k.GCPRequest(t.GCP, []byte{1})
				if err != nil {
					return nil, err
				}
				var allowed []string
				if t.GCP.AllowEndpoint != "" {
					allowed = []string{t.GCP.AllowEndpoint}
				}
				api, ok := gcpClients[t.GCP.Endpoint]
				if !ok {
					if err := gcp.CheckEndpoint(t.GCP.Endpoint, allowed); err != nil {
						return nil, err
					}
					if api, err = gcp.NewClient(ctx, gcp.ClientOptions{EndpointURL: t.GCP.Endpoint, Allowed: allowed}); err != nil {
						return nil, err
					}
					gcpClients[t.GCP.Endpoint] = api
				}
				rows, err := gcp.ReadTarget(ctx, api, req, id, k.HSMLabel, serial)
				if err != nil {
					return nil, err
				}
				out = append(out, rows...)
			case t.Azure != nil:
				req, err := k.AzureRequest(t.Azure, []byte{1})
				if err != nil {
					return nil, err
				}
				if req.KEKName == "" {
					req.KEKName = azure.DefaultKEKName
				}
				var allowed []string
				if t.Azure.AllowEndpoint != "" {
					allowed = []string{t.Azure.AllowEndpoint}
				}
				api, _, err := azure.NewClientAt(req.Vault, allowed)
				if err != nil {
					return nil, err
				}
				row, err := azure.ReadTarget(ctx, api, req, id, k.HSMLabel, serial)
				if err != nil {
					return nil, err
				}
				out = append(out, row)
			}
		}
	}
	return out, nil
}
