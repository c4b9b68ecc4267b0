package aws

import (
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
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

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
func Prepare(ctx context.Context, im *Importer, req PrepareRequest, now time.Time) (*kmsimport.Bundle, error) {
	im.Now = func() time.Time { return now }
	r := &run{im: im, req: &Request{
		KMSKeyID: req.KMSKeyID, KeySpec: req.KeySpec, KeyUsage: req.KeyUsage, Alias: req.Alias,
		Description: req.Description, Tags: req.Tags, WrappingAlgorithm: req.WrappingAlgorithm,
		WrappingKeySpec: req.WrappingKeySpec, Generate: true, KeyLabel: "-", Expiry: Expiry{NoExpiry: true},
	}, res: &Result{Origin: string(types.OriginTypeExternal)}}
	do := func(name string, fn func(context.Context) (string, error)) error {
		return r.runSteps(ctx, []kmsimport.Step{{Name: name, Run: fn}})
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
	return &kmsimport.Bundle{
		Format: kmsimport.BundleFormat, Cloud: kmsimport.CloudAWS, KeyId: r.res.KeyId, Arn: r.res.Arn, Region: req.Region,
		KeySpec: string(r.spec.Name), KeyUsage: string(r.usage),
		WrappingAlgorithm: string(r.wrapping.Algorithm), WrappingKeySpec: string(r.req.WrappingKeySpec),
		PublicKey: r.pubDER, PublicKeySha256: kmsimport.Fingerprint(r.pubDER),
		ImportToken: r.token, ImportTokenSha256: kmsimport.SHA256Hex(r.token),
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
		return "", fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	r.logInfo("taking up the KMS key an earlier prepare with the same flags created but wrote no bundle for", "kmsKeyId", id, "attempt", in.Attempt)
	return id, nil
}

// WriteBundle writes b to a new file, mode 0600.
func WriteBundle(path string, b *kmsimport.Bundle) error { return kmsimport.WriteNewFile(path, b) }

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
func WrapBundle(im *Importer, b *kmsimport.Bundle, bundleSHA256 string, req WrapRequest, now time.Time) (*kmsimport.Wrapped, error) {
	im.Now = func() time.Time { return now }
	tok := im.Token
	r := &run{im: im, req: &Request{
		KeyLabel: req.KeyLabel, KeyID: req.KeyID, KeyType: req.KeyType, KeyByURI: req.KeyByURI, Generate: req.Generate, WrapWithTrusted: req.WrapWithTrusted, AllowNonSensitive: req.AllowNonSensitive,
		KeySpec: b.KeySpec, KeyUsage: b.KeyUsage, WrappingAlgorithm: b.WrappingAlgorithm,
		WrappingKeySpec: types.WrappingKeySpec(b.WrappingKeySpec), Expiry: Expiry{NoExpiry: true},
	}, res: &Result{}}
	r.token = b.ImportToken
	var ev kmsimport.Evidence
	err := r.runSteps(context.Background(), []kmsimport.Step{
		{Name: StepValidate, Run: r.validate},
		{Name: StepSelectKey, Run: r.selectKey},
		{Name: StepProbe, Run: r.probeBundle},
		{Name: StepApproval, Run: r.checkApproval(b)},
		{Name: StepGenerate, Run: r.generate, Skip: !req.Generate},
		{Name: StepWrap, Run: r.wrapBundle(b)},
		{Name: StepEvidence, Run: func(context.Context) (string, error) {
			var err error
			ev, err = GatherEvidence(tok, r.key, r.spec)
			return "gathered the HSM's evidence for the upload's proof", err
		}},
	})
	if err != nil {
		return nil, err
	}
	return &kmsimport.Wrapped{
		Format: kmsimport.WrappedFormat, Cloud: kmsimport.CloudAWS, BundleSha256: bundleSHA256,
		KeyId: b.KeyId, Arn: b.Arn, Region: b.Region, KeySpec: b.KeySpec,
		WrappingAlgorithm: b.WrappingAlgorithm, WrappingKeySpec: b.WrappingKeySpec, PublicKeySha256: b.PublicKeySha256,
		ImportToken: b.ImportToken, ImportTokenSha256: b.ImportTokenSha256, ParametersValidTo: b.ParametersValidTo,
		EncryptedKeyMaterial: r.wrapped, EncryptedKeyMaterialSha256: kmsimport.SHA256Hex(r.wrapped),
		Token: r.res.HSM.Token, HSMKey: r.res.HSM, Evidence: ev, Warnings: r.res.Warnings, WrappedAt: now.UTC(),
	}, nil
}

// wrapBundle is the wrap step with the bundle's public key.
func (r *run) wrapBundle(b *kmsimport.Bundle) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		pub, err := kmsimport.ParseWrappingPublicKey(b.PublicKey, kmsimport.WrappingKeySpec(b.WrappingKeySpec))
		if err != nil {
			return "", err
		}
		r.pub = pub
		return r.wrap(ctx)
	}
}

// WriteWrapped writes w to a new file, mode 0600.
func WriteWrapped(path string, w *kmsimport.Wrapped) error { return kmsimport.WriteNewFile(path, w) }

// Upload imports wrapped material prepared offline, links the KMS key to
// the HSM key with tags, and checks KMS against the HSM's evidence.
func Upload(ctx context.Context, im *Importer, w *kmsimport.Wrapped, expiry Expiry, now time.Time) (*Result, error) {
	im.Now = func() time.Time { return now }
	spec, _ := ParseKeySpec(w.KeySpec)
	id, err := hex.DecodeString(w.HSMKey.KeyID)
	if err != nil {
		return nil, invalid("HsmKey.KeyId %q is not hex: use the file kmsbridge wrote, unedited", kmsimport.Excerpt(w.HSMKey.KeyID))
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
	err = r.runSteps(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: func(context.Context) (string, error) {
			if _, err := r.validate(ctx); err != nil {
				return "", err
			}
			if !now.Before(w.ParametersValidTo) {
				return "", invalid("the import parameters in the wrapped file expired at %s: run prepare --kms-key-id %s and wrap again", w.ParametersValidTo.UTC().Format(time.RFC3339), w.KeyId)
			}
			return "wrapped file and expiry are consistent", nil
		}},
		{Name: StepCheckKMS, Run: r.checkKMS},
		// The link tags go on only after KMS accepted the material, so a
		// refused import leaves the KMS key as prepare made it.
		{Name: StepImport, Run: func(ctx context.Context) (string, error) {
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
		}},
		{Name: StepCreateKey, Run: r.createKey}, // existing key: adds the link tags
		{Name: StepVerify, Run: r.verifyUpload(w, spec)},
	})
	return r.res, err
}

// ReadBundleForPairing reads a bundle only to check a wrapped file belongs
// to it: its parameters may have expired since, which does not matter for
// pairing. It returns the bundle and the SHA-256 of the file.
func ReadBundleForPairing(path string) (*kmsimport.Bundle, string, error) {
	var b kmsimport.Bundle
	raw, err := kmsimport.ReadStrict("--bundle", path, &b)
	if err != nil {
		return nil, "", err
	}
	if err := kmsimport.CheckBundleFormat(path, &b); err != nil {
		return nil, "", err
	}
	return &b, kmsimport.SHA256Hex(raw), nil
}

// StepEvidence gathers the HSM's evidence in the wrap.
const StepEvidence = "gather-evidence"

// StepApproval checks, under dual control, that the Security Officer has
// approved the bundle's wrapping key, before any key is generated.
const StepApproval = "check-approval"

func (r *run) checkApproval(b *kmsimport.Bundle) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		if r.req.WrapWithTrusted && r.key != nil && !r.key.WrapWithTrusted {
			// The token would wrap this key under anything: asking for dual
			// control would only promise it.
			return "", invalid("--wrap-with-trusted: HSM key %q (CKA_ID %s) has CKA_WRAP_WITH_TRUSTED=false, so the token does not hold it to the Security Officer's approval and dual control would be a promise it does not keep; wrap a key generated with --generate --wrap-with-trusted, or drop --wrap-with-trusted to wrap this one without dual control", r.key.Label, r.key.IDHex())
		}
		if !r.dualControl() {
			return "no dual control: the wrapping key needs no approval", nil
		}
		pub, err := kmsimport.ParseWrappingPublicKey(b.PublicKey, kmsimport.WrappingKeySpec(b.WrappingKeySpec))
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
func EndApproval(tok kmsimport.Token, b *kmsimport.Bundle) (bool, error) {
	pub, err := kmsimport.ParseWrappingPublicKey(b.PublicKey, kmsimport.WrappingKeySpec(b.WrappingKeySpec))
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
	if err != nil && errors.Is(err, kmsimport.ErrInvalidInput) {
		return "", fmt.Errorf("%w; the bundle fixes the wrapping algorithm, so run kmsbridge prepare again on the online host with --wrapping-algorithm set to one this token can do (kmsbridge doctor on this host lists them), then wrap the new bundle; nothing was changed", err)
	}
	return msg, err
}
