package main

import (
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

func deleteMaterialCommand() *cli.Command {
	return &cli.Command{
		Name:  "delete-material",
		Usage: "delete the imported key material of a KMS key (the HSM keeps its copy)",
		Description: `Calls DeleteImportedKeyMaterial. KMS keeps the key and its metadata; the key
becomes PendingImport and unusable until the same material is imported again
with kmsbridge import --kms-key-id ID and the HSM key that material came from.
Without --key-material-id the current material is deleted; with it, that one
material of a rotated key (kmsbridge status lists each with its HSM key). A
key already PendingImport (another of its materials deleted or expired) can
still have its other materials deleted. Asks for confirmation unless --yes.

Examples:
  kmsbridge delete-material --kms-key-id 1234abcd-12ab-34cd-56ef-1234567890ab --yes
  kmsbridge delete-material --kms-key-id 1234abcd-12ab-34cd-56ef-1234567890ab \
      --key-material-id 2b8f...64 hex digits... --yes`,
		Flags: append(append(append(kmsFlags(), outputFlags()...), recordFlags()...),
			&cli.StringFlag{Name: flagKMSKeyID, Required: true, Usage: "the EXTERNAL KMS key (`ID` or ARN)"},
			&cli.StringFlag{Name: "key-material-id", Usage: "delete this material of the key (`ID`, 64 hex digits, from kmsbridge status); default: the current material"},
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation"},
		),
		OnUsageError: onUsageError,
		Action: action(func(c *cliContext) error {
			format, log, err := setup(c)
			if err != nil {
				return err
			}
			api, region, err := kmsClientRegion(c)
			if err != nil {
				return err
			}
			k, err := awskms.DescribeKeyMaterial(c.Context, api, c.String(flagKMSKeyID), c.String("key-material-id"))
			if err != nil {
				return err
			}
			if err := k.CheckDeletable(); err != nil {
				return err
			}
			if !c.Bool("yes") {
				ok, err := confirm(fmt.Sprintf("Delete the imported material of %s? The key stays, unusable until the same material is imported again.", k))
				if err != nil {
					return err
				}
				if !ok {
					return usageError{"not confirmed: nothing was deleted"}
				}
			}
			rec, err := openRecorder(c, "delete-material", map[string]string{"KmsKeyId": k.KeyId, "KeyMaterialId": k.KeyMaterialId}, log, nil, nil)
			if err != nil {
				return err
			}
			j, err := openJournal(c, k.TokenSerial, region, rec)
			if err != nil {
				return rec.close(err)
			}
			defer j.Close()
			already, err := awskms.DeleteMaterialOnce(c.Context, &awskms.Importer{KMS: api, Log: log, Journal: j, Command: "delete-material"}, k)
			rec.add("delete-material", map[string]string{"KmsKeyId": k.KeyId, "KmsKeyArn": k.Arn, "HsmKeyId": k.HSMKeyID, "HsmKeyLabel": k.HSMKeyLabel, "TokenSerial": k.TokenSerial, "KeyMaterialId": k.KeyMaterialId}, err, nil)
			if err := rec.close(err); err != nil {
				return err
			}
			if already {
				log.Info("an earlier run of delete-material already deleted the material; nothing more to do", "kms_key_id", k.KeyId)
			} else {
				log.Info("deleted imported key material", "kms_key_id", k.KeyId)
			}
			if now, err := awskms.DescribeKeyMaterial(c.Context, api, k.KeyId, k.KeyMaterialId); err == nil {
				k = now
			}
			if format == "json" {
				return writeJSON(c.App.Writer, k)
			}
			if c.String("key-material-id") != "" {
				fmt.Fprintf(c.App.Writer, "Deleted key material %s of KMS key %s; the key is now %s.\n", k.KeyMaterialId, k.KeyId, k.KeyState)
			} else {
				fmt.Fprintf(c.App.Writer, "Deleted the imported material of KMS key %s; it is now %s.\n", k.KeyId, k.KeyState)
			}
			if k.HSMKeyID != "" {
				// renew imports the same material back from the HSM key
				// the link tags name; the command carries this run's KMS
				// flags so it runs as printed.
				again := kmsimport.Command(append(append([]string{"renew", "--token-serial", k.TokenSerial}, givenFlags(c, flagRegion, flagProfile, flagEndpointURL, flagAllowEndpoint, flagCABundle, flagStateDir)...), "--kms-key-id", k.KeyId)...)
				fmt.Fprintf(c.App.Writer, "Its HSM copy is CKA_ID %s on token serial %s. Re-import the same material with:\n  %s\n(valid 365 days; add --valid-to TIME or --no-expiry to choose)\n", k.HSMKeyID, k.TokenSerial, again)
			}
			return nil
		}),
	}
}
