package main

import (
	"bytes"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/record"
)

// defaultApprovalValidity is how long an approval lasts unless
// --valid-for says otherwise: a working day and the night after it.
const defaultApprovalValidity = 24 * time.Hour

func approveCommand() *cli.Command {
	flags := []cli.Flag{}
	for _, f := range hsmFlags() {
		if f.Names()[0] != flagPINFile { // the SO's PIN, not the user's
			flags = append(flags, f)
		}
	}
	return &cli.Command{
		Name:  "approve",
		Usage: "dual control: as the token's Security Officer, approve a bundle's KMS wrapping key for one wrap of one named HSM key (or --revoke it)",
		Description: `Logs in as the Security Officer (PIN from $KMSBRIDGE_SO_PIN, --so-pin-file, or a
prompt), shows the bundle's wrapping public key fingerprint and requires it to
match --expect-fingerprint (or a terminal confirmation), and stores that public
key in the token as a trusted (CKA_TRUSTED) wrapping key, for the wrap of the
HSM key --key-label names. Keys generated with --wrap-with-trusted can then be
wrapped under it, and under nothing else: the token itself enforces this
(SoftHSM2 does; NSS softokn does not, so kmsbridge refuses dual control there).

An approval covers one wrap of that one key: wrap refuses it for any other
key, and destroys it once the wrapped file is written. It expires after
--valid-for (a duration: 24h, 2d, 90m; default 24h, at most 7d): wrap refuses an expired approval,
and approving again replaces it. An approval that was never used is listed,
with its expiry, by doctor and status; --revoke ends it.

With --audit-key, the record entries are signed by the audit key. It is the
token user's key, so the user PIN is needed too ($KMSBRIDGE_PIN, the ceremony
file's pin-source, or a prompt): the user logs in to check the key before
anything changes, the SO approves, and the user logs in again to sign.

Example:
  KMSBRIDGE_SO_PIN=... kmsbridge approve --token-label ceremony \
      --bundle signer.bundle.json --expect-fingerprint 4a77b042...22cd --key-label k
  kmsbridge wrap --token-label ceremony --bundle signer.bundle.json \
      --expect-fingerprint 4a77b042...22cd --key-label k --generate --wrap-with-trusted --out k.wrapped.json
  KMSBRIDGE_SO_PIN=... kmsbridge approve --token-label ceremony --bundle signer.bundle.json --revoke`,
		Flags: append(append(append(append(flags, outputFlags()...), append(recordFlags(), auditKeyFlag())...), ceremonyFlags()...),
			&cli.StringFlag{Name: flagSOPINFile, Category: catHSM, Usage: "read the SO PIN from `FILE` (else $" + envSOPIN + ", else a prompt)"},
			&cli.StringFlag{Name: flagBundle, Required: true, Usage: "the bundle `FILE` from prepare"},
			&cli.StringFlag{Name: flagExpectFingerprint, Usage: "the wrapping public key's SHA-256 as read aloud (`HEX`)"},
			&cli.StringFlag{Name: flagKeyLabel, Usage: "the `LABEL` of the one HSM key whose wrap this approves (required unless --revoke; --ceremony --key fills it)"},
			&cli.BoolFlag{Name: "revoke", Usage: "end the approval of the bundle's wrapping key instead (one that was never used)"},
			// A week at most: an approval is for a ceremony, not a standing permission.
			&cli.GenericFlag{Name: flagValidFor, Value: newValidFor(defaultApprovalValidity, time.Minute, 7*24*time.Hour, false), Usage: "the approval expires this `DURATION` after it is given if no wrap used it (1m to 7d, such as 24h or 2d); wrap refuses an expired one"},
			allowEndpointFlag(),
		),
		OnUsageError: onUsageError,
		Action: action(func(c *cliContext) error {
			format, log, err := setup(c)
			if err != nil {
				return err
			}
			revoke := c.Bool("revoke")
			keyLabel := c.String(flagKeyLabel)
			if !revoke && keyLabel == "" {
				return usageError{"approve needs --key-label LABEL: an approval covers the wrap of one named HSM key (the --key-label the wrap will use)"}
			}
			if revoke && c.IsSet(flagKeyLabel) {
				return usageError{"--revoke ends the approval of the bundle's wrapping key, whatever key it names: drop --key-label"}
			}
			var b *kmsimport.Bundle
			if revoke {
				// An expired bundle still names the wrapping key to revoke.
				b, _, err = awskms.ReadBundleForPairing(c.String(flagBundle))
			} else {
				b, _, err = kmsimport.ReadBundle(c.String(flagBundle), time.Now())
			}
			if err != nil {
				return err
			}
			if cloud := kmsimport.CloudOf(b.Cloud); cloud != kmsimport.CloudAWS && !revoke {
				return usageError{fmt.Sprintf("the bundle is for cloud %s, whose wrap does not take --wrap-with-trusted yet: an approval would trust a wrapping key no wrap uses; wrap without dual control", cloud)}
			}
			pub, err := kmsimport.ParseWrappingPublicKey(b.PublicKey, kmsimport.WrappingKeySpec(b.WrappingKeySpec))
			if err != nil {
				return err
			}
			if err := checkBundleOrigin(c, b); err != nil {
				return err
			}
			if !revoke {
				// Check before change: an approval of a wrapping key that
				// can never serve dual control would be a trusted key in
				// the token for nothing.
				if w, err := awskms.ParseWrappingAlgorithm(b.WrappingAlgorithm); err == nil && w.RSAAES {
					return usageError{fmt.Sprintf("the bundle's wrapping algorithm %s cannot serve dual control: RSA-AES wraps the key with a one-use AES key, which the Security Officer cannot approve; run kmsbridge prepare again with --wrapping-algorithm RSAES_OAEP_SHA_256 (RSAES_OAEP_SHA_1 where the token cannot do SHA-256: kmsbridge doctor on this host says) and approve that bundle; nothing was changed", b.WrappingAlgorithm)}
				}
				if err := confirmFingerprint(c, b.PublicKeySha256); err != nil {
					return err
				}
			}
			inputs := map[string]string{"KmsKeyId": b.KeyId, "WrappingPublicKeySha256": b.PublicKeySha256, "HsmKeyLabel": keyLabel, "Revoke": fmt.Sprint(revoke)}
			var userPIN []byte // with --audit-key: the user signs the entries
			if c.String(flagAuditKey) != "" {
				if c.String(flagRecord) == "" {
					return usageError{"--audit-key signs the ceremony record: give --record FILE too"}
				}
				if userPIN, err = readUserPIN(c, log); err != nil {
					return err
				}
				defer clear(userPIN)
				// Check before change: the audit key is there, as the user sees it.
				if err := checkAuditKeyAsUser(c, log, bytes.Clone(userPIN)); err != nil {
					return err
				}
			}
			s, err := openTokenAs(c, log, true)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.tok.DualControlSupported(); err != nil {
				return fmt.Errorf("%w: %v, so an approval would protect nothing", hsm.ErrUnsuitableKey, err)
			}
			var rec *recorder
			if userPIN == nil {
				rec, err = s.openRecorder(c, "approve", inputs, log)
			} else {
				rec, err = openSignedAfterSO(c, s, "approve", inputs, log, userPIN)
			}
			if err != nil {
				return err
			}
			tok := s.tok.Identity()
			if revoke {
				return revokeApproval(c, s, rec, b, pub, format)
			}
			a, err := s.tok.Approval(pub)
			if err != nil {
				return rec.close(err)
			}
			if a != nil && a.KeyLabel != keyLabel && a.Usable(time.Now()) == "" {
				return rec.close(usageError{fmt.Sprintf("wrapping key %s is already approved for the wrap of HSM key %q (token object %q): an approval covers one named key; run kmsbridge approve --revoke --bundle %s first to approve it for %q instead", b.PublicKeySha256, a.KeyLabel, a.Label, c.String(flagBundle), keyLabel)})
			}
			if a != nil && a.Usable(time.Now()) != "" {
				// An expired approval (or one of an earlier version, with
				// no expiry) is replaced: the SO is approving again.
				ended, err := s.tok.EndApproval(pub)
				rec.add("end-expired-approval", map[string]string{"WrappingPublicKeySha256": b.PublicKeySha256, "HsmKeyLabel": a.KeyLabel, "Why": a.Usable(time.Now()), "ApprovalEnded": fmt.Sprint(ended)}, err, &tok)
				if err == nil {
					err = rec.failed()
				}
				if err != nil {
					return rec.close(err)
				}
			}
			expires := time.Now().Add(validForOf(c, nil)).UTC().Truncate(time.Second)
			kmsimport.CrashPoint(c.Context, "before:approve-wrapping-key")
			if err := stopIfInterrupted(c, rec, "approve-wrapping-key", &tok, "nothing was changed in the token; run the same kmsbridge approve again"); err != nil {
				return err
			}
			fp, _ := hex.DecodeString(b.PublicKeySha256)
			created, err := s.tok.ApproveWrappingKey(pub, hsm.ApprovalLabel(keyLabel, expires), fp[:16])
			if err == nil && !created && a != nil {
				expires = a.Expires // the approval in force keeps its expiry
			}
			rec.add("approve-wrapping-key", map[string]string{"WrappingPublicKeySha256": b.PublicKeySha256, "HsmKeyLabel": keyLabel, "NewApproval": fmt.Sprint(created), "ApprovalExpires": expires.Format(time.RFC3339)}, err, &tok)
			if err := rec.close(err); err != nil {
				return err
			}
			state := "approved"
			if !created {
				state = "was already approved"
			}
			log.Info("wrapping key "+state, "public_key_sha256", b.PublicKeySha256, "kms_key_id", b.KeyId)
			if format == "json" {
				return writeJSON(c.App.Writer, map[string]any{"Approved": true, "New": created, "PublicKeySha256": b.PublicKeySha256, "KeyId": b.KeyId, "HsmKeyLabel": keyLabel, "Expires": expires, "Token": tok})
			}
			fmt.Fprintf(c.App.Writer, "KMS wrapping key %s (for KMS key %s) %s as a trusted wrapping key in token %q, for one wrap of HSM key %q, until %s.\n", b.PublicKeySha256, b.KeyId, state, tok.Label, keyLabel, expires.Format(time.RFC3339))
			return nil
		}),
	}
}

// revokeApproval ends the approval of the bundle's wrapping key: the SO
// takes back an approval that was never used.
func revokeApproval(c *cliContext, s *session, rec *recorder, b *kmsimport.Bundle, pub *rsa.PublicKey, format string) error {
	tok := s.tok.Identity()
	if err := stopIfInterrupted(c, rec, "revoke-approval", &tok, "nothing was changed in the token; run the same kmsbridge approve --revoke again"); err != nil {
		return err
	}
	ended, err := s.tok.EndApproval(pub)
	rec.add("revoke-approval", map[string]string{"WrappingPublicKeySha256": b.PublicKeySha256, "ApprovalEnded": fmt.Sprint(ended)}, err, &tok)
	if err := rec.close(err); err != nil {
		return err
	}
	if format == "json" {
		return writeJSON(c.App.Writer, map[string]any{"Revoked": ended, "PublicKeySha256": b.PublicKeySha256, "KeyId": b.KeyId, "Token": tok})
	}
	if ended {
		fmt.Fprintf(c.App.Writer, "The approval of KMS wrapping key %s in token %q is ended: no key can be wrapped under it.\n", b.PublicKeySha256, tok.Label)
	} else {
		fmt.Fprintf(c.App.Writer, "KMS wrapping key %s has no approval in token %q: nothing to revoke.\n", b.PublicKeySha256, tok.Label)
	}
	return nil
}

// checkAuditKeyAsUser logs the user in with pin (zeroed after) on a
// module of its own, checks --audit-key is there, and logs out again:
// approve checks this before the Security Officer changes anything.
func checkAuditKeyAsUser(c *cliContext, log *slog.Logger, pin []byte) error {
	u, err := openTokenUser(c, log, pin)
	if err != nil {
		return err
	}
	defer u.Close()
	_, _, err = u.auditSigner(c.String(flagAuditKey))
	return err
}

// openTokenUser opens the chosen token and logs the user in with pin,
// which LoginPIN zeroes.
func openTokenUser(c *cliContext, log *slog.Logger, pin []byte) (*session, error) {
	sel, err := tokenSelector(c)
	if err != nil {
		clear(pin)
		return nil, err
	}
	cfg, err := moduleConfig(c)
	if err != nil {
		clear(pin)
		return nil, err
	}
	mod, err := hsm.LoadModule(cfg)
	if err != nil {
		clear(pin)
		return nil, err
	}
	s := &session{mod: mod}
	if s.tok, err = mod.OpenToken(sel); err != nil {
		clear(pin)
		s.Close()
		return nil, err
	}
	if err := s.tok.LoginPIN(pin); err != nil {
		s.Close()
		return nil, err
	}
	log.Info("logged in as user to reach the audit key", "token", s.tok.Identity().Label)
	return s, nil
}

// openSignedAfterSO is openRecorder for approve --audit-key: entries are
// kept until close, which logs the Security Officer out (the SO's work is
// done by then), logs the user in with a copy of userPIN on the same
// module, and writes them signed by the audit key.
func openSignedAfterSO(c *cliContext, so *session, command string, inputs map[string]string, log *slog.Logger, userPIN []byte) (*recorder, error) {
	// The record must take entries before anything changes.
	probe, err := openRecorder(c, command, nil, log, nil, nil)
	if err != nil {
		return nil, err
	}
	_ = probe.w.Close()
	for k, v := range inputs {
		if v == "" {
			delete(inputs, k)
		}
	}
	sel, err := tokenSelector(c)
	if err != nil {
		return nil, err
	}
	open := func() (*record.Writer, func(), error) {
		if so.tok != nil {
			_ = so.tok.Close() // the SO logs out
			so.tok = nil
		}
		u, err := so.mod.OpenToken(sel)
		if err != nil {
			return nil, nil, err
		}
		if err := u.LoginPIN(bytes.Clone(userPIN)); err != nil {
			u.Close()
			return nil, nil, err
		}
		user := &session{mod: so.mod, tok: u}
		signer, id, err := user.auditSigner(c.String(flagAuditKey))
		if err != nil {
			u.Close()
			return nil, nil, err
		}
		w, err := record.Open(c.String(flagRecord), signer, id)
		if err != nil {
			u.Close()
			return nil, nil, err
		}
		if op := c.String(flagOperator); op != "" {
			w.Operator = op
		}
		return w, func() { u.Close() }, nil
	}
	return &recorder{command: command, inputs: inputs, log: log, open: open}, nil
}
