package main

import (
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// Google Cloud KMS target flags of import (--cloud gcp).
const (
	flagGCPProject       = "gcp-project"
	flagGCPLocation      = "gcp-location"
	flagKeyRing          = "key-ring"
	flagCryptoKey        = "crypto-key"
	flagGCPAlgorithm     = "gcp-algorithm"
	flagGCPProtection    = "gcp-protection-level"
	flagImportJob        = "import-job"
	flagCryptoKeyVersion = "crypto-key-version"
	flagGCPMfrRoot       = "gcp-manufacturer-root"
	flagGCPOwnerRoot     = "gcp-owner-root"
	flagGCPSkipAttest    = "gcp-skip-attestation"
	catGCP               = "Google Cloud KMS (--cloud gcp)"
)

const gcpHelp = `

Google Cloud KMS (--cloud gcp): the key ring and an import-only crypto key
are created when absent, an import job with the strongest method the token
can perform is created and waited for, its attestation (HSM protection) is
verified against the trust roots you give BEFORE anything is wrapped, the key
is wrapped inside the token, imported, waited for until ENABLED, and proven
(Encrypt/Decrypt, GetPublicKey equal to the HSM's, or MacSign equal to the
HSM's HMAC). Credentials: Application Default Credentials.

  # AES-256 into a new HSM-protected key, attestation checked
  kmsbridge import --cloud gcp --gcp-project my-project --gcp-location europe-west1 \
      --key-ring payments --crypto-key payments-2026 \
      --gcp-manufacturer-root marvell_root.pem --gcp-owner-root google_hawksbill_root.pem \
      --token-label ceremony --key-label payments-2026 --generate

  # an EC P-256 signing key, the target as one resource name
  kmsbridge import --cloud gcp --crypto-key projects/my-project/locations/us/keyRings/sig/cryptoKeys/signer \
      --gcp-algorithm EC_SIGN_P256_SHA256 --gcp-manufacturer-root m.pem --gcp-owner-root g.pem \
      --token-label ceremony --key-label signer-2026 --generate

  # the same material again into version 1 after it was destroyed
  kmsbridge import --cloud gcp ... --key-label payments-2026 --crypto-key-version 1`

func gcpFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagGCPProject, Category: catGCP, Usage: "Google Cloud `PROJECT_ID`"},
		&cli.StringFlag{Name: flagGCPLocation, Category: catGCP, Usage: "Cloud KMS `LOCATION`, e.g. us-central1, europe-west1, global"},
		&cli.StringFlag{Name: flagKeyRing, Category: catGCP, Usage: "key ring `ID` (created when absent)"},
		&cli.StringFlag{Name: flagCryptoKey, Category: catGCP, Usage: "crypto key `ID` (created import-only when absent), or its full name projects/P/locations/L/keyRings/R/cryptoKeys/K"},
		&cli.StringFlag{Name: flagGCPAlgorithm, Category: catGCP, Usage: "Cloud KMS `ALGORITHM`: GOOGLE_SYMMETRIC_ENCRYPTION (default with --generate), HMAC_SHA1|224|256|384|512, EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384, EC_SIGN_SECP256K1_SHA256, RSA_SIGN_PSS|PKCS1_2048|3072|4096_SHA256, RSA_DECRYPT_OAEP_2048|3072|4096_SHA256; without --generate, taken from the HSM key (RSA keys must name one)"},
		&cli.StringFlag{Name: flagGCPProtection, Category: catGCP, Value: "HSM", Usage: "protection level of the key and the import job: HSM or SOFTWARE (no attestation; recorded)"},
		&cli.StringFlag{Name: flagImportJob, Category: catGCP, Usage: "use this existing import job `ID` of the key ring instead of creating one (refused when expired)"},
		&cli.StringFlag{Name: flagCryptoKeyVersion, Category: catGCP, Usage: "re-import the same material into this DESTROYED or IMPORT_FAILED version `N`"},
		&cli.StringFlag{Name: flagGCPMfrRoot, Category: catGCP, Usage: "the HSM manufacturer's (Marvell/Cavium) attestation root, PEM `FILE`"},
		&cli.StringFlag{Name: flagGCPOwnerRoot, Category: catGCP, Usage: "Google's Cloud HSM attestation root (Hawksbill Root), PEM `FILE`"},
		&cli.BoolFlag{Name: flagGCPSkipAttest, Category: catGCP, Usage: "wrap under an HSM import job without verifying its attestation (recorded; not advised)"},
	}
}

// awsOnlyFlags are import flags that mean nothing for Cloud KMS.
var awsOnlyFlags = []string{flagKMSKeyID, flagAlias, flagDescription, flagTag, flagValidTo, flagNoExpiry, flagWrappingAlgorithm,
	flagKeySpec, flagKeyUsage, flagMultiRegion, flagReplicaRegion, flagAllowSecondKMSKey, flagRegion, flagProfile, flagAllowNonSensitive, flagFrom, flagParallel}

// gcpOnlyFlags are the Cloud KMS flags, refused without --cloud gcp.
var gcpOnlyFlags = []string{flagGCPProject, flagGCPLocation, flagKeyRing, flagCryptoKey, flagGCPAlgorithm, flagGCPProtection,
	flagImportJob, flagCryptoKeyVersion, flagGCPMfrRoot, flagGCPOwnerRoot, flagGCPSkipAttest}

// gcpRequest builds the request from the flags alone.
func gcpRequest(c *cliContext) (gcp.Request, error) {
	req := gcp.Request{Project: c.String(flagGCPProject), Location: c.String(flagGCPLocation), KeyRing: c.String(flagKeyRing),
		CryptoKey: c.String(flagCryptoKey), Algorithm: c.String(flagGCPAlgorithm), ProtectionLevel: c.String(flagGCPProtection),
		ImportJob: c.String(flagImportJob), ReimportVersion: c.String(flagCryptoKeyVersion), Generate: c.Bool(flagGenerate),
		ManufacturerRoot: c.String(flagGCPMfrRoot), OwnerRoot: c.String(flagGCPOwnerRoot), SkipAttestation: c.Bool(flagGCPSkipAttest)}
	if full := c.String(flagCryptoKey); len(full) > 9 && full[:9] == "projects/" || len(full) > 6 && full[:6] == "gcp://" {
		if c.IsSet(flagGCPProject) || c.IsSet(flagGCPLocation) || c.IsSet(flagKeyRing) {
			return req, usageError{"--crypto-key is a full resource name: drop --gcp-project, --gcp-location and --key-ring, which it already gives"}
		}
		if !req.ParseKeyName(full) {
			return req, usageError{fmt.Sprintf("--crypto-key %q is not projects/P/locations/L/keyRings/R/cryptoKeys/K", full)}
		}
	}
	sel, err := keySelection(c)
	if err != nil {
		return req, err
	}
	req.KeyLabel, req.KeyID = sel.Label, sel.ID
	if _, err := tokenSelector(c); err != nil {
		return req, err
	}
	return req, req.Validate()
}

// gcpAllowedEndpoints are the endpoints the operator confirmed with
// --allow-endpoint: the same opt-in the AWS endpoint policy takes, so an
// emulator on loopback, like any endpoint not Google's, is used only when
// named and confirmed.
func gcpAllowedEndpoints(c *cliContext) []string {
	if e := c.String(flagAllowEndpoint); e != "" {
		return []string{e}
	}
	return nil
}

func runGCPImport(c *cliContext) error {
	format, log, err := setup(c)
	if err != nil {
		return err
	}
	req, err := gcpRequest(c)
	if err != nil {
		return err
	}
	endpoint := c.String(flagEndpointURL)
	if err := gcp.CheckEndpoint(endpoint, gcpAllowedEndpoints(c)); err != nil {
		return err
	}
	api, ep, err := gcp.NewClientAt(c.Context, gcp.ClientOptions{EndpointURL: endpoint, Allowed: gcpAllowedEndpoints(c)})
	if err != nil {
		return err
	}
	setCloudEndpoint(c, ep)
	defer api.Close()
	return runCloudImport(c, format, log, gcp.Target{Req: req, EndpointURL: endpoint}, func(w cloudRun) (summarizer, error) {
		im := &gcp.Importer{KMS: api, Token: w.Token, Journal: w.Journal, Log: w.Log, Observe: w.Observe, Halt: w.Halt, Owner: w.Owner, Command: "import"}
		res, err := im.Run(c.Context, req)
		if res != nil {
			e := ep.Endpoint()
			res.KMSEndpoint = &e
		}
		return res, err
	})
}
