package main

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
)

// The Azure Key Vault flags of import (--cloud azure).
const (
	flagVaultURL     = "vault-url"
	flagKeyName      = "key-name"
	flagKEKName      = "kek-name"
	flagKEKSize      = "kek-size"
	flagAzureKeyType = "azure-key-type"
	flagNotBefore    = "not-before"
	flagDisabled     = "disabled"
	catAzure         = "Azure Key Vault (--cloud azure)"
)

const azureHelp = `

Azure Key Vault Premium / Managed HSM (--cloud azure): Azure's BYOK. The Key
Exchange Key (RSA-HSM, key_ops import ONLY) is created in the vault when
absent, or reused when it is exactly that; the HSM key is wrapped inside the
token with CKM_RSA_AES_KEY_WRAP (RSA-OAEP SHA-1 + AES key wrap with padding,
the one method BYOK takes), the .byok transfer blob is built as Azure's
specification defines it and imported as an RSA-HSM or EC-HSM key tagged
with the HSM key's CKA_ID and the token serial, and the vault's public key
is checked equal to the HSM's. Credentials: azidentity's default chain
(az login, environment, managed identity), or a bearer token in
KMSBRIDGE_AZURE_ACCESS_TOKEN.

  # a new RSA-3072 key from a new HSM key
  kmsbridge import --cloud azure --vault-url https://contoso.vault.azure.net \
      --key-name payments-signer --token-label ceremony --key-label payments-signer --generate

  # an existing EC P-256 HSM key, expiring, into a Managed HSM
  kmsbridge import --cloud azure --vault-url https://contoso.managedhsm.azure.net \
      --key-name signer --token-label ceremony --key-label signer-2026 \
      --valid-to 2027-06-30 --tag owner=payments`

func azureFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagVaultURL, Category: catAzure, Usage: "the vault, `URL` https://NAME.vault.azure.net or https://NAME.managedhsm.azure.net (or a sovereign cloud's)"},
		&cli.StringFlag{Name: flagKeyName, Category: catAzure, Usage: "Key Vault key `NAME` to import into (new, or imported from this HSM key before)"},
		&cli.StringFlag{Name: flagKEKName, Category: catAzure, Value: azure.DefaultKEKName, Usage: "Key Exchange Key `NAME` (created RSA-HSM, key_ops import only, when absent)"},
		&cli.IntFlag{Name: flagKEKSize, Category: catAzure, Value: 4096, Usage: "size of a Key Exchange Key kmsbridge creates: 2048, 3072 or 4096 `BITS`"},
		&cli.StringFlag{Name: flagAzureKeyType, Category: catAzure, Usage: "key to generate with --generate: " + azure.KeyTypeNames + " (default RSA-3072); without --generate, taken from the HSM key"},
		&cli.StringFlag{Name: flagNotBefore, Category: catAzure, Usage: "the key is not usable before `TIME` (RFC 3339 or a date)"},
		&cli.BoolFlag{Name: flagDisabled, Category: catAzure, Usage: "import the key disabled"},
	}
}

// azureOnlyFlags mean nothing to the other clouds (cloud.go checks them).
var azureOnlyFlags = []string{flagVaultURL, flagKeyName, flagKEKName, flagKEKSize, flagAzureKeyType, flagNotBefore, flagDisabled}

// awsFlagsNotForAzure are AWS KMS flags Key Vault has no use for.
var awsFlagsNotForAzure = []string{flagKMSKeyID, flagAlias, flagDescription, flagNoExpiry, flagWrappingAlgorithm, flagWrappingKeySpec,
	flagKeySpec, flagKeyUsage, flagMultiRegion, flagReplicaRegion, flagAllowSecondKMSKey, flagRegion, flagProfile, flagAllowNonSensitive, flagFrom, flagParallel}

// azureRequest builds the request from the flags alone.
func azureRequest(c *cli.Context) (azure.Request, error) {
	req := azure.Request{KeyName: c.String(flagKeyName), KEKName: c.String(flagKEKName), KEKBits: c.Int(flagKEKSize),
		Generate: c.Bool(flagGenerate), KeyType: c.String(flagAzureKeyType), Disabled: c.Bool(flagDisabled), Tags: map[string]string{}}
	if req.KeyName == "" {
		return req, usageError{"--cloud azure needs --key-name NAME, the Key Vault key to import into"}
	}
	vault, err := azure.VaultURL(c.String(flagVaultURL), c.String(flagEndpointURL), azureAllowedEndpoints(c))
	if err != nil {
		return req, err
	}
	req.Vault = vault
	if s := c.String(flagValidTo); s != "" {
		t, err := parseTime(flagValidTo, s)
		if err != nil {
			return req, err
		}
		req.Expires = &t
	}
	if s := c.String(flagNotBefore); s != "" {
		t, err := parseTime(flagNotBefore, s)
		if err != nil {
			return req, err
		}
		req.NotBefore = &t
	}
	for _, kv := range c.StringSlice(flagTag) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return req, usageError{fmt.Sprintf("--tag %q: write tags as KEY=VALUE", kv)}
		}
		req.Tags[k] = v
	}
	sel, err := keySelection(c)
	if err != nil {
		return req, err
	}
	req.KeyLabel, req.KeyID = sel.Label, sel.ID
	if _, err := tokenSelector(c); err != nil {
		return req, err
	}
	return req, req.Validate(time.Now())
}

// azureAllowedEndpoints are the endpoints the operator confirmed with
// --allow-endpoint: the same opt-in as AWS's endpoint policy, so an
// emulator on loopback, like any vault not Azure's, is used only when
// named and confirmed.
func azureAllowedEndpoints(c *cli.Context) []string {
	if e := c.String(flagAllowEndpoint); e != "" {
		return []string{e}
	}
	return nil
}

func runAzureImport(c *cli.Context) error {
	format, log, err := setup(c)
	if err != nil {
		return err
	}
	req, err := azureRequest(c)
	if err != nil {
		return err
	}
	api, ep, err := azure.NewClientAt(req.Vault, azureAllowedEndpoints(c))
	if err != nil {
		return err
	}
	setCloudEndpoint(c, ep)
	s, err := openToken(c, log)
	if err != nil {
		return err
	}
	defer s.Close()
	inputs := map[string]string{"Cloud": "azure", "Vault": req.Vault, "KeyName": req.KeyName, "KekName": req.KEKName,
		"KeyLabel": req.KeyLabel, "Generate": fmt.Sprint(req.Generate), "KeyType": req.KeyType}
	rec, err := s.openRecorder(c, "import", inputs, log)
	if err != nil {
		return err
	}
	u, _ := url.Parse(req.Vault)
	j, err := openJournalFor(c, s.tok.Identity().Serial, "azure@"+u.Host, rec)
	if err != nil {
		return rec.close(err)
	}
	defer j.Close()
	im := &azure.Importer{KV: api, Token: s.tok, Journal: j, Log: log, Observe: rec.observer(), Command: "import"}
	res, err := im.Run(c.Context, req)
	if res != nil {
		e := ep.Endpoint()
		res.KMSEndpoint = &e
	}
	err = rec.close(err)
	switch {
	case format == "json" && err != nil:
		_ = writeJSON(c.App.Writer, map[string]any{"Error": err.Error(), "ExitCode": exitCode(err), "Partial": res})
	case format == "json":
		return writeJSON(c.App.Writer, res)
	case err == nil:
		res.WriteSummary(c.App.Writer)
	}
	return err
}
