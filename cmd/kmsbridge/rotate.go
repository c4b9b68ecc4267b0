package main

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

const (
	flagNewKeyLabel = "new-key-label"
	flagWait        = "wait"
	flagNewRotation = "new-rotation"
)

func rotateCommand() *cli.Command {
	return &cli.Command{
		Name:  "rotate",
		Usage: "rotate a linked KMS key to new material from a new HSM key, keeping every generation",
		Description: `Symmetric keys rotate on demand, inside the same KMS key:
  a new AES key is generated in the HSM (label LABEL-r2, LABEL-r3, ... or
  --new-key-label), the KMS key is tagged kmsbridge:rotating-to=CKA_ID, the new
  material is imported with ImportType NEW_KEY_MATERIAL (and the same material
  into every replica of a multi-Region key, each --replica-region), then
  RotateKeyOnDemand, a wait (with backoff, at most --wait) until the new
  material is CURRENT, and a check that a ciphertext made before the rotation
  still decrypts while new ones use the new material. The material is tagged
  kmsbridge:material:<first 16 hex of its KeyMaterialId>=CKA_ID, so status
  shows which HSM key backs each KeyMaterialId. KMS allows 25 on-demand
  rotations per key and 50 tags: kmsbridge uses at most 30 of them.

HMAC and asymmetric keys (whose material never changes) rotate manually:
  a new KMS key with new material from a new HSM key, the alias moved to it
  (UpdateAlias), the old key kept and tagged kmsbridge:rotated-to.

The HSM keeps every generation. Everything is checked before the first
change. A rotation is one intent in the journal (--state-dir), written
before its first change and closed after its verification: running the same
rotate again after any failure or kill finishes that rotation ("Finished the
rotation started at ...") and never starts another, whether the key is named
by id, ARN or alias, even an alias the interrupted run already moved. Once a
rotation of the key has finished, the same rotate within 24 hours only reports
it ("Already rotated ... nothing was changed"); --new-rotation rotates again.
After 24 hours rotate starts a new rotation and says when the last one ended.

Examples:
  kmsbridge rotate --token-label ceremony --kms-key-id alias/payments --valid-to 2027-06-30
  kmsbridge rotate --token-label ceremony --kms-key-id alias/mac --no-expiry --dry-run
  kmsbridge rotate --token-label ceremony --kms-key-id alias/payments --no-expiry --new-rotation`,
		Flags: append(append(append(append(hsmFlags(), kmsFlags()...), outputFlags()...), append(recordFlags(), auditKeyFlag())...),
			replicaRegionFlag("Region of a replica of the multi-Region key (repeatable)"),
			&cli.StringFlag{Name: flagKMSKeyID, Category: "Key", Usage: "the KMS key to rotate (`ID`, ARN or alias/NAME)"},
			&cli.StringFlag{Name: flagNewKeyLabel, Category: "Key", Usage: "`LABEL` of the new HSM key (default: the current label with -r2, -r3, ...)"},
			&cli.StringFlag{Name: flagAlias, Category: "Key", Usage: "manual rotation: the `alias/NAME` to move (default: the key's only alias)"},
			&cli.StringFlag{Name: flagDescription, Category: "Key", Usage: "KeyMaterialDescription of new symmetric material, or the new key's description"},
			&cli.StringFlag{Name: flagValidTo, Category: "Expiry", Usage: "new material expires at `TIME` (RFC 3339 or a date; at most 365 days ahead)"},
			&cli.BoolFlag{Name: flagNoExpiry, Category: "Expiry", Usage: "new material does not expire"},
			&cli.StringFlag{Name: flagWrappingKeySpec, Category: "Wrapping", Value: "RSA_4096", Usage: "KMS wrapping key size: RSA_2048, RSA_3072 or RSA_4096"},
			&cli.DurationFlag{Name: flagWait, Value: 10 * time.Minute, Usage: "wait at most `DURATION` for KMS to complete an on-demand rotation"},
			adoptFlag(),
			&cli.BoolFlag{Name: flagDryRun, Usage: "check everything and show the plan; change nothing"},
			&cli.BoolFlag{Name: flagNewRotation, Usage: "rotate again although a rotation of this key finished here within 24 hours (and close as abandoned an open rotation in the journal that KMS does not confirm)"},
		),
		OnUsageError: onUsageError,
		Action:       action(runRotate),
	}
}

func runRotate(c *cliContext) error {
	format, log, err := setup(c)
	if err != nil {
		return err
	}
	req := awskms.RotateRequest{
		KMSKeyID: c.String(flagKMSKeyID), NewKeyLabel: c.String(flagNewKeyLabel), Alias: c.String(flagAlias),
		Description: c.String(flagDescription), WrappingKeySpec: types.WrappingKeySpec(c.String(flagWrappingKeySpec)),
		DryRun: c.Bool(flagDryRun), Wait: c.Duration(flagWait), NewRotation: c.Bool(flagNewRotation),
	}
	if req.KMSKeyID == "" {
		return usageError{"--kms-key-id is required: the KMS key (id, ARN or alias/NAME) to rotate"}
	}
	if req.Expiry, err = parseExpiry(c); err != nil {
		return err
	}
	if err := req.Validate(time.Now()); err != nil {
		return err
	}
	if !tokenGiven(c) {
		return usageError{"rotate generates the new material in the HSM: choose the token with --token-label, --token-serial or --slot"}
	}
	if _, err := tokenSelector(c); err != nil {
		return err
	}
	regions, s, err := openRegionsAndToken(c, log)
	if err != nil {
		return err
	}
	defer s.Close()
	in := map[string]string{"KmsKeyId": req.KMSKeyID, "NewHsmKeyLabel": req.NewKeyLabel, "AliasName": req.Alias, "NoExpiry": strconv.FormatBool(req.Expiry.NoExpiry)}
	if req.NewRotation {
		in["NewRotation"] = "true"
	}
	if !req.Expiry.NoExpiry {
		in["ValidTo"] = req.Expiry.ValidTo.UTC().Format(time.RFC3339)
	}
	if c.Bool(flagAdopt) {
		in["Adopt"] = "true"
	}
	im, rec, closeJournal, err := s.changeImporter(c, log, regions, "rotate", in, req.DryRun)
	if err != nil {
		return err
	}
	defer closeJournal()
	res, err := im.Rotate(c.Context, regions, req)
	err = rec.close(err)
	err = writeChangeResult(c, format, res, err == nil, err)
	kmsimport.CrashPoint(c.Context, "reported:rotate")
	return err
}
