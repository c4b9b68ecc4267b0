package main

import (
	"crypto/ecdsa"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/record"
)

const (
	flagOut               = "out"
	flagBundle            = "bundle"
	flagWrapped           = "wrapped"
	flagExpectFingerprint = "expect-fingerprint"
	flagWrapWithTrusted   = "wrap-with-trusted"
	flagAuditPublicKey    = "audit-public-key"
	flagSignature         = "signature"
	flagAllowUnsigned     = "allow-unsigned"
)

func prepareCommand() *cli.Command {
	return &cli.Command{
		Name:  "prepare",
		Usage: "online step 1 of 3: create the EXTERNAL KMS key and write an import bundle for the offline HSM host",
		Description: `Creates the KMS key (or checks --kms-key-id), creates --alias, calls
GetParametersForImport, and writes the bundle file: the KMS key, its key spec,
the wrapping algorithm, the wrapping public key and import token (valid 24 hours),
and the SHA-256 fingerprint of the public key, which is also printed large for
the officers to read aloud. Carry the bundle to the HSM host on removable media.

The wrapping algorithm must be one the HSM can do: SoftHSM2 cannot do SHA-256
(use RSAES_OAEP_SHA_1 or RSA_AES_KEY_WRAP_SHA_1 there).

Example:
  kmsbridge prepare --key-spec ECC_NIST_P256 --alias alias/signer \
      --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 --out signer.bundle.json
  # then, offline:  kmsbridge wrap --bundle signer.bundle.json ...
  # then, online:   kmsbridge upload --wrapped signer.wrapped.json ...` + splitCloudsHelp,
		Flags: append(append(append(append(append(kmsFlags(), outputFlags()...), recordFlags()...), ceremonyFlags()...), splitPrepareFlags()...),
			&cli.StringFlag{Name: flagOut, Required: true, Usage: "write the bundle to new `FILE` (never overwritten)"},
			&cli.StringFlag{Name: flagKMSKeyID, Usage: "prepare an import into this existing EXTERNAL key (`ID` or ARN)"},
			&cli.StringFlag{Name: flagKeySpec, Usage: "key spec of a new KMS key (default SYMMETRIC_DEFAULT)"},
			&cli.StringFlag{Name: flagKeyUsage, Usage: "key usage where the spec allows a choice"},
			&cli.StringFlag{Name: flagAlias, Usage: "create `alias/NAME` for the key"},
			&cli.StringFlag{Name: flagDescription, Usage: "description of a new KMS key"},
			&cli.StringSliceFlag{Name: flagTag, Usage: "tag a new KMS key, `KEY=VALUE` (repeatable)"},
			&cli.StringFlag{Name: flagWrappingAlgorithm, Usage: "wrapping algorithm the HSM will use (default: the strongest KMS accepts for the key spec)"},
			&cli.StringFlag{Name: flagWrappingKeySpec, Value: "RSA_4096", Usage: "RSA_2048, RSA_3072 or RSA_4096"},
			&cli.StringFlag{Name: flagAuditPublicKey, Usage: "the ceremony's audit public key `PEM`: the bundle names it, wrap must sign with it, and upload --bundle accepts only what it signed"},
		),
		OnUsageError: onUsageError,
		Action: action(func(c *cliContext) error {
			format, log, err := setup(c)
			if err != nil {
				return err
			}
			if other, err := prepareOtherCloud(c, format, log); other {
				return err
			}
			var auditFP string
			if p := c.String(flagAuditPublicKey); p != "" {
				pub, err := readAuditPublicKey(p)
				if err != nil {
					return err
				}
				if auditFP, err = awskms.AuditKeyFingerprint(pub); err != nil {
					return err
				}
			}
			tags, err := parseTags(c)
			if err != nil {
				return err
			}
			if err := kmsimport.CheckNewFile("--out", c.String(flagOut)); err != nil {
				return err
			}
			api, region, err := kmsClientRegion(c)
			if err != nil {
				return err
			}
			req := awskms.PrepareRequest{
				KMSKeyID: c.String(flagKMSKeyID), KeySpec: c.String(flagKeySpec), KeyUsage: c.String(flagKeyUsage),
				Alias: c.String(flagAlias), Description: c.String(flagDescription), Tags: tags,
				WrappingAlgorithm: c.String(flagWrappingAlgorithm), WrappingKeySpec: types.WrappingKeySpec(c.String(flagWrappingKeySpec)),
				Region: region,
			}
			rec, err := openRecorder(c, "prepare", map[string]string{"KmsKeyId": req.KMSKeyID, "KeySpec": req.KeySpec, "KeyUsage": req.KeyUsage,
				"AliasName": req.Alias, "WrappingAlgorithm": req.WrappingAlgorithm, "WrappingKeySpec": string(req.WrappingKeySpec), "Region": region}, log, nil, nil)
			if err != nil {
				return err
			}
			j, err := openJournal(c, "", region, rec)
			if err != nil {
				return rec.close(err)
			}
			defer j.Close()
			b, err := awskms.Prepare(c.Context, &awskms.Importer{KMS: api, Log: log, Observe: rec.observer(), Halt: rec.failed, Journal: j, Command: "prepare"}, req, time.Now())
			if err == nil {
				b.AuditPublicKeySha256 = auditFP
				err = awskms.WriteBundle(c.String(flagOut), b)
				rec.add("write-bundle", map[string]string{"BundleFile": c.String(flagOut), "KmsKeyId": b.KeyId, "WrappingPublicKeySha256": b.PublicKeySha256,
					"ImportTokenSha256": b.ImportTokenSha256, "ParametersValidTo": b.ParametersValidTo.Format(time.RFC3339), "AuditPublicKeySha256": auditFP}, err, nil)
				if err != nil {
					err = fmt.Errorf("%w\nWhat exists now: KMS key %s (EXTERNAL, PendingImport), with no bundle written.\nTo finish: fix the cause above, then run the same kmsbridge prepare again on this host: it takes up KMS key %s instead of creating another", err, b.KeyId, b.KeyId)
				} else if jerr := awskms.NotePrepared(j, req, b.KeyId, c.String(flagOut)); jerr != nil {
					err = fmt.Errorf("%w: bundle %s for KMS key %s was written, but %v", kmsimport.ErrJournal, c.String(flagOut), b.KeyId, jerr)
				}
			}
			if err = rec.close(err); err != nil {
				return err
			}
			log.Info("wrote import bundle", "file", c.String(flagOut), "kms_key_id", b.KeyId, "public_key_sha256", b.PublicKeySha256)
			if format == "json" {
				return writeJSON(c.App.Writer, map[string]any{"Bundle": c.String(flagOut), "KeyId": b.KeyId, "Arn": b.Arn, "KeySpec": b.KeySpec,
					"WrappingAlgorithm": b.WrappingAlgorithm, "WrappingKeySpec": b.WrappingKeySpec, "PublicKeySha256": b.PublicKeySha256, "ParametersValidTo": b.ParametersValidTo,
					"KmsEndpoint": b.KmsEndpoint})
			}
			w := c.App.Writer
			fmt.Fprintf(w, "Import bundle written to %s (valid until %s).\n", c.String(flagOut), b.ParametersValidTo.Format(time.RFC3339))
			fmt.Fprintf(w, "  KMS key            %s (%s)\n  wrapping           %s under %s\n", b.KeyId, b.KeySpec, b.WrappingAlgorithm, b.WrappingKeySpec)
			if b.KmsEndpoint != nil {
				fmt.Fprintf(w, "  from endpoint      %s\n", b.KmsEndpoint)
			}
			fmt.Fprintln(w)
			fmt.Fprintf(w, "Wrapping public key SHA-256 (read it aloud; the HSM host must show the same):\n\n%s\n\n", indent(awskms.FormatFingerprint(b.PublicKeySha256), "    "))
			fmt.Fprintf(w, "Next, on the HSM host: kmsbridge wrap --bundle %s --expect-fingerprint %s ...\n", c.String(flagOut), b.PublicKeySha256)
			return nil
		}),
	}
}

func wrapCommand() *cli.Command {
	return &cli.Command{
		Name:  "wrap",
		Usage: "offline step 2 of 3: wrap the HSM key under a bundle's public key and write the wrapped-material file",
		Description: `Needs no network and no AWS configuration. Reads the bundle, refuses it if it
is expired, malformed or inconsistent, shows the wrapping public key's
fingerprint and requires it to match --expect-fingerprint (the value read
aloud from prepare), or to be confirmed on the terminal; then generates or finds
the HSM key, wraps it inside the token, and writes the wrapped-material file with
the HSM's evidence (public key, HMAC of a random message, key check value) so
upload can prove the import.

Example:
  kmsbridge wrap --module /usr/lib/softhsm/libsofthsm2.so --token-label ceremony \
      --bundle signer.bundle.json --expect-fingerprint 4a77b042...22cd \
      --key-label signer-2026 --generate --out signer.wrapped.json`,
		Flags: append(append(append(append(append(hsmFlags(), outputFlags()...), append(recordFlags(), auditKeyFlag())...), ceremonyFlags()...), splitWrapFlags()...),
			&cli.StringFlag{Name: flagBundle, Required: true, Usage: "the bundle `FILE` from prepare"},
			&cli.StringFlag{Name: flagExpectFingerprint, Usage: "the wrapping public key's SHA-256 as read aloud (`HEX`, spaces and colons ignored)"},
			&cli.StringFlag{Name: flagOut, Required: true, Usage: "write the wrapped material to new `FILE` (never overwritten)"},
			&cli.StringFlag{Name: flagKeyLabel, Usage: "`LABEL` of the HSM key (to find it, or for the one --generate makes)"},
			&cli.StringFlag{Name: flagHSMKeyID, Usage: "find the HSM key by its CKA_ID, in `HEX`"},
			&cli.BoolFlag{Name: flagGenerate, Usage: "generate a new key of the bundle's key spec in the HSM"},
			&cli.BoolFlag{Name: flagWrapWithTrusted, Usage: "give a generated key CKA_WRAP_WITH_TRUSTED (dual control; see approve)"},
			&cli.BoolFlag{Name: flagAllowNonSensitive, Usage: "wrap an existing HSM key with CKA_SENSITIVE=false (its value readable in the clear); refused otherwise, recorded when given"},
			allowEndpointFlag(),
			adoptFlag(),
		),
		OnUsageError: onUsageError,
		Action: action(func(c *cliContext) error {
			format, log, err := setup(c)
			if err != nil {
				return err
			}
			now := time.Now()
			b, bundleSum, err := kmsimport.ReadBundle(c.String(flagBundle), now)
			if err != nil {
				return err
			}
			if err := checkWrapFlags(c, b); err != nil {
				return err
			}
			if done := earlierWrap(c, b, bundleSum); done != nil {
				// A run that wrote this very file stopped before it ended
				// the approval: finish that, and nothing else.
				return finishWrap(c, log, format, b, done)
			}
			if err := kmsimport.CheckNewFile("--out", c.String(flagOut)); err != nil {
				return err
			}
			if kmsimport.CloudOf(b.Cloud) == kmsimport.CloudAzure {
				if err := kmsimport.CheckNewFile("--byok-out", byokOut(c)); err != nil {
					return err
				}
			}
			if c.String(flagAuditKey) != "" {
				if err := kmsimport.CheckNewFile("--out (its signature)", c.String(flagOut)+awskms.SignatureSuffix); err != nil {
					return err
				}
			}
			req := awskms.WrapRequest{Generate: c.Bool(flagGenerate), WrapWithTrusted: c.Bool(flagWrapWithTrusted),
				AllowNonSensitive: c.Bool(flagAllowNonSensitive)}
			sel, err := keySelection(c)
			if err != nil {
				return err
			}
			req.KeyLabel, req.KeyID, req.KeyType, req.KeyByURI = sel.Label, sel.ID, sel.Type, keyURIValue(c) != ""
			if err := checkBundleOrigin(c, b); err != nil {
				return err
			}
			if err := confirmFingerprint(c, b.PublicKeySha256); err != nil {
				return err
			}
			log.Info("wrapping public key fingerprint confirmed", "public_key_sha256", b.PublicKeySha256)
			s, err := openToken(c, log)
			if err != nil {
				return err
			}
			defer s.Close()
			// With an audit key, it signs the wrapped file too: found (or
			// refused) now, before any change.
			var auditSigner *hsm.AuditSigner
			var auditID []byte
			if label := c.String(flagAuditKey); label != "" {
				if auditSigner, auditID, err = s.auditSigner(label); err != nil {
					return err
				}
			}
			if want := b.AuditPublicKeySha256; want != "" {
				switch {
				case auditSigner == nil:
					return usageError{fmt.Sprintf("the bundle names audit key %s (prepare --audit-public-key): give --audit-key LABEL of that key, so the wrapped file is signed and upload accepts it", want)}
				case kmsimport.Fingerprint(auditSigner.PublicKeyDER()) != want:
					return usageError{fmt.Sprintf("--audit-key %q has SHA-256 %s, but the bundle names audit key %s: sign with the ceremony's audit key", c.String(flagAuditKey), kmsimport.Fingerprint(auditSigner.PublicKeyDER()), want)}
				}
			}
			rec, err := s.openRecorder(c, "wrap", map[string]string{"BundleSha256": bundleSum, "KmsKeyId": b.KeyId, "WrappingPublicKeySha256": b.PublicKeySha256,
				"BundleKmsEndpoint": b.KmsEndpoint.URL, "BundleKmsEndpointAllowedAs": b.KmsEndpoint.AllowedAs, "BundleKmsTlsSpkiSha256": tlsSPKI(b.KmsEndpoint),
				"HsmKeyLabel": req.KeyLabel, "HsmKeyId": fmt.Sprintf("%x", req.KeyID), "Generate": fmt.Sprint(req.Generate), "WrapWithTrusted": fmt.Sprint(req.WrapWithTrusted), "AllowNonSensitive": fmt.Sprint(req.AllowNonSensitive), "Adopt": fmt.Sprint(c.Bool(flagAdopt))}, log)
			if err != nil {
				return err
			}
			// The HSM host may have no AWS configuration: its journal is
			// the token's own, for the offline side of the split.
			j, err := openJournalFor(c, s.tok.Identity().Serial, "offline", rec)
			if err != nil {
				return rec.close(err)
			}
			defer j.Close()
			w, err := wrapForCloud(c, &awskms.Importer{Token: s.tok, Log: log, Observe: rec.observer(), Halt: rec.failed, Journal: j, Command: "wrap",
				Owner: ownerFor(c, s.tok.Identity().Serial, j, "wrap")}, b, bundleSum, req, now)
			byokPath := ""
			if err == nil {
				if auditSigner != nil {
					// The file itself says it is signed: upload refuses it
					// without a signature that verifies.
					w.AuditPublicKeySha256, w.AuditKeyId = kmsimport.Fingerprint(auditSigner.PublicKeyDER()), fmt.Sprintf("%x", auditID)
				}
				err = awskms.WriteWrapped(c.String(flagOut), w)
				tok := s.tok.Identity()
				rec.add("write-wrapped", map[string]string{"WrappedFile": c.String(flagOut), "EncryptedKeyMaterialSha256": w.EncryptedKeyMaterialSha256,
					"HsmKeyId": w.HSMKey.KeyID, "HsmKeyLabel": w.HSMKey.KeyLabel, "Cloud": kmsimport.CloudOf(w.Cloud)}, err, &tok)
				if err == nil && kmsimport.CloudOf(w.Cloud) == kmsimport.CloudAzure {
					// The standard .byok, for Azure's own tools: the same
					// bytes the wrapped file carries and its signature covers.
					byokPath, err = writeByok(c, w)
					rec.add("write-byok", map[string]string{"ByokFile": byokPath, "ByokSha256": w.EncryptedKeyMaterialSha256}, err, &tok)
				}
				if err == nil && auditSigner != nil {
					var sig *awskms.WrappedSignature
					sig, err = awskms.SignWrapped(c.String(flagOut), w, auditSigner, auditID)
					out := map[string]string{"SignatureFile": c.String(flagOut) + awskms.SignatureSuffix}
					if sig != nil {
						out["WrappedSha256"], out["AuditPublicKeySha256"] = sig.WrappedSha256, sig.AuditPublicKeySha256
					}
					rec.add("sign-wrapped", out, err, &tok)
				}
				if err == nil {
					// An approval covers one wrap: it ends now that the
					// wrapped file is written.
					err = endApproval(c, s, rec, b)
				}
			}
			if err = rec.close(err); err != nil {
				return err
			}
			for _, warn := range w.Warnings {
				log.Warn(warn)
			}
			log.Info("wrote wrapped material", "file", c.String(flagOut), "sha256", w.EncryptedKeyMaterialSha256)
			if format == "json" {
				return writeJSON(c.App.Writer, map[string]any{"Wrapped": c.String(flagOut), "Cloud": kmsimport.CloudOf(w.Cloud), "KeyId": w.KeyId, "HsmKey": w.HSMKey, "Token": w.Token,
					"EncryptedKeyMaterialSha256": w.EncryptedKeyMaterialSha256, "Warnings": w.Warnings, "Gcp": w.Gcp, "ByokFile": byokPath,
					"WrappingPublicKeySha256": b.PublicKeySha256, "KmsEndpoint": b.KmsEndpoint})
			}
			fmt.Fprintf(c.App.Writer, "Wrapped HSM key %q (CKA_ID %s) for KMS key %s into %s,\nunder wrapping public key SHA-256 %s from %s.\n",
				w.HSMKey.KeyLabel, w.HSMKey.KeyID, w.KeyId, c.String(flagOut), b.PublicKeySha256, bundleOrigin(b))
			if w.Gcp != nil {
				fmt.Fprintf(c.App.Writer, "Import job attestation: %s\n", w.Gcp.Attestation)
			}
			if byokPath != "" {
				fmt.Fprintf(c.App.Writer, "Wrote the Azure BYOK transfer blob %s (SHA-256 %s), for kmsbridge upload or az keyvault key import --byok-file.\n", byokPath, w.EncryptedKeyMaterialSha256)
			}
			if auditSigner != nil {
				fmt.Fprintf(c.App.Writer, "Signed it with audit key %q into %s%s.\nNext, online: kmsbridge upload --wrapped %s --audit-public-key AUDIT.pem --valid-to ... | --no-expiry\n",
					c.String(flagAuditKey), c.String(flagOut), awskms.SignatureSuffix, c.String(flagOut))
			} else {
				fmt.Fprintf(c.App.Writer, "The file is not signed (no --audit-key): upload refuses it unless given --allow-unsigned.\nNext, online: kmsbridge upload --wrapped %s --allow-unsigned --valid-to ... | --no-expiry\n", c.String(flagOut))
			}
			return nil
		}),
	}
}

func uploadCommand() *cli.Command {
	return &cli.Command{
		Name:  "upload",
		Usage: "online step 3 of 3: import the wrapped material into KMS and prove the import",
		Description: `Imports the wrapped-material file with ImportKeyMaterial, tags the KMS key with
the HSM key's identity, and checks KMS against the HSM's evidence carried in
the file (GenerateMac, GetPublicKey and Sign where KMS allows it). With
--bundle, refuses a wrapped file that was not made from that bundle.

Integrity is on by default. When the wrapped file, the bundle or a FILE.sig
beside it says an audit key was in use, the signature must verify, under
--audit-public-key or the key the bundle names (prepare --audit-public-key),
and bind the blob to its bundle, KMS key, import token and HSM key; else
nothing is uploaded. An unsigned file is refused unless --allow-unsigned,
which the result and the record then carry.

Example:
  kmsbridge upload --wrapped signer.wrapped.json --bundle signer.bundle.json --audit-public-key audit.pem --no-expiry
  kmsbridge upload --wrapped signer.wrapped.json --allow-unsigned --no-expiry   # no audit key in this ceremony`,
		Flags: append(append(append(append(append(kmsFlags(), outputFlags()...), recordFlags()...), ceremonyFlags()...),
			&cli.StringFlag{Name: flagWrapped, Required: true, Usage: "the wrapped-material `FILE` from wrap"},
			&cli.StringFlag{Name: flagAuditPublicKey, Usage: "the ceremony's audit public key `PEM`: the wrapped file's signature must verify under it"},
			&cli.StringFlag{Name: flagSignature, Usage: "the wrapped file's detached signature `FILE` (default: the wrapped file's path + .sig)"},
			&cli.StringFlag{Name: flagBundle, Usage: "the bundle `FILE` it was made from, to check they belong together"},
			&cli.BoolFlag{Name: flagAllowUnsigned, Usage: "upload a wrapped file no audit key signed (never one the file or bundle says was signed); recorded"},
			&cli.StringFlag{Name: flagValidTo, Usage: "material expires at `TIME` (RFC 3339 or a date; at most 365 days ahead)"},
			&cli.BoolFlag{Name: flagNoExpiry, Usage: "material does not expire"},
			&cli.StringFlag{Name: flagByokFile, Usage: "Azure: the .byok `FILE` wrap wrote beside the wrapped file; refused unless it is byte for byte the one the wrapped file carries"},
		), splitUploadFlags()...),
		OnUsageError: onUsageError,
		Action: action(func(c *cliContext) error {
			format, log, err := setup(c)
			if err != nil {
				return err
			}
			now := time.Now()
			var (
				b   *kmsimport.Bundle
				sum string
			)
			if p := c.String(flagBundle); p != "" {
				// An expired bundle can still prove pairing: parse it as of its own time.
				if b, sum, err = awskms.ReadBundleForPairing(p); err != nil {
					return err
				}
			}
			w, err := kmsimport.ReadWrapped(c.String(flagWrapped), b, sum)
			if err != nil {
				return err
			}
			if kmsimport.CloudOf(w.Cloud) != kmsimport.CloudAWS {
				if kmsimport.CloudOf(w.Cloud) != kmsimport.CloudAzure {
					for _, f := range []string{flagAzureAttRoot, flagAzurePartition} {
						if c.IsSet(f) {
							return usageError{"--" + f + " is for an Azure wrapped file: drop it"}
						}
					}
				}
				evidence, err := checkWrappedSignature(c, w, b, sum)
				if err != nil {
					return err
				}
				return uploadOtherCloud(c, format, log, w, evidence)
			}
			for _, f := range []string{flagByokFile, flagAzureAttRoot, flagAzurePartition} {
				if c.IsSet(f) {
					return usageError{"--" + f + " is for an Azure wrapped file: drop it"}
				}
			}
			expiry, err := parseExpiry(c)
			if err != nil {
				return err
			}
			if err := expiry.Validate(now); err != nil {
				return err
			}
			evidence, err := checkWrappedSignature(c, w, b, sum)
			if err != nil {
				return err
			}
			api, region, err := kmsClientRegion(c)
			if err != nil {
				return err
			}
			rec, err := openRecorder(c, "upload", map[string]string{"KmsKeyId": w.KeyId, "EncryptedKeyMaterialSha256": w.EncryptedKeyMaterialSha256,
				"HsmKeyId": w.HSMKey.KeyID, "BundleSha256": w.BundleSha256, "HsmEvidence": evidence, "AllowUnsigned": fmt.Sprint(c.Bool(flagAllowUnsigned))}, log, nil, nil)
			if err != nil {
				return err
			}
			j, err := openJournal(c, w.Token.Serial, region, rec)
			if err != nil {
				return rec.close(err)
			}
			defer j.Close()
			res, err := awskms.Upload(c.Context, &awskms.Importer{KMS: api, Log: log, Observe: rec.observer(), Halt: rec.failed, Journal: j, Command: "upload"}, w, expiry, now)
			if res != nil {
				res.HSMEvidence = evidence
			}
			return printResult(c, format, res, rec.close(err))
		}),
	}
}

// setup reads the output format and makes the logger every command uses.
func setup(c *cliContext) (string, *slog.Logger, error) {
	if c.NArg() > 0 {
		return "", nil, usageError{fmt.Sprintf("unexpected argument %q: kmsbridge %s takes only flags", c.Args().First(), c.Command.Name)}
	}
	if err := applyCeremony(c); err != nil {
		return "", nil, err
	}
	format, err := outputFormat(c)
	if err != nil {
		return "", nil, err
	}
	log, err := newLogger(c)
	return format, log, err
}

// confirmFingerprint requires the officers' fingerprint to match, from
// --expect-fingerprint or typed on the terminal.
func confirmFingerprint(c *cliContext, fp string) error {
	fmt.Fprintf(c.App.ErrWriter, "Wrapping public key SHA-256 in the bundle:\n\n%s\n\n", indent(awskms.FormatFingerprint(fp), "    "))
	if want := c.String(flagExpectFingerprint); want != "" {
		norm := strings.ToLower(strings.NewReplacer(" ", "", ":", "", "\n", "").Replace(want))
		if norm != fp {
			return fmt.Errorf("%w: the bundle's wrapping public key has SHA-256 %s, not the %s read aloud: the bundle may have been swapped or altered; do not wrap, run prepare again", kmsimport.ErrInvalidInput, fp, norm)
		}
		return nil
	}
	ok, err := confirm("Does this match the fingerprint read aloud from prepare?")
	if err != nil {
		return usageError{"no terminal to confirm the fingerprint on: give --expect-fingerprint with the value read aloud from prepare"}
	}
	if !ok {
		return usageError{"fingerprint not confirmed: nothing was wrapped"}
	}
	return nil
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// checkWrappedSignature decides, before KMS is touched, whether the
// wrapped file may be uploaded (awskms.CheckIntegrity), and says what
// the HSM's evidence in it is worth: evidence no one signed is never
// presented as proof.
func checkWrappedSignature(c *cliContext, w *kmsimport.Wrapped, b *kmsimport.Bundle, bundleSum string) (string, error) {
	ic := awskms.IntegrityCheck{Path: c.String(flagWrapped), Wrapped: w, SigPath: c.String(flagSignature), Bundle: b, BundleSha256: bundleSum,
		AllowUnsigned: c.Bool(flagAllowUnsigned)}
	if p := c.String(flagAuditPublicKey); p != "" {
		pub, err := readAuditPublicKey(p)
		if err != nil {
			return "", err
		}
		ic.AuditPublicKey = pub
	}
	return awskms.CheckIntegrity(ic)
}

// readAuditPublicKey reads --audit-public-key.
func readAuditPublicKey(path string) (*ecdsa.PublicKey, error) {
	raw, err := safefile.Read("--"+flagAuditPublicKey, path, safefile.MaxPEM)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	pub, err := record.ParsePublicKeyPEM(raw)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--%s %s: %v: give the PEM kmsbridge audit-key create wrote", flagAuditPublicKey, path, err)}
	}
	return pub, nil
}

// earlierWrap returns the wrapped file at --out when an earlier run of
// this same wrap wrote it: made from this bundle, of the HSM key asked
// for, and signed when an audit key is asked for. Anything else at --out
// is left to CheckNewFile to refuse.
func earlierWrap(c *cliContext, b *kmsimport.Bundle, bundleSum string) *kmsimport.Wrapped {
	out := c.String(flagOut)
	if _, err := os.Lstat(out); err != nil {
		return nil
	}
	w, err := kmsimport.ReadWrapped(out, b, bundleSum)
	if err != nil {
		return nil
	}
	sel, err := keySelection(c)
	label, id := sel.Label, sel.ID
	if err != nil || (label != "" && w.HSMKey.KeyLabel != label) || (len(id) > 0 && w.HSMKey.KeyID != fmt.Sprintf("%x", id)) || (label == "" && len(id) == 0) {
		return nil
	}
	if c.String(flagAuditKey) != "" {
		if _, err := os.Lstat(out + awskms.SignatureSuffix); err != nil {
			return nil
		}
	}
	return w
}

// finishWrap ends the approval an earlier run of this wrap left
// outstanding after it wrote its file, and reports that the wrap was
// already done.
func finishWrap(c *cliContext, log *slog.Logger, format string, b *kmsimport.Bundle, w *kmsimport.Wrapped) error {
	s, err := openToken(c, log)
	if err != nil {
		return err
	}
	defer s.Close()
	rec, err := s.openRecorder(c, "wrap", map[string]string{"KmsKeyId": b.KeyId, "WrappingPublicKeySha256": b.PublicKeySha256, "WrappedFile": c.String(flagOut)}, log)
	if err != nil {
		return err
	}
	err = endApproval(c, s, rec, b)
	if err == nil && kmsimport.CloudOf(w.Cloud) == kmsimport.CloudAzure && !exists(byokOut(c)) {
		// The earlier run stopped between the wrapped file and its .byok.
		var path string
		path, err = writeByok(c, w)
		tok := s.tok.Identity()
		rec.add("write-byok", map[string]string{"ByokFile": path, "ByokSha256": w.EncryptedKeyMaterialSha256}, err, &tok)
	}
	if err := rec.close(err); err != nil {
		return err
	}
	if format == "json" {
		return writeJSON(c.App.Writer, map[string]any{"Wrapped": c.String(flagOut), "KeyId": w.KeyId, "HsmKey": w.HSMKey, "Token": w.Token,
			"EncryptedKeyMaterialSha256": w.EncryptedKeyMaterialSha256, "AlreadyWrapped": true})
	}
	fmt.Fprintf(c.App.Writer, "HSM key %q was already wrapped for KMS key %s into %s by an earlier run; nothing was wrapped again, and any approval of the bundle's wrapping key is ended.\n", w.HSMKey.KeyLabel, w.KeyId, c.String(flagOut))
	return nil
}

// endApproval ends the approval of the bundle's wrapping key, if any,
// recording it.
func endApproval(c *cliContext, s *session, rec *recorder, b *kmsimport.Bundle) error {
	kmsimport.CrashPoint(c.Context, "before:end-approval")
	ended, err := awskms.EndApproval(s.tok, b)
	tok := s.tok.Identity()
	if ended || err != nil {
		rec.add("end-approval", map[string]string{"WrappingPublicKeySha256": b.PublicKeySha256, "ApprovalEnded": fmt.Sprint(ended)}, err, &tok)
	}
	if err != nil {
		return fmt.Errorf("%w\nWhat exists now: the wrapped file is written, and the Security Officer's approval of wrapping key %s is still in the token.\nTo finish: run the same kmsbridge wrap again on this host (it ends the approval and wraps nothing again), or have the SO run kmsbridge approve --revoke --bundle FILE", err, b.PublicKeySha256)
	}
	return nil
}

// checkBundleOrigin shows where a bundle's wrapping public key came from
// and applies the endpoint policy to it offline, before the HSM is
// touched: wrap and approve refuse a bundle from an endpoint that is not
// AWS's unless --allow-endpoint names it on this host too.
func checkBundleOrigin(c *cliContext, b *kmsimport.Bundle) error {
	if b.KmsEndpoint != nil {
		fmt.Fprintf(c.App.ErrWriter, "The bundle's wrapping public key came from KMS endpoint:\n\n    %s\n\n", bundleOrigin(b))
	}
	return kmsimport.CheckBundleOrigin(b, c.String(flagAllowEndpoint))
}

// tlsSPKI is the SPKI SHA-256 of the endpoint's TLS peer, or what stood
// in for it.
func tlsSPKI(e *kmsimport.Endpoint) string {
	switch {
	case e == nil:
		return ""
	case e.TLS != nil:
		return e.TLS.SPKISHA256
	default:
		return "none: plain http"
	}
}
