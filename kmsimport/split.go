package kmsimport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
)

// The file formats of the air-gapped split. A new format gets a new
// version string; readers refuse versions they do not know. Bundle format
// 2 added KmsEndpoint: where the wrapping public key came from. Bundle
// format 3 and wrapped format 2 added Cloud and the clouds' sections
// (splitcloud.go); the earlier versions are read as AWS files.
const (
	BundleFormat  = "kmsbridge-import-bundle/3"
	WrappedFormat = "kmsbridge-wrapped-material/2"

	bundleFormatAWS2  = "kmsbridge-import-bundle/2"
	wrappedFormatAWS1 = "kmsbridge-wrapped-material/1"
)

// Bundle is what `prepare` hands to the offline HSM host: the KMS key and
// one GetParametersForImport answer. The public key and import token are
// one pair, valid until ParametersValidTo.
type Bundle struct {
	Format string `json:"Format"`
	// Cloud is "aws", "gcp" or "azure" ("" in a format-2 AWS bundle).
	Cloud             string    `json:"Cloud,omitempty"`
	KeyId             string    `json:"KeyId"`
	Arn               string    `json:"Arn"`
	Region            string    `json:"Region"`
	KeySpec           string    `json:"KeySpec"`
	KeyUsage          string    `json:"KeyUsage"`
	WrappingAlgorithm string    `json:"WrappingAlgorithm"`
	WrappingKeySpec   string    `json:"WrappingKeySpec"`
	PublicKey         []byte    `json:"PublicKey"`
	PublicKeySha256   string    `json:"PublicKeySha256"`
	ImportToken       []byte    `json:"ImportToken"`
	ImportTokenSha256 string    `json:"ImportTokenSha256"`
	ParametersValidTo time.Time `json:"ParametersValidTo"`
	PreparedAt        time.Time `json:"PreparedAt"`
	// AuditPublicKeySha256, when set (prepare --audit-public-key), is the
	// fingerprint of the ceremony's audit key: wrap must sign with it, and
	// upload with this bundle accepts only a wrapped file it signed.
	AuditPublicKeySha256 string `json:"AuditPublicKeySha256,omitempty"`
	// KmsEndpoint is the endpoint GetParametersForImport was answered
	// by, with its TLS identity: wrap shows it and applies the endpoint
	// policy to it before wrapping.
	KmsEndpoint *Endpoint `json:"KmsEndpoint"`
	// Gcp and Azure are the sections of a Google or Azure bundle.
	Gcp   *GCPBundle  `json:"Gcp,omitempty"`
	Azure *AzureSplit `json:"Azure,omitempty"`
}

// Wrapped is what `wrap` hands back to the online host: the wrapped
// material for one bundle, who wrapped it with what, and the HSM's
// evidence the upload checks KMS against.
type Wrapped struct {
	Format                     string            `json:"Format"`
	Cloud                      string            `json:"Cloud,omitempty"`
	BundleSha256               string            `json:"BundleSha256"`
	KeyId                      string            `json:"KeyId"`
	Arn                        string            `json:"Arn"`
	Region                     string            `json:"Region"`
	KeySpec                    string            `json:"KeySpec"`
	WrappingAlgorithm          string            `json:"WrappingAlgorithm"`
	WrappingKeySpec            string            `json:"WrappingKeySpec"`
	PublicKeySha256            string            `json:"PublicKeySha256"`
	ImportToken                []byte            `json:"ImportToken"`
	ImportTokenSha256          string            `json:"ImportTokenSha256"`
	ParametersValidTo          time.Time         `json:"ParametersValidTo"`
	EncryptedKeyMaterial       []byte            `json:"EncryptedKeyMaterial"`
	EncryptedKeyMaterialSha256 string            `json:"EncryptedKeyMaterialSha256"`
	Token                      hsm.TokenIdentity `json:"Token"`
	HSMKey                     HSMKey            `json:"HsmKey"`
	Evidence                   Evidence          `json:"Evidence"`
	Warnings                   []string          `json:"Warnings,omitempty"`
	WrappedAt                  time.Time         `json:"WrappedAt"`
	// AuditPublicKeySha256 and AuditKeyId name the audit key that signs
	// this file (FILE.sig), when one was in use: upload then refuses the
	// file unless that signature verifies.
	AuditPublicKeySha256 string `json:"AuditPublicKeySha256,omitempty"`
	AuditKeyId           string `json:"AuditKeyId,omitempty"`
	// Gcp and Azure are the sections of a Google or Azure wrapped file.
	Gcp   *GCPWrapped `json:"Gcp,omitempty"`
	Azure *AzureSplit `json:"Azure,omitempty"`
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// FormatFingerprint groups a hex fingerprint in fours, two lines of eight
// groups, for officers to read aloud and compare.
func FormatFingerprint(fp string) string {
	var groups []string
	for i := 0; i < len(fp); i += 4 {
		groups = append(groups, fp[i:min(i+4, len(fp))])
	}
	if len(groups) <= 8 {
		return strings.Join(groups, " ")
	}
	return strings.Join(groups[:8], " ") + "\n" + strings.Join(groups[8:], " ")
}

// PrepareRequest is the online first step of the split.
type PrepareRequest struct {
	KMSKeyID          string
	KeySpec           string
	KeyUsage          string
	Alias             string
	Description       string
	Tags              []types.Tag
	WrappingAlgorithm string
	WrappingKeySpec   types.WrappingKeySpec
	Region            string
}

// Prepare creates the EXTERNAL key (or checks the one given), creates the
// alias, and gets import parameters: everything of the import that needs
// KMS and not the HSM. Everything that can fail without a change is
// checked first.
func Prepare(ctx context.Context, im *Importer, req PrepareRequest, now time.Time) (*Bundle, error) {
	im.Now = func() time.Time { return now }
	r := &run{im: im, req: &Request{
		KMSKeyID: req.KMSKeyID, KeySpec: req.KeySpec, KeyUsage: req.KeyUsage, Alias: req.Alias,
		Description: req.Description, Tags: req.Tags, WrappingAlgorithm: req.WrappingAlgorithm,
		WrappingKeySpec: req.WrappingKeySpec, Generate: true, KeyLabel: "-", Expiry: Expiry{NoExpiry: true},
	}, res: &Result{Origin: string(types.OriginTypeExternal)}}
	do := func(name string, fn func(context.Context) (string, error)) error {
		return r.runSteps(ctx, []step{{name, fn, false}})
	}
	if err := do(StepValidate, r.validate); err != nil {
		return nil, err
	}
	if req.WrappingAlgorithm == "" {
		ws := ValidWrappings(r.spec, r.req.WrappingKeySpec)
		r.wrapping = ws[0]
	} else {
		r.wrapping, _ = ParseWrappingAlgorithm(req.WrappingAlgorithm)
	}
	r.req.Generate = false // the HSM key is not known yet: checkLink must not refuse on that ground
	if req.KMSKeyID == "" {
		// A re-run of a prepare that made its key (and maybe its alias)
		// but wrote no bundle goes on with that key.
		id, err := r.resumePrepare(ctx, req.Digest())
		if err != nil {
			return nil, r.fail(StepCheckKMS, err)
		}
		r.req.KMSKeyID = id
	}
	if err := do(StepCheckKMS, r.checkKMS); err != nil {
		return nil, err
	}
	if r.existing == nil {
		if err := do(StepCreateKey, func(ctx context.Context) (string, error) { return r.createBareKey(ctx, req) }); err != nil {
			return nil, err
		}
	} else {
		r.res.KeyId, r.res.Arn = aws.ToString(r.existing.KeyId), aws.ToString(r.existing.Arn)
	}
	if req.Alias != "" {
		if err := do(StepAlias, r.alias); err != nil {
			return nil, err
		}
	}
	if err := do(StepGetParameters, r.getParameters); err != nil {
		return nil, err
	}
	return &Bundle{
		Format: BundleFormat, Cloud: CloudAWS, KeyId: r.res.KeyId, Arn: r.res.Arn, Region: req.Region,
		KeySpec: string(r.spec.Name), KeyUsage: string(r.usage),
		WrappingAlgorithm: string(r.wrapping.Algorithm), WrappingKeySpec: string(r.req.WrappingKeySpec),
		PublicKey: r.pubDER, PublicKeySha256: Fingerprint(r.pubDER),
		ImportToken: r.token, ImportTokenSha256: sha256Hex(r.token),
		ParametersValidTo: r.res.ParametersValidTo, PreparedAt: now.UTC(),
		KmsEndpoint: r.res.KMSEndpoint,
	}, nil
}

// createBareKey creates the EXTERNAL key with the user's tags only: in
// the split the HSM key is not known until the wrap, and the upload adds
// the link tags. A re-run of the same prepare whose bundle was never
// written takes up the key the earlier run made instead.
func (r *run) createBareKey(ctx context.Context, req PrepareRequest) (string, error) {
	return r.createNewKey(ctx, r.req.Tags, map[string]string{"PrepareRequestSha256": req.Digest()})
}

// Digest identifies a prepare request: the same flags give the same
// digest, so a re-run finds the earlier run's journal entries.
func (req PrepareRequest) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%q|%q|%q|%q|%q|%q|%q|", req.KMSKeyID, req.KeySpec, req.KeyUsage, req.Alias, req.Description, req.WrappingAlgorithm, req.WrappingKeySpec, req.Region)
	for _, t := range req.Tags {
		fmt.Fprintf(h, "%q=%q|", aws.ToString(t.TagKey), aws.ToString(t.TagValue))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NotePrepared records in the journal that the bundle for keyID was
// written to path: the prepare is finished, and a later prepare with the
// same flags makes a new key.
func NotePrepared(j *journal.Journal, req PrepareRequest, keyID, path string) error {
	return j.Note("prepare", "prepared", map[string]string{"PrepareRequestSha256": req.Digest(), "KmsKeyId": keyID, "BundlePath": path})
}

// resumePrepare finds the key an earlier prepare with the same request
// created but never wrote a bundle for.
func (r *run) resumePrepare(ctx context.Context, digest string) (string, error) {
	j := r.im.Journal
	intents := j.Intents("CreateKey", func(e journal.Entry) bool {
		return e.Command == "prepare" && e.Target["PrepareRequestSha256"] == digest
	})
	if len(intents) == 0 {
		return "", nil
	}
	in := intents[0]
	for _, e := range j.Entries() {
		if e.Kind == journal.KindNote && e.Op == "prepared" && e.Facts["PrepareRequestSha256"] == digest && !e.Time.Before(in.Time) {
			return "", nil // that run finished: this is a new prepare
		}
	}
	id := ""
	if out, ok := j.Outcome(in.Attempt); ok && out.Result == journal.ResultOK {
		id = out.Facts["KmsKeyId"]
	} else if ok && out.Result == journal.ResultFailed {
		return "", nil
	} else {
		var err error
		if id, err = r.view().ByAttempt(ctx, in.Attempt); err != nil || id == "" {
			return "", err
		}
	}
	out, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	if err != nil {
		return "", explain("DescribeKey", err)
	}
	md := out.KeyMetadata
	if md.KeyState != types.KeyStatePendingImport || md.Origin != types.OriginTypeExternal || md.KeySpec != r.spec.Name {
		return "", nil
	}
	r.res.CreatedKMSKey = true
	r.resumed = append(r.resumed, fmt.Sprintf("KMS key %s, created by an earlier prepare with the same flags at %s whose bundle was never written", id, in.Time.Format(time.RFC3339)))
	if err := j.Note("prepare", "resume", map[string]string{"KmsKeyId": id, "Attempt": in.Attempt}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrJournal, err)
	}
	r.logInfo("taking up the KMS key an earlier prepare with the same flags created but wrote no bundle for", "kmsKeyId", id, "attempt", in.Attempt)
	return id, nil
}

// ReadBundle reads and checks a bundle file: strict parsing, a known
// format, a public key that is what its fingerprint says and the size its
// spec says, a wrapping KMS accepts for the key spec, parameters not
// expired at now. It returns the bundle and the SHA-256 of the file.
func ReadBundle(path string, now time.Time) (*Bundle, string, error) {
	var b Bundle
	raw, err := readStrict("--bundle", path, &b)
	if err != nil {
		return nil, "", err
	}
	if err := checkBundleFormat(path, &b); err != nil {
		return nil, "", err
	}
	if err := missing(path, field{"KeyId", b.KeyId == ""}, field{"KeySpec", b.KeySpec == ""}, field{"WrappingAlgorithm", b.WrappingAlgorithm == ""},
		field{"WrappingKeySpec", b.WrappingKeySpec == ""}, field{"PublicKey", len(b.PublicKey) == 0}, field{"ImportToken", len(b.ImportToken) == 0},
		field{"ParametersValidTo", b.ParametersValidTo.IsZero()}); err != nil {
		return nil, "", err
	}
	if Fingerprint(b.PublicKey) != b.PublicKeySha256 {
		return nil, "", invalid("%s: PublicKeySha256 is %s but the public key in the file hashes to %s: the file was altered; get a fresh bundle with kmsbridge prepare", path, Excerpt(b.PublicKeySha256), Fingerprint(b.PublicKey))
	}
	if sha256Hex(b.ImportToken) != b.ImportTokenSha256 {
		return nil, "", invalid("%s: ImportTokenSha256 does not match the import token in the file: the file was altered; get a fresh bundle with kmsbridge prepare", path)
	}
	wks, err := ParseWrappingKeySpec(b.WrappingKeySpec)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if err := checkBundleCloud(path, &b); err != nil {
		return nil, "", err
	}
	if CloudOf(b.Cloud) == CloudAWS {
		if b.Arn != "" && !strings.HasSuffix(b.Arn, "/"+b.KeyId) {
			return nil, "", invalid("%s: Arn %s is not the ARN of KeyId %s: the file is inconsistent", path, Excerpt(b.Arn), Excerpt(b.KeyId))
		}
		spec, err := ParseKeySpec(b.KeySpec)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		w, err := ParseWrappingAlgorithm(b.WrappingAlgorithm)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		if err := CheckWrapping(spec, w, wks); err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
	}
	if _, err := ParseWrappingPublicKey(b.PublicKey, wks); err != nil {
		return nil, "", invalid("%s: %v", path, err)
	}
	if fp := b.AuditPublicKeySha256; fp != "" && !isSHA256Hex(fp) {
		return nil, "", invalid("%s: AuditPublicKeySha256 %q is not a SHA-256 in hex: the file was altered; get a fresh bundle with kmsbridge prepare", path, Excerpt(fp))
	}
	if !now.Before(b.ParametersValidTo) {
		return nil, "", invalid("%s: the import parameters expired at %s: %s", path, b.ParametersValidTo.UTC().Format(time.RFC3339), expiredAdvice(&b))
	}
	return &b, sha256Hex(raw), nil
}

// checkBundleFormat accepts the current format, whose Cloud names the
// cloud ("" is AWS), and format 2, which was AWS's only.
func checkBundleFormat(path string, b *Bundle) error {
	switch {
	case b.Format == BundleFormat: // Cloud "" is AWS
		return nil
	case b.Format == bundleFormatAWS2 && b.Cloud == "":
		return nil
	}
	return invalid("%s: format %q (cloud %q) is not %q: not a kmsbridge import bundle, or from another version", path, Excerpt(b.Format), Excerpt(b.Cloud), BundleFormat)
}

// WriteBundle writes b to a new file, mode 0600.
func WriteBundle(path string, b *Bundle) error { return writeNewFile(path, b) }

// WrapRequest is the offline second step of the split.
type WrapRequest struct {
	KeyLabel string
	KeyID    []byte
	// KeyType and KeyByURI are as in Request.
	KeyType         string
	KeyByURI        bool
	Generate        bool
	WrapWithTrusted bool
	// AllowNonSensitive accepts an existing key with CKA_SENSITIVE=false.
	AllowNonSensitive bool
}

// WrapBundle generates or finds the HSM key, wraps it inside the token
// under the bundle's public key with the bundle's algorithm, and gathers
// the HSM's evidence. It needs no network and no AWS configuration. The
// bundle must already have been read with ReadBundle and its fingerprint
// confirmed by the officers.
func WrapBundle(im *Importer, b *Bundle, bundleSHA256 string, req WrapRequest, now time.Time) (*Wrapped, error) {
	im.Now = func() time.Time { return now }
	tok := im.Token
	r := &run{im: im, req: &Request{
		KeyLabel: req.KeyLabel, KeyID: req.KeyID, KeyType: req.KeyType, KeyByURI: req.KeyByURI, Generate: req.Generate, WrapWithTrusted: req.WrapWithTrusted, AllowNonSensitive: req.AllowNonSensitive,
		KeySpec: b.KeySpec, KeyUsage: b.KeyUsage, WrappingAlgorithm: b.WrappingAlgorithm,
		WrappingKeySpec: types.WrappingKeySpec(b.WrappingKeySpec), Expiry: Expiry{NoExpiry: true},
	}, res: &Result{}}
	r.token = b.ImportToken
	var ev Evidence
	err := r.runSteps(context.Background(), []step{
		{StepValidate, r.validate, false},
		{StepSelectKey, r.selectKey, false},
		{StepProbe, r.probeBundle, false},
		{StepApproval, r.checkApproval(b), false},
		{StepGenerate, r.generate, !req.Generate},
		{StepWrap, r.wrapBundle(b), false},
		{StepEvidence, func(context.Context) (string, error) {
			var err error
			ev, err = GatherEvidence(tok, r.key, r.spec)
			return "gathered the HSM's evidence for the upload's proof", err
		}, false},
	})
	if err != nil {
		return nil, err
	}
	return &Wrapped{
		Format: WrappedFormat, Cloud: CloudAWS, BundleSha256: bundleSHA256,
		KeyId: b.KeyId, Arn: b.Arn, Region: b.Region, KeySpec: b.KeySpec,
		WrappingAlgorithm: b.WrappingAlgorithm, WrappingKeySpec: b.WrappingKeySpec, PublicKeySha256: b.PublicKeySha256,
		ImportToken: b.ImportToken, ImportTokenSha256: b.ImportTokenSha256, ParametersValidTo: b.ParametersValidTo,
		EncryptedKeyMaterial: r.wrapped, EncryptedKeyMaterialSha256: sha256Hex(r.wrapped),
		Token: r.res.HSM.Token, HSMKey: r.res.HSM, Evidence: ev, Warnings: r.res.Warnings, WrappedAt: now.UTC(),
	}, nil
}

// wrapBundle is the wrap step with the bundle's public key.
func (r *run) wrapBundle(b *Bundle) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		pub, err := ParseWrappingPublicKey(b.PublicKey, types.WrappingKeySpec(b.WrappingKeySpec))
		if err != nil {
			return "", err
		}
		r.pub = pub
		return r.wrap(ctx)
	}
}

// WriteWrapped writes w to a new file, mode 0600.
func WriteWrapped(path string, w *Wrapped) error { return writeNewFile(path, w) }

// ReadWrapped reads and checks a wrapped-material file: strict parsing, a
// known format, digests that match their contents. With a bundle, it must
// be the bundle's (same file digest, key, public key and token).
func ReadWrapped(path string, bundle *Bundle, bundleSHA256 string) (*Wrapped, error) {
	var w Wrapped
	if _, err := readStrict("--wrapped", path, &w); err != nil {
		return nil, err
	}
	switch {
	case w.Format == WrappedFormat: // Cloud "" is AWS
	case w.Format == wrappedFormatAWS1 && w.Cloud == "":
	default:
		return nil, invalid("%s: format %q (cloud %q) is not %q: not a kmsbridge wrapped-material file, or from another version", path, Excerpt(w.Format), Excerpt(w.Cloud), WrappedFormat)
	}
	if err := missing(path, field{"KeyId", w.KeyId == ""}, field{"KeySpec", w.KeySpec == ""}, field{"WrappingAlgorithm", w.WrappingAlgorithm == ""},
		field{"ImportToken", len(w.ImportToken) == 0}, field{"EncryptedKeyMaterial", len(w.EncryptedKeyMaterial) == 0},
		field{"HsmKey.KeyId", w.HSMKey.KeyID == ""}); err != nil {
		return nil, err
	}
	if sha256Hex(w.EncryptedKeyMaterial) != w.EncryptedKeyMaterialSha256 || sha256Hex(w.ImportToken) != w.ImportTokenSha256 {
		return nil, invalid("%s: a digest does not match its content (EncryptedKeyMaterialSha256 or ImportTokenSha256): the file was altered or damaged; wrap again", path)
	}
	if CloudOf(w.Cloud) == CloudAWS {
		if _, err := ParseKeySpec(w.KeySpec); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := checkWrappedCloud(path, &w); err != nil {
		return nil, err
	}
	if fp := w.AuditPublicKeySha256; fp != "" && !isSHA256Hex(fp) {
		return nil, invalid("%s: AuditPublicKeySha256 %q is not a SHA-256 in hex: the file was altered or damaged; wrap again", path, Excerpt(fp))
	}
	if bundle != nil {
		switch {
		case w.BundleSha256 != bundleSHA256:
			return nil, invalid("%s was wrapped from another bundle (SHA-256 %s), not from this one (%s): pair each wrapped file with the bundle it came from", path, Excerpt(w.BundleSha256), bundleSHA256)
		case CloudOf(w.Cloud) != CloudOf(bundle.Cloud):
			return nil, invalid("%s is for cloud %s, but the bundle is for %s: pair each wrapped file with the bundle it came from", path, CloudOf(w.Cloud), CloudOf(bundle.Cloud))
		case w.KeyId != bundle.KeyId || w.PublicKeySha256 != bundle.PublicKeySha256 || !bytes.Equal(w.ImportToken, bundle.ImportToken):
			return nil, invalid("%s does not belong to the bundle: key, public key or import token differ", path)
		}
	}
	return &w, nil
}

// Upload imports wrapped material prepared offline, links the KMS key to
// the HSM key with tags, and checks KMS against the HSM's evidence.
func Upload(ctx context.Context, im *Importer, w *Wrapped, expiry Expiry, now time.Time) (*Result, error) {
	im.Now = func() time.Time { return now }
	spec, _ := ParseKeySpec(w.KeySpec)
	id, err := hex.DecodeString(w.HSMKey.KeyID)
	if err != nil {
		return nil, invalid("HsmKey.KeyId %q is not hex: use the file kmsbridge wrote, unedited", Excerpt(w.HSMKey.KeyID))
	}
	r := &run{im: im, req: &Request{
		KMSKeyID: w.KeyId, KeyID: id, KeySpec: w.KeySpec, WrappingAlgorithm: w.WrappingAlgorithm,
		WrappingKeySpec: types.WrappingKeySpec(w.WrappingKeySpec), Expiry: expiry,
	}, res: &Result{Origin: string(types.OriginTypeExternal), HSM: w.HSMKey, Warnings: w.Warnings}}
	r.key = &hsm.Key{Label: w.HSMKey.KeyLabel, ID: id}
	r.res.HSM.Token = w.Token
	r.token, r.wrapped = w.ImportToken, w.EncryptedKeyMaterial
	r.res.WrappingAlgorithm, r.res.WrappingPublicKeySHA256, r.res.EncryptedKeyMaterialSHA256 = w.WrappingAlgorithm, w.PublicKeySha256, w.EncryptedKeyMaterialSha256
	r.res.ParametersValidTo = w.ParametersValidTo
	err = r.runSteps(ctx, []step{
		{StepValidate, func(context.Context) (string, error) {
			if _, err := r.validate(ctx); err != nil {
				return "", err
			}
			if !now.Before(w.ParametersValidTo) {
				return "", invalid("the import parameters in the wrapped file expired at %s: run prepare --kms-key-id %s and wrap again", w.ParametersValidTo.UTC().Format(time.RFC3339), w.KeyId)
			}
			return "wrapped file and expiry are consistent", nil
		}, false},
		{StepCheckKMS, r.checkKMS, false},
		// The link tags go on only after KMS accepted the material, so a
		// refused import leaves the KMS key as prepare made it.
		{StepImport, func(ctx context.Context) (string, error) {
			if r.existing != nil {
				r.res.KeyId, r.res.Arn = aws.ToString(r.existing.KeyId), aws.ToString(r.existing.Arn)
			}
			// The material goes to the endpoint that passed the policy
			// for the KMS key check just before; the result names it.
			if l, ok := im.KMS.(Located); ok {
				ep := l.Endpoint()
				r.res.KMSEndpoint = &ep
			}
			return r.importMaterial(ctx)
		}, false},
		{StepCreateKey, r.createKey, false}, // existing key: adds the link tags
		{StepVerify, r.verifyUpload(w, spec), false},
	})
	return r.res, err
}

// isSHA256Hex reports whether s is 64 lowercase hex digits.
func isSHA256Hex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == 64 && strings.ToLower(s) == s
}

// ReadBundleForPairing reads a bundle only to check a wrapped file belongs
// to it: its parameters may have expired since, which does not matter for
// pairing. It returns the bundle and the SHA-256 of the file.
func ReadBundleForPairing(path string) (*Bundle, string, error) {
	var b Bundle
	raw, err := readStrict("--bundle", path, &b)
	if err != nil {
		return nil, "", err
	}
	if err := checkBundleFormat(path, &b); err != nil {
		return nil, "", err
	}
	return &b, sha256Hex(raw), nil
}

// StepEvidence gathers the HSM's evidence in the wrap.
const StepEvidence = "gather-evidence"

// StepApproval checks, under dual control, that the Security Officer has
// approved the bundle's wrapping key, before any key is generated.
const StepApproval = "check-approval"

func (r *run) checkApproval(b *Bundle) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		if r.req.WrapWithTrusted && r.key != nil && !r.key.WrapWithTrusted {
			// The token would wrap this key under anything: asking for dual
			// control would only promise it.
			return "", invalid("--wrap-with-trusted: HSM key %q (CKA_ID %s) has CKA_WRAP_WITH_TRUSTED=false, so the token does not hold it to the Security Officer's approval and dual control would be a promise it does not keep; wrap a key generated with --generate --wrap-with-trusted, or drop --wrap-with-trusted to wrap this one without dual control", r.key.Label, r.key.IDHex())
		}
		if !r.dualControl() {
			return "no dual control: the wrapping key needs no approval", nil
		}
		pub, err := ParseWrappingPublicKey(b.PublicKey, types.WrappingKeySpec(b.WrappingKeySpec))
		if err != nil {
			return "", err
		}
		a, err := r.im.Token.Approval(pub)
		if err != nil {
			return "", err
		}
		label := r.req.KeyLabel
		if r.key != nil {
			label = r.key.Label
		}
		switch {
		case a == nil:
			return "", fmt.Errorf("%w: dual control: the token wraps this key only under a wrapping key its Security Officer approved, and the bundle's (SHA-256 %s) is not approved; the SO must run kmsbridge approve --bundle FILE --key-label %s first (an approval covers one wrap and ends with it)", hsm.ErrNotApproved, b.PublicKeySha256, label)
		case a.KeyLabel != label:
			return "", fmt.Errorf("%w: dual control: the Security Officer approved wrapping key %s for the wrap of HSM key %q, not of %q (an approval covers one wrap of one named key); the SO must run kmsbridge approve --revoke --bundle FILE, then approve again with --key-label %s", hsm.ErrNotApproved, b.PublicKeySha256, a.KeyLabel, label, label)
		}
		if why := a.Usable(time.Now()); why != "" {
			return "", fmt.Errorf("%w: dual control: the Security Officer's approval of wrapping key %s for HSM key %q cannot be used: %s; nothing was wrapped. The SO must run kmsbridge approve --bundle FILE --key-label %s again (it replaces the expired approval; --valid-for sets how long the new one lasts)", hsm.ErrNotApproved, b.PublicKeySha256, label, why, label)
		}
		return fmt.Sprintf("the Security Officer approved wrapping key %s for HSM key %q, until %s", b.PublicKeySha256, label, a.Expires.Format(time.RFC3339)), nil
	}
}

// EndApproval ends the Security Officer's approval of the bundle's
// wrapping key, once the wrapped file is written: an approval covers one
// wrap. It reports whether there was one to end; ending none is not an
// error, so a re-run after a crash ends it exactly once.
func EndApproval(tok Token, b *Bundle) (bool, error) {
	pub, err := ParseWrappingPublicKey(b.PublicKey, types.WrappingKeySpec(b.WrappingKeySpec))
	if err != nil {
		return false, err
	}
	return tok.EndApproval(pub)
}

// probeBundle is the probe of a bundle's wrap. The bundle fixes the
// wrapping algorithm (KMS bound its import token to it), so when the token
// cannot do it the way out is a new bundle, not a flag of wrap: the
// advice says so.
func (r *run) probeBundle(ctx context.Context) (string, error) {
	msg, err := r.probe(ctx)
	if err != nil && errors.Is(err, ErrInvalidInput) {
		return "", fmt.Errorf("%w; the bundle fixes the wrapping algorithm, so run kmsbridge prepare again on the online host with --wrapping-algorithm set to one this token can do (kmsbridge doctor on this host lists them), then wrap the new bundle; nothing was changed", err)
	}
	return msg, err
}
