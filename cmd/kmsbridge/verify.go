package main

import (
	"fmt"

	"github.com/urfave/cli/v3"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "prove a KMS key holds the material of its HSM master copy",
		Description: `Checks, through the public KMS API, what can be checked:
  HMAC keys:     KMS GenerateMac over a fresh random message equals the HSM's HMAC;
  RSA/EC keys:   KMS GetPublicKey equals the HSM's public key, and a KMS Sign
                 with every signing algorithm of the key spec verifies under it;
  AES keys:      KMS offers no check: the key must be Enabled and round-trip
                 Encrypt/Decrypt, and the HSM key check value is reported.
The HSM key is found by the KMS key's kmsbridge:hsm-key-id tag unless
--key-label or --hsm-key-id says otherwise. Exits 5 on any mismatch, showing
both values. import runs the same checks as its last step.

Example:
  kmsbridge verify --token-label ceremony --kms-key-id 1234abcd-12ab-34cd-56ef-1234567890ab`,
		Flags: append(append(append(append(append(hsmFlags(), keyURIFlag()), kmsFlags()...), outputFlags()...), append(recordFlags(), auditKeyFlag())...),
			&cli.StringFlag{Name: flagKMSKeyID, Required: true, Usage: "the KMS key (`ID` or ARN)"},
			&cli.StringFlag{Name: flagKeyLabel, Usage: "`LABEL` of the HSM key (default: from the KMS key's tags)"},
			&cli.StringFlag{Name: flagHSMKeyID, Usage: "CKA_ID of the HSM key in `HEX` (default: from the KMS key's tags)"},
		),
		OnUsageError: onUsageError,
		Action: action(func(c *cliContext) error {
			format, log, err := setup(c)
			if err != nil {
				return err
			}
			sel, err := keySelection(c)
			if err != nil {
				return err
			}
			if _, err := tokenSelector(c); err != nil {
				return err
			}
			api, err := kmsClient(c)
			if err != nil {
				return err
			}
			s, err := openToken(c, log)
			if err != nil {
				return err
			}
			defer s.Close()
			rec, err := s.openRecorder(c, "verify", map[string]string{"KmsKeyId": c.String(flagKMSKeyID), "HsmKeyLabel": sel.Label, "HsmKeyId": fmt.Sprintf("%x", sel.ID)}, log)
			if err != nil {
				return err
			}
			res, err := awskms.VerifyKey(c.Context, api, s.tok, c.String(flagKMSKeyID), sel)
			if res != nil {
				v := res.Verification
				tok := s.tok.Identity()
				rec.add("verify", map[string]string{"KmsKeyId": res.KeyId, "KeySpec": res.KeySpec, "HsmKeyId": res.HSM.KeyID, "HsmKeyLabel": res.HSM.KeyLabel,
					"HsmKeyCheckValue": res.HSM.KeyCheckValue, "KeyMaterialId": res.KeyMaterialId, "KmsConfirmedHsmKey": fmt.Sprint(v.MaterialConfirmed), "PublicKeySha256": v.PublicKeySHA256,
					"KmsMac": v.KmsMac, "HsmMac": v.HsmMac, "VerificationSummary": v.Summary}, err, &tok)
			}
			err = rec.close(err)
			if format == "json" && res != nil {
				out := map[string]any{"Result": res}
				if err != nil {
					out["Error"], out["ExitCode"] = err.Error(), exitCode(err)
				}
				_ = writeJSON(c.App.Writer, out)
			} else if err == nil {
				res.WriteSummary(c.App.Writer)
			}
			if err == nil {
				log.Info(res.Verification.Summary, "step", awskms.StepVerify)
			}
			return err
		}),
	}
}
