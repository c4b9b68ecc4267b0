package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/urfave/cli/v3"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

const (
	flagMultiRegion       = "multi-region"
	flagKeyLabel          = "key-label"
	flagHSMKeyID          = "hsm-key-id"
	flagGenerate          = "generate"
	flagAllowNonSensitive = "allow-non-sensitive"
	flagKMSKeyID          = "kms-key-id"
	flagAlias             = "alias"
	flagDescription       = "description"
	flagTag               = "tag"
	flagValidTo           = "valid-to"
	flagNoExpiry          = "no-expiry"
	flagWrappingAlgorithm = "wrapping-algorithm"
	flagWrappingKeySpec   = "wrapping-key-spec"
	flagKeySpec           = "key-spec"
	flagKeyUsage          = "key-usage"
	flagAllowSecondKMSKey = "allow-second-kms-key"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "generate or find a key in the HSM, wrap it there, and import it into a KMS key",
		Description: `Runs the whole import, each step narrated on stderr:
  validate, select-hsm-key, probe-wrapping, check-kms, generate-hsm-key,
  create-kms-key, get-parameters, wrap, import, alias, verify.
Everything that can be checked without changing anything is checked first.
If a later step fails, the error says what exists and how to finish.

The KMS key is tagged kmsbridge:hsm-key-id, kmsbridge:hsm-key-label,
kmsbridge:token-serial and kmsbridge:token-label, so each side can be found
from the other.

Examples:
  # a new KMS key from a new HSM key
  export KMSBRIDGE_PIN=...
  kmsbridge import --module /usr/lib/softhsm/libsofthsm2.so --token-label ceremony \
      --key-label payments-2026 --generate \
      --alias alias/payments --description "payments data key" --tag owner=payments \
      --valid-to 2027-06-30T00:00:00Z

  # an ECDSA signing key whose private half never exists outside the HSM
  kmsbridge import --token-label ceremony --key-label signer-2026 --generate \
      --key-spec ECC_NIST_P256 --alias alias/signer --no-expiry

  # re-import the same material after it expired or was deleted
  kmsbridge import --token-label ceremony --key-label payments-2026 \
      --kms-key-id 1234abcd-12ab-34cd-56ef-1234567890ab --valid-to 2027-06-30T00:00:00Z

  # for scripts
  kmsbridge import ... --output json | jq -r .KeyId` + gcpHelp + azureHelp,
		Flags: append(append(append(append(append(append(hsmFlags(), keyURIFlag()), kmsFlags()...), outputFlags()...), append(recordFlags(), auditKeyFlag())...),
			&cli.StringFlag{Name: flagKeyLabel, Category: "Key", Usage: "`LABEL` of the HSM key (to find it, or for the one --generate makes)"},
			&cli.StringFlag{Name: flagHSMKeyID, Category: "Key", Usage: "find the HSM key by its CKA_ID, in `HEX`"},
			&cli.BoolFlag{Name: flagGenerate, Category: "Key", Usage: "generate a new key of --key-spec in the HSM (refused if the label is in use)"},
			&cli.BoolFlag{Name: flagAllowNonSensitive, Category: "Key", Usage: "import an existing HSM key with CKA_SENSITIVE=false (its value readable in the clear); refused otherwise, recorded when given"},
			adoptFlag(),
			&cli.StringFlag{Name: flagKeySpec, Category: "Key", Usage: "KMS key spec: SYMMETRIC_DEFAULT (default with --generate), HMAC_224|256|384|512, RSA_2048|3072|4096, ECC_NIST_P256|P384|P521, ECC_SECG_P256K1; without --generate, taken from the HSM key"},
			&cli.StringFlag{Name: flagKeyUsage, Category: "Key", Usage: "KMS key usage where the spec allows a choice: SIGN_VERIFY (default) or ENCRYPT_DECRYPT for RSA, SIGN_VERIFY (default) or KEY_AGREEMENT for ECC_NIST_*"},
			&cli.StringFlag{Name: flagKMSKeyID, Category: "Key", Usage: "import into this existing EXTERNAL KMS key (`ID` or ARN) instead of creating one"},
			&cli.StringFlag{Name: flagAlias, Category: "Key", Usage: "create `alias/NAME` for the KMS key"},
			&cli.StringFlag{Name: flagDescription, Category: "Key", Usage: "description of a new KMS key"},
			&cli.StringSliceFlag{Name: flagTag, Category: "Key", Usage: "tag a new KMS key, `KEY=VALUE` (repeatable)"},
			&cli.StringFlag{Name: flagValidTo, Category: "Expiry", Usage: "material expires at `TIME` (RFC 3339 like 2027-06-30T00:00:00Z, or a date, meaning 00:00 UTC; at most 365 days ahead)"},
			&cli.BoolFlag{Name: flagNoExpiry, Category: "Expiry", Usage: "material does not expire"},
			&cli.StringFlag{Name: flagWrappingAlgorithm, Category: "Wrapping", Usage: "RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_256, RSAES_OAEP_SHA_1 or RSA_AES_KEY_WRAP_SHA_1 (default: the strongest KMS accepts for the key spec that the token can do)"},
			&cli.StringFlag{Name: flagWrappingKeySpec, Category: "Wrapping", Value: "RSA_4096", Usage: "KMS wrapping key size: RSA_2048, RSA_3072 or RSA_4096"},
			&cli.BoolFlag{Name: flagMultiRegion, Category: "Key", Usage: "create a multi-Region primary key and replicate it to each --replica-region, importing the same material into every replica"},
			replicaRegionFlag("with --multi-region: replicate to this `REGION` (repeatable); each replica gets its own wrap under its Region's wrapping key"),
			&cli.BoolFlag{Name: flagAllowSecondKMSKey, Category: "Key", Usage: "create a new KMS key even though KMS keys are already linked to this HSM key (without it, import takes up the one linked key, or refuses when there are several); recorded"},
			fromFlag(), parallelFlag(), cloudFlag(),
		), append(gcpFlags(), azureFlags()...)...),
		Action:       action(runImport),
		OnUsageError: onUsageError,
	}
}

// importRequest builds the request from the flags alone, so every usage
// error is found before the HSM or KMS is touched.
func importRequest(c *cliContext) (awskms.Request, error) {
	req := awskms.Request{
		Generate:          c.Bool(flagGenerate),
		AllowNonSensitive: c.Bool(flagAllowNonSensitive),
		KMSKeyID:          c.String(flagKMSKeyID),
		Alias:             c.String(flagAlias),
		Description:       c.String(flagDescription),
		WrappingAlgorithm: c.String(flagWrappingAlgorithm),
		KeySpec:           c.String(flagKeySpec),
		KeyUsage:          c.String(flagKeyUsage),
		WrappingKeySpec:   types.WrappingKeySpec(c.String(flagWrappingKeySpec)),
		MultiRegion:       c.Bool(flagMultiRegion),
	}
	if len(c.StringSlice(flagReplicaRegion)) > 0 && !req.MultiRegion {
		return req, usageError{"--replica-region makes replicas of a multi-Region key: add --multi-region"}
	}
	var err error
	if req.Expiry, err = parseExpiry(c); err != nil {
		return req, err
	}
	sel, err := keySelection(c)
	if err != nil {
		return req, err
	}
	req.KeyLabel, req.KeyID, req.KeyType, req.KeyByURI = sel.Label, sel.ID, sel.Type, keyURIValue(c) != ""
	if req.Tags, err = parseTags(c); err != nil {
		return req, err
	}
	if _, err := tokenSelector(c); err != nil {
		return req, err
	}
	return req, req.Validate(time.Now())
}

func runImport(c *cliContext) error {
	switch cloud, err := importCloud(c); {
	case err != nil:
		return err
	case cloud == "gcp":
		return runGCPImport(c)
	case cloud == "azure":
		return runAzureImport(c)
	}
	if c.IsSet(flagFrom) {
		return runBulkImport(c)
	}
	if c.IsSet(flagParallel) {
		return usageError{"--parallel goes with --from FILE: one key from the flags is one import"}
	}
	format, log, err := setup(c)
	if err != nil {
		return err
	}
	req, err := importRequest(c)
	if err != nil {
		return err
	}
	regions, err := kmsClients(c)
	if err != nil {
		return err
	}
	api, region := regions[0].KMS, regions[0].Region
	target := awsTarget{Target: awskms.Target{Req: req, KMS: api, Region: region, AllowSecondKMSKey: c.Bool(flagAllowSecondKMSKey)}, c: c}
	return runCloudImport(c, format, log, target, func(w cloudRun) (summarizer, error) {
		im := &awskms.Importer{KMS: api, Token: w.Token, Log: w.Log, Observe: w.Observe, Halt: w.Halt,
			Journal: w.Journal, Command: "import", AllowSecondKMSKey: target.AllowSecondKMSKey, Replicas: regions[1:],
			Owner: w.Owner}
		return im.Run(c.Context, req)
	})
}

// awsTarget is AWS KMS as runCloudImport's target: its journal is the
// account's at the endpoint in use (kmsScope), which adopts the names
// earlier versions gave the same journal.
type awsTarget struct {
	awskms.Target
	c *cliContext
}

// JournalScope is the journal's target and its earlier names.
func (t awsTarget) JournalScope() (target string, legacy []string, err error) {
	return kmsScope(t.c, t.Region)
}

// printResult prints an import's result, or with --output json its error
// and what was done before it, and returns err.
func printResult(c *cliContext, format string, res summarizer, err error) error {
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

// parseExpiry reads --valid-to and --no-expiry; Expiry.Validate checks them.
func parseExpiry(c *cliContext) (awskms.Expiry, error) {
	e := awskms.Expiry{NoExpiry: c.Bool(flagNoExpiry)}
	if s := c.String(flagValidTo); s != "" {
		t, err := parseTime(flagValidTo, s)
		if err != nil {
			return e, err
		}
		e.ValidTo = t
	}
	return e, nil
}

// parseTags reads the repeatable --tag KEY=VALUE.
func parseTags(c *cliContext) ([]types.Tag, error) {
	var tags []types.Tag
	for _, kv := range c.StringSlice(flagTag) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Sprintf("--tag %q: write tags as KEY=VALUE", kv)}
		}
		tags = append(tags, types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)})
	}
	return tags, nil
}
