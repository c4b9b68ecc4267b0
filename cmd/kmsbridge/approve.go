package main

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/urfave/cli/v2"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func approveCommand() *cli.Command {
	flags := []cli.Flag{}
	for _, f := range hsmFlags() {
		if f.Names()[0] != flagPINFile { // the SO's PIN, not the user's
			flags = append(flags, f)
		}
	}
	return &cli.Command{
		Name:  "approve",
		Usage: "dual control: as the token's Security Officer, approve a bundle's KMS wrapping key",
		Description: `Logs in as the Security Officer (PIN from $KMSBRIDGE_SO_PIN, --so-pin-file, or a
prompt), shows the bundle's wrapping public key fingerprint and requires it to
match --expect-fingerprint (or a terminal confirmation), and stores that public
key in the token as a trusted (CKA_TRUSTED) wrapping key. Keys generated with
--wrap-with-trusted can then be wrapped under it, and under nothing else: the
token itself enforces this (SoftHSM2 does; NSS softokn does not, so kmsbridge
refuses dual control there).

Example:
  KMSBRIDGE_SO_PIN=... kmsbridge approve --token-label ceremony \
      --bundle signer.bundle.json --expect-fingerprint 4a77b042...22cd
  kmsbridge wrap --token-label ceremony --bundle signer.bundle.json \
      --expect-fingerprint 4a77b042...22cd --key-label k --generate --wrap-with-trusted --out k.wrapped.json`,
		Flags: append(append(append(append(flags, outputFlags()...), recordFlags()...), ceremonyFlags()...),
			&cli.StringFlag{Name: flagSOPINFile, Category: catHSM, Usage: "read the SO PIN from `FILE` (else $" + envSOPIN + ", else a prompt)"},
			&cli.StringFlag{Name: flagBundle, Required: true, Usage: "the bundle `FILE` from prepare"},
			&cli.StringFlag{Name: flagExpectFingerprint, Usage: "the wrapping public key's SHA-256 as read aloud (`HEX`)"},
			allowEndpointFlag(),
		),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			format, log, err := setup(c)
			if err != nil {
				return err
			}
			b, _, err := kmsimport.ReadBundle(c.String(flagBundle), time.Now())
			if err != nil {
				return err
			}
			pub, err := kmsimport.ParseWrappingPublicKey(b.PublicKey, types.WrappingKeySpec(b.WrappingKeySpec))
			if err != nil {
				return err
			}
			if err := checkBundleOrigin(c, b); err != nil {
				return err
			}
			if err := confirmFingerprint(c, b.PublicKeySha256); err != nil {
				return err
			}
			s, err := openTokenAs(c, log, true)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.tok.DualControlSupported(); err != nil {
				return fmt.Errorf("%w: %v, so an approval would protect nothing", hsm.ErrUnsuitableKey, err)
			}
			rec, err := s.openRecorder(c, "approve", map[string]string{"KmsKeyId": b.KeyId, "WrappingPublicKeySha256": b.PublicKeySha256}, log)
			if err != nil {
				return err
			}
			tok := s.tok.Identity()
			kmsimport.CrashPoint(c.Context, "before:approve-wrapping-key")
			if err := stopIfInterrupted(c, rec, "approve-wrapping-key", &tok, "nothing was changed in the token; run the same kmsbridge approve again"); err != nil {
				return err
			}
			fp, _ := hex.DecodeString(b.PublicKeySha256)
			created, err := s.tok.ApproveWrappingKey(pub, "kmsbridge approved KMS wrapping key "+b.PublicKeySha256[:16], fp[:16])
			rec.add("approve-wrapping-key", map[string]string{"WrappingPublicKeySha256": b.PublicKeySha256, "NewApproval": fmt.Sprint(created)}, err, &tok)
			if err := rec.close(err); err != nil {
				return err
			}
			state := "approved"
			if !created {
				state = "was already approved"
			}
			log.Info("wrapping key "+state, "public_key_sha256", b.PublicKeySha256, "kms_key_id", b.KeyId)
			if format == "json" {
				return writeJSON(c.App.Writer, map[string]any{"Approved": true, "New": created, "PublicKeySha256": b.PublicKeySha256, "KeyId": b.KeyId, "Token": s.tok.Identity()})
			}
			fmt.Fprintf(c.App.Writer, "KMS wrapping key %s (for KMS key %s) %s as a trusted wrapping key in token %q.\n", b.PublicKeySha256, b.KeyId, state, s.tok.Identity().Label)
			return nil
		},
	}
}
