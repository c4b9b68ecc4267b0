package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/urfave/cli/v3"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

const (
	flagWithin   = "within"
	flagValidFor = "valid-for"
	flagDryRun   = "dry-run"
)

func renewCommand() *cli.Command {
	return &cli.Command{
		Name:  "renew",
		Usage: "re-import the same material, with a new expiry, into linked keys that expire soon or have expired",
		Description: `For every KMS key linked to this token (or the one --kms-key-id or
--key-label chooses), in the home Region and each --replica-region, renew
re-imports every key material that expires within --within DAYS, and every
material that expired or was deleted (the key is PendingImport): fresh
import parameters, a wrap inside the HSM, and ImportKeyMaterial of the same
material (ImportType EXISTING_KEY_MATERIAL with its KeyMaterialId for
symmetric keys) with the new expiry; then it verifies the key.

Material that is fine is not touched, so renew is safe from cron: a re-run
does only what is still due. Everything is checked (each HSM key found and
wrappable) before the first import. --dry-run shows the plan only.

Examples:
  # from cron, daily: renew for a year whatever expires within 30 days
  kmsbridge renew --token-label ceremony --region eu-west-1 --within 30 \
      --record /var/log/kmsbridge/record.jsonl
  kmsbridge renew --token-label ceremony --kms-key-id 1234abcd-... --valid-to 2027-06-30 --dry-run
  # a Key Vault key: its exp moves (the vault keeps the material), after
  # its public key is proven to be the HSM key's
  kmsbridge renew --cloud azure --vault-url https://contoso.vault.azure.net --key-name signer-2026 \
      --token-label ceremony --within 30 --valid-for 365`,
		Flags: append(append(append(append(append(hsmFlags(), kmsFlags()...), outputFlags()...), append(recordFlags(), auditKeyFlag())...),
			replicaRegionFlag("also renew keys in this Region (repeatable): multi-Region replicas"),
			&cli.StringFlag{Name: flagKMSKeyID, Category: "Key", Usage: "renew only this KMS key (`ID` or ARN)"},
			&cli.StringFlag{Name: flagKeyLabel, Category: "Key", Usage: "renew only the KMS keys linked to the HSM key `LABEL`"},
			&cli.IntFlag{Name: flagWithin, Value: 30, Usage: "renew material expiring within `DAYS`"},
			&cli.StringFlag{Name: flagValidTo, Category: "Expiry", Usage: "new expiry `TIME` (RFC 3339 or a date)"},
			&cli.GenericFlag{Name: flagValidFor, Category: "Expiry", Value: newValidFor(365*24*time.Hour, time.Hour, 3650*24*time.Hour, true), Usage: "new expiry this `DURATION` from now (such as 365d or 90d; AWS KMS at most 365d, Key Vault 3650d), when --valid-to is not given; a bare number (365) still means days, deprecated"},
			&cli.BoolFlag{Name: flagNoExpiry, Category: "Expiry", Usage: "renewed material does not expire"},
			&cli.StringFlag{Name: flagWrappingKeySpec, Category: "Wrapping", Value: "RSA_4096", Usage: "KMS wrapping key size: RSA_2048, RSA_3072 or RSA_4096"},
			&cli.IntFlag{Name: flagMaxKeys, Category: catKMS, Value: awskms.DefaultMaxKeys, Usage: "read at most `N` KMS keys per Region"},
			adoptFlag(),
			&cli.BoolFlag{Name: flagDryRun, Usage: "show what would be renewed; change nothing"},
		), renewCloudFlags()...),
		OnUsageError: onUsageError,
		Action:       action(runRenew),
	}
}

func renewRequest(c *cliContext) (awskms.RenewRequest, error) {
	req := awskms.RenewRequest{
		KMSKeyID: c.String(flagKMSKeyID), KeyLabel: c.String(flagKeyLabel), WithinDays: c.Int(flagWithin),
		WrappingKeySpec: types.WrappingKeySpec(c.String(flagWrappingKeySpec)), DryRun: c.Bool(flagDryRun), MaxKeys: c.Int(flagMaxKeys),
	}
	e, err := parseExpiry(c)
	if err != nil {
		return req, err
	}
	if e.ValidTo.IsZero() && !e.NoExpiry {
		d := validForOf(c, c.App.ErrWriter)
		if d < time.Hour || d > 365*24*time.Hour {
			return req, usageError{fmt.Sprintf("--valid-for %s: give 1 to 365 days, or a duration from 1h to 365d (KMS accepts ValidTo at most 365 days ahead)", validForValue(c).given())}
		}
		e.ValidTo = time.Now().Add(d).Add(-time.Minute).UTC().Truncate(time.Second)
	} else if c.IsSet(flagValidFor) {
		return req, usageError{"--valid-for and --valid-to/--no-expiry both given: choose one"}
	}
	req.Expiry = e
	if !tokenGiven(c) {
		return req, usageError{"renew wraps the material in the HSM: choose the token with --token-label, --token-serial or --slot"}
	}
	if _, err = tokenSelector(c); err != nil {
		return req, err
	}
	return req, req.Validate(time.Now())
}

func runRenew(c *cliContext) error {
	switch cloud := c.String(flagCloud); cloud {
	case "azure":
		return runAzureRenew(c)
	case "", "aws":
		if c.IsSet(flagVaultURL) || c.IsSet(flagKeyName) {
			return usageError{"--vault-url and --key-name name a Key Vault key: add --cloud azure"}
		}
	default:
		return usageError{fmt.Sprintf("--cloud %q: renew takes aws or azure (Cloud KMS keeps imported material until it is destroyed; re-import with import --cloud gcp --crypto-key-version N)", cloud)}
	}
	format, log, err := setup(c)
	if err != nil {
		return err
	}
	req, err := renewRequest(c)
	if err != nil {
		return err
	}
	regions, s, err := openRegionsAndToken(c, log)
	if err != nil {
		return err
	}
	defer s.Close()
	in := map[string]string{"KmsKeyId": req.KMSKeyID, "HsmKeyLabel": req.KeyLabel, "Within": strconv.Itoa(req.WithinDays), "DryRun": strconv.FormatBool(req.DryRun), "NoExpiry": strconv.FormatBool(req.Expiry.NoExpiry)}
	if !req.Expiry.NoExpiry {
		in["ValidTo"] = req.Expiry.ValidTo.Format(time.RFC3339)
	}
	if c.Bool(flagAdopt) {
		in["Adopt"] = "true"
	}
	im, rec, closeJournal, err := s.changeImporter(c, log, regions, "renew", in, req.DryRun)
	if err != nil {
		return err
	}
	defer closeJournal()
	res, err := im.Renew(c.Context, regions, req)
	return writeChangeResult(c, format, res, res != nil, rec.close(err))
}
