package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
)

// The Azure Key Vault flags of import (--cloud azure).
const (
	flagVaultURL       = "vault-url"
	flagKeyName        = "key-name"
	flagKEKName        = "kek-name"
	flagKEKSize        = "kek-size"
	flagAzureKeyType   = "azure-key-type"
	flagNotBefore      = "not-before"
	flagDisabled       = "disabled"
	flagManagedHSM     = "managed-hsm"
	flagAzureAttRoot   = "azure-attestation-root"
	flagAzurePartition = "azure-hsm-partition"
	catAzure           = "Azure Key Vault (--cloud azure)"
)

const azureHelp = `

Azure Key Vault Premium / Managed HSM (--cloud azure): Azure's BYOK. The Key
Exchange Key (RSA-HSM, key_ops import ONLY) is created in the vault when
absent, or reused when it is exactly that; the HSM key is wrapped inside the
token with CKM_RSA_AES_KEY_WRAP (RSA-OAEP SHA-1 + AES key wrap with padding,
the one method BYOK takes), the .byok transfer blob is built as Azure's
specification defines it and imported as an RSA-HSM, EC-HSM (P-256, P-384,
P-521, P-256K) or, into a Managed HSM only, oct-HSM (AES-128/192/256) key
tagged with the HSM key's CKA_ID and the token serial. The proof: the
vault's public key equals the HSM's; for AES, the Managed HSM's AES-CBC-PAD
encryption of a random message equals the token's and decrypts back (a key
the token may not encrypt with: its check value). Credentials: azidentity's default chain
(az login, environment, managed identity), or a bearer token in
KMSBRIDGE_AZURE_ACCESS_TOKEN.

  # a new RSA-3072 key from a new HSM key
  kmsbridge import --cloud azure --vault-url https://contoso.vault.azure.net \
      --key-name payments-signer --token-label ceremony --key-label payments-signer --generate

  # an existing EC P-256 HSM key, expiring, into a Managed HSM
  kmsbridge import --cloud azure --vault-url https://contoso.managedhsm.azure.net \
      --key-name signer --token-label ceremony --key-label signer-2026 \
      --valid-to 2027-06-30 --tag owner=payments

  # a new AES-256 key into a Managed HSM
  kmsbridge import --cloud azure --vault-url https://contoso.managedhsm.azure.net \
      --key-name data-kek --token-label ceremony --key-label data-kek \
      --generate --azure-key-type AES-256`

func azureFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagVaultURL, Category: catAzure, Usage: "the vault, `URL` https://NAME.vault.azure.net or https://NAME.managedhsm.azure.net (or a sovereign cloud's)"},
		&cli.StringFlag{Name: flagKeyName, Category: catAzure, Usage: "Key Vault key `NAME` to import into (new, or imported from this HSM key before)"},
		&cli.StringFlag{Name: flagKEKName, Category: catAzure, Value: azure.DefaultKEKName, Usage: "Key Exchange Key `NAME` (created RSA-HSM, key_ops import only, when absent)"},
		&cli.IntFlag{Name: flagKEKSize, Category: catAzure, Value: 4096, Usage: "size of a Key Exchange Key kmsbridge creates: 2048, 3072 or 4096 `BITS`"},
		&cli.StringFlag{Name: flagAzureKeyType, Category: catAzure, Usage: "key to generate with --generate: " + azure.KeyTypeNames + " (default RSA-3072); without --generate, taken from the HSM key"},
		&cli.StringFlag{Name: flagNotBefore, Category: catAzure, Usage: "the key is not usable before `TIME` (RFC 3339 or a date)"},
		&cli.BoolFlag{Name: flagDisabled, Category: catAzure, Usage: "import the key disabled"},
		&cli.BoolFlag{Name: flagManagedHSM, Category: catAzure, Usage: "the --endpoint-url is a Managed HSM (Azure's own URLs say it by their host, NAME.managedhsm.azure.net)"},
		&cli.StringFlag{Name: flagAzureAttRoot, Category: catAzure, Usage: "Managed HSM: verify its attestation of the Key Exchange Key against this manufacturer root, PEM `FILE` (Marvell LiquidSecurity), before wrapping under it"},
		azurePartitionFlag(),
	}
}

// azurePartitionFlag pins the Managed HSM meant: the attestation names no
// vault, only the partition that made the KEK.
func azurePartitionFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: flagAzurePartition, Category: catAzure, Usage: "Managed HSM: the KEK must be attested by this partition of YOUR HSM, the `SHA256` of its partition key (KekAttestation.PartitionKeySha256 of a verified attestation read from your vault); repeat for each partition; needs --azure-attestation-root"}
}

// azureOnlyFlags mean nothing to the other clouds (cloud.go checks them).
var azureOnlyFlags = []string{flagVaultURL, flagKeyName, flagKEKName, flagKEKSize, flagAzureKeyType, flagNotBefore, flagDisabled, flagManagedHSM, flagAzureAttRoot, flagAzurePartition}

// awsFlagsNotForAzure are AWS KMS flags Key Vault has no use for.
var awsFlagsNotForAzure = []string{flagKMSKeyID, flagAlias, flagDescription, flagNoExpiry, flagWrappingAlgorithm, flagWrappingKeySpec,
	flagKeySpec, flagKeyUsage, flagMultiRegion, flagReplicaRegion, flagAllowSecondKMSKey, flagRegion, flagProfile, flagAllowNonSensitive, flagFrom, flagParallel}

// azureRequest builds the request from the flags alone.
func azureRequest(c *cliContext) (azure.Request, error) {
	req := azure.Request{KeyName: c.String(flagKeyName), KEKName: c.String(flagKEKName), KEKBits: c.Int(flagKEKSize),
		Generate: c.Bool(flagGenerate), KeyType: c.String(flagAzureKeyType), Disabled: c.Bool(flagDisabled), Tags: map[string]string{},
		AttestationRoot: c.String(flagAzureAttRoot), HSMPartitions: c.StringSlice(flagAzurePartition)}
	if req.KeyName == "" {
		return req, usageError{"--cloud azure needs --key-name NAME, the Key Vault key to import into"}
	}
	vault, err := azure.VaultURL(c.String(flagVaultURL), c.String(flagEndpointURL), azureAllowedEndpoints(c))
	if err != nil {
		return req, err
	}
	req.Vault = vault
	if req.ManagedHSM, err = azureManagedHSM(c, vault); err != nil {
		return req, err
	}
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

// azureManagedHSM says whether the vault is a Managed HSM: by its host, or
// by --managed-hsm for an endpoint of one's own.
func azureManagedHSM(c *cliContext, vault string) (bool, error) {
	if !c.Bool(flagManagedHSM) {
		return azure.IsManagedHSM(vault), nil
	}
	if c.String(flagEndpointURL) == "" {
		return false, usageError{"--managed-hsm is for an --endpoint-url of your own: an Azure vault URL says by its host whether it is a Managed HSM (https://NAME.managedhsm.azure.net); drop --managed-hsm"}
	}
	return true, nil
}

// azureAllowedEndpoints are the endpoints the operator confirmed with
// --allow-endpoint: the same opt-in as AWS's endpoint policy, so an
// emulator on loopback, like any vault not Azure's, is used only when
// named and confirmed.
func azureAllowedEndpoints(c *cliContext) []string {
	if e := c.String(flagAllowEndpoint); e != "" {
		return []string{e}
	}
	return nil
}

func runAzureImport(c *cliContext) error {
	format, log, err := setup(c)
	if err != nil {
		return err
	}
	req, err := azureRequest(c)
	if err != nil {
		return err
	}
	api, ep, challenge, err := azure.NewObservedClientAt(req.Vault, azureAllowedEndpoints(c))
	if err != nil {
		return err
	}
	setCloudEndpoint(c, ep)
	return runCloudImport(c, format, log, azure.Target{Req: req}, func(w cloudRun) (summarizer, error) {
		im := &azure.Importer{KV: api, Token: w.Token, Journal: w.Journal, Log: w.Log, Observe: w.Observe, Halt: w.Halt, Owner: w.Owner, Command: "import", Challenge: challenge}
		res, err := im.Run(c.Context, req)
		if res != nil {
			e := ep.Endpoint()
			res.KMSEndpoint = &e
		}
		return res, err
	})
}
