package main

import (
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/record"
)

func auditKeyCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit-key",
		Usage: "the HSM key that signs ceremony records",
		Commands: []*cli.Command{{
			Name:  "create",
			Usage: "generate an EC P-256 audit key pair in the HSM and export its public key",
			Description: `The private key is a token object that can only sign and can never leave the
token. The public key is written as PEM (never over an existing file) for
auditors: kmsbridge record verify FILE --public-key audit.pem.

Example:
  kmsbridge audit-key create --token-label ceremony --label ceremony-audit --out audit.pem
  kmsbridge import ... --record ceremony.jsonl --audit-key ceremony-audit`,
			Flags: append(append(append(hsmFlags(), outputFlags()...), recordFlags()...),
				&cli.StringFlag{Name: "label", Required: true, Usage: "`LABEL` of the new audit key"},
				&cli.StringFlag{Name: flagOut, Required: true, Usage: "write the public key PEM to new `FILE`"},
			),
			OnUsageError: onUsageError,
			Action: action(func(c *cliContext) error {
				format, log, err := setup(c)
				if err != nil {
					return err
				}
				if err := kmsimport.CheckNewFile("--out", c.String(flagOut)); err != nil {
					return err
				}
				s, err := openToken(c, log)
				if err != nil {
					return err
				}
				defer s.Close()
				if c.String(flagRecord) != "" {
					// Check the record can be appended to before making a key.
					probe, err := openRecorder(c, "audit-key create", nil, log, nil, nil)
					if err != nil {
						return err
					}
					_ = probe.w.Close()
				}
				// A signal before the key is made stops here, recorded; once
				// it is made, the command finishes recording its birth.
				kmsimport.CrashPoint(c.Context, "before:audit-key-create")
				if c.Context.Err() != nil {
					rec, err := openRecorder(c, "audit-key create", map[string]string{"AuditKeyLabel": c.String("label")}, log, nil, nil)
					if err != nil {
						return err
					}
					tok := s.tok.Identity()
					return stopIfInterrupted(c, rec, "audit-key-create", &tok, "no audit key was made; run the same kmsbridge audit-key create again")
				}
				k, err := s.tok.GenerateAuditKey(c.String("label"))
				if err != nil {
					return err
				}
				sg, err := s.tok.AuditSigner(k)
				if err != nil {
					return err
				}
				outputs := map[string]string{"AuditKeyLabel": k.Label, "AuditKeyId": k.IDHex(), "AuditPublicKeySha256": kmsimport.Fingerprint(sg.PublicKeyDER()),
					// the public key itself, so the record can be checked
					// against its own key (record verify without --public-key)
					"AuditPublicKey": base64.StdEncoding.EncodeToString(sg.PublicKeyDER())}
				err = writeNewPEM(c.String(flagOut), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: sg.PublicKeyDER()}))
				// The key's first signature is on the entry that records its birth.
				rec, rerr := openRecorder(c, "audit-key create", map[string]string{"AuditKeyLabel": c.String("label")}, log, sg, k.ID)
				if rerr != nil {
					return errors.Join(err, rerr)
				}
				tok := s.tok.Identity()
				rec.add("audit-key-create", outputs, err, &tok)
				if err := rec.close(err); err != nil {
					return err
				}
				log.Info("created audit key", "label", k.Label, "id", k.IDHex())
				if format == "json" {
					return writeJSON(c.App.Writer, outputs)
				}
				fmt.Fprintf(c.App.Writer, "Audit key %q (CKA_ID %s) created; public key SHA-256 %s written to %s.\n", k.Label, k.IDHex(), outputs["AuditPublicKeySha256"], c.String(flagOut))
				return nil
			}),
		}},
	}
}

// writeNewPEM writes a public key to a new file; public, so 0644.
func writeNewPEM(path string, data []byte) error {
	f, err := safefile.OpenFile("--out", path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:  "record",
		Usage: "check a ceremony record",
		Commands: []*cli.Command{{
			Name:      "verify",
			Usage:     "check a ceremony record's hash chain and signatures, naming the first entry that fails",
			ArgsUsage: "[flags] FILE",
			Description: `Every entry must follow the one before it (Seq, and Prev = SHA-256 of the
previous entry without its signature, or of the whole previous line when that
entry is of a format before kmsbridge-record/3; see record/doc.go), be in
canonical form, and be signed by the audit key: the one
given with --public-key, or else the record's own (the public key its
audit-key create entry carries, in an entry that key signed), which the report
names by fingerprint for you to compare with the paper script, or
--expect-audit-key compares. A record with neither fails. An edit, deletion,
reordering, bad signature or cut line is found and named by entry. Entries cut
off the end can only be found against the head hash and count written down at
the end of the ceremony: --expect-head, --expect-count.

--allow-unsigned accepts unsigned entries of the commands that never hold the
HSM token (prepare, upload, delete-material, record repair), and needs
--expect-head: an unsigned tail could be re-chained by anyone. --chain-only
checks the hash chain alone, for records written without an audit key; it
proves nothing about who wrote the record, and never says it verifies.

Example:
  kmsbridge record verify --public-key audit.pem \
      --expect-head 5d41402a... --expect-count 23 ceremony.jsonl
  kmsbridge record verify --expect-audit-key 3f9a... --expect-head 5d41402a... --expect-count 23 ceremony.jsonl`,
			Flags: append(outputFlags(),
				&cli.StringFlag{Name: "public-key", Usage: "the audit public key `PEM`: every entry must be signed by it"},
				&cli.StringFlag{Name: "expect-head", Usage: "the head hash written down at the end of the ceremony (`HEX`)"},
				&cli.IntFlag{Name: "expect-count", Usage: "the number of entries written down at the end of the ceremony"},
				&cli.StringFlag{Name: "expect-audit-key", Usage: "the audit key's SHA-256 fingerprint written down at the end of the ceremony (`HEX`): signatures must be by that key"},
				&cli.BoolFlag{Name: "allow-unsigned", Usage: "accept unsigned entries of prepare, upload, delete-material and record repair (an air-gapped ceremony's online steps, which have no HSM); needs --expect-head; signed entries must still verify"},
				&cli.BoolFlag{Name: "chain-only", Usage: "check only the hash chain, for a record written without an audit key: shows the file is self-consistent, not who wrote it"},
			),
			OnUsageError: onUsageError,
			Action: action(func(c *cliContext) error {
				if c.NArg() != 1 {
					return usageError{fmt.Sprintf("record verify takes one FILE, the ceremony record, after the flags (got %d arguments: %q)", c.NArg(), c.Args().Slice())}
				}
				format, err := outputFormat(c)
				if err != nil {
					return err
				}
				opts := record.VerifyOptions{ExpectHead: c.String("expect-head"), ExpectCount: c.Int("expect-count"), AllowUnsigned: c.Bool("allow-unsigned"),
					ExpectAuditKey: c.String("expect-audit-key"), OwnAuditKey: !c.Bool("chain-only") && c.String("public-key") == ""}
				if err := checkVerifyOptions(c, opts); err != nil {
					return err
				}
				if p := c.String("public-key"); p != "" {
					b, err := safefile.Read("--public-key", p, safefile.MaxPEM)
					if err != nil {
						return usageError{err.Error()}
					}
					if opts.PublicKey, err = record.ParsePublicKeyPEM(b); err != nil {
						return usageError{fmt.Sprintf("--public-key %s: %v", p, err)}
					}
				}
				f, err := safefile.Open("ceremony record", c.Args().First())
				if err != nil {
					return usageError{err.Error()}
				}
				defer f.Close()
				rep, err := record.VerifyWith(safefile.Limit(f, "ceremony record", c.Args().First(), safefile.MaxRecord), opts)
				var ferr *safefile.Error
				if errors.As(err, &ferr) {
					return usageError{ferr.Error()}
				}
				if rep != nil {
					if format == "json" {
						_ = writeJSON(c.App.Writer, rep)
					} else {
						fmt.Fprint(c.App.Writer, rep.String())
					}
				}
				if err != nil {
					var ve *record.VerifyError
					if errors.As(err, &ve) && len(ve.Problems) == 1 && ve.Problems[0].Kind == record.KindTruncated {
						return fmt.Errorf("%w: %v; if a crash cut the last write short, run kmsbridge record repair %s (it keeps the torn bytes as evidence and records the repair)", kmsimport.ErrVerification, err, c.Args().First())
					}
					return fmt.Errorf("%w: %v", kmsimport.ErrVerification, err)
				}
				return nil
			}),
		}, recordRepairCommand()},
	}
}

// recordRepairCommand mends a record whose last line a crash tore.
func recordRepairCommand() *cli.Command {
	return &cli.Command{
		Name:      "repair",
		Usage:     "move a torn last line (a write cut short by a crash) out of a ceremony record, keeping it as evidence",
		ArgsUsage: "[flags] FILE",
		Description: `Only a torn last line is repaired: its bytes go to FILE.torn-<time> (0600,
never overwritten), the record is cut back to its last complete entry, and an
entry "repair-torn-line" naming the evidence file and the torn bytes' SHA-256
is appended. A record with any other problem is refused. With --audit-key the
new entry is signed, like every other.`,
		Flags:        append(append(hsmFlags(), outputFlags()...), auditKeyFlag()),
		OnUsageError: onUsageError,
		Action: action(func(c *cliContext) error {
			if c.NArg() != 1 {
				return usageError{fmt.Sprintf("record repair takes one FILE, the ceremony record, after the flags (got %q)", c.Args().Slice())}
			}
			format, err := outputFormat(c)
			if err != nil {
				return err
			}
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			var (
				signer crypto.Signer
				id     []byte
			)
			if label := c.String(flagAuditKey); label != "" {
				s, err := openToken(c, log)
				if err != nil {
					return err
				}
				defer s.Close()
				k, err := s.tok.FindAuditKey(hsm.KeySelector{Label: label})
				if err != nil {
					return err
				}
				sg, err := s.tok.AuditSigner(k)
				if err != nil {
					return err
				}
				signer, id = sg, k.ID
			}
			rep, err := record.Repair(c.Args().First(), time.Now(), signer, id)
			if errors.Is(err, record.ErrNothingToRepair) {
				fmt.Fprintf(c.App.Writer, "%s: %v.\n", c.Args().First(), err)
				return nil
			}
			if err != nil {
				return fmt.Errorf("%w: %v", kmsimport.ErrInvalidInput, err)
			}
			if format == "json" {
				return writeJSON(c.App.Writer, rep)
			}
			fmt.Fprintf(c.App.Writer, "Moved the torn last line (%d bytes, SHA-256 %s) to %s and recorded it as entry %d.\n", rep.TornBytes, rep.TornSha256, rep.TornFile, rep.Entry.Seq)
			return nil
		}),
	}
}

// checkVerifyOptions refuses --expect-head and --expect-count values that
// cannot be what was written down, as invalid input (exit 2), before the
// record is read: a typo there is not a broken record.
func checkVerifyOptions(c *cliContext, opts record.VerifyOptions) error {
	if c.Bool("chain-only") {
		for _, f := range []string{"public-key", "expect-audit-key", "allow-unsigned"} {
			if c.IsSet(f) {
				return usageError{fmt.Sprintf("--chain-only checks no signature, and --%s is about signatures: give one or the other", f)}
			}
		}
	}
	if opts.AllowUnsigned && opts.ExpectHead == "" {
		return usageError{"--allow-unsigned needs --expect-head: unsigned entries at the end of a record can be rewritten and re-chained by anyone who can write the file, and only the head written down on the paper script shows it; give --expect-head HEX (and --expect-count N)"}
	}
	if k := opts.ExpectAuditKey; k != "" {
		norm := strings.ToLower(strings.NewReplacer(" ", "", ":", "").Replace(k))
		if _, err := hex.DecodeString(norm); err != nil || len(norm) != 64 {
			return usageError{fmt.Sprintf("--expect-audit-key %q is not 64 hex digits: copy the audit key fingerprint written down at the end of the ceremony", kmsimport.Excerpt(k))}
		}
	}
	if c.IsSet("expect-count") && opts.ExpectCount <= 0 {
		return usageError{fmt.Sprintf("--expect-count %d: give the number of entries written down at the end of the ceremony, 1 or more", opts.ExpectCount)}
	}
	if h := opts.ExpectHead; h != "" {
		norm := strings.ToLower(strings.Join(strings.Fields(h), ""))
		if _, err := hex.DecodeString(norm); err != nil || len(norm) != 64 {
			return usageError{fmt.Sprintf("--expect-head %q is not 64 hex digits: copy the head hash written down at the end of the ceremony", kmsimport.Excerpt(h))}
		}
	}
	return nil
}
