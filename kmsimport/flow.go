package kmsimport

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// Token is what the import flow needs from an HSM token. *hsm.Token
// satisfies it; every method runs inside the token and none returns key
// material in the clear.
type Token interface {
	Identity() hsm.TokenIdentity
	Quirks() hsm.Quirks
	FindKey(hsm.KeySelector, hsm.KeyParams) (*hsm.Key, error)
	Generate(label string, p hsm.KeyParams, wrapWithTrusted bool) (*hsm.Key, error)
	LabelInUse(label string) (bool, error)
	ProbeOAEP(hsm.OAEPHash) error
	ProbeRSAAES(hsm.OAEPHash) error
	WrapOAEP(key *hsm.Key, pub *rsa.PublicKey, h hsm.OAEPHash) ([]byte, error)
	WrapRSAAES(key *hsm.Key, pub *rsa.PublicKey, h hsm.OAEPHash) ([]byte, error)
	NativeRSAAES(h hsm.OAEPHash) (bool, string)
	IsApproved(pub *rsa.PublicKey) (bool, error)
	HMAC(key *hsm.Key, h crypto.Hash, msg []byte) ([]byte, error)
	PublicKeyDER(key *hsm.Key) ([]byte, error)
}

var _ Token = (*hsm.Token)(nil)

// Tag keys that link a KMS key to its HSM master copy, so each side can be
// found from the other.
const (
	TagHSMKeyID    = "kmsbridge:hsm-key-id"
	TagHSMKeyLabel = "kmsbridge:hsm-key-label"
	TagTokenSerial = "kmsbridge:token-serial"
	TagTokenLabel  = "kmsbridge:token-label"
)

// Request is one import, as the user asked for it.
type Request struct {
	// The HSM key: found by KeyLabel or KeyID, or generated with KeyLabel.
	KeyLabel string
	KeyID    []byte
	Generate bool
	// WrapWithTrusted gives a generated key CKA_WRAP_WITH_TRUSTED=true.
	WrapWithTrusted bool

	// KeySpec is the KMS key spec name; empty means SYMMETRIC_DEFAULT for a
	// generated key, and the spec the HSM key's type implies otherwise.
	KeySpec string
	// KeyUsage is the KMS key usage; empty means the spec's default.
	KeyUsage string

	// KMSKeyID names an existing EXTERNAL key; empty creates a new one.
	KMSKeyID    string
	Alias       string
	Description string
	Tags        []types.Tag

	// WrappingAlgorithm is a KMS AlgorithmSpec name; empty picks the
	// strongest the token can do.
	WrappingAlgorithm string
	WrappingKeySpec   types.WrappingKeySpec
	Expiry            Expiry
}

var aliasRE = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]{1,250}$`)

// Validate checks the request on its own, before any token or KMS call.
func (r *Request) Validate(now time.Time) error {
	switch {
	case r.Generate && r.KeyLabel == "":
		return invalid("--generate needs --key-label: the label the new HSM key gets")
	case r.Generate && len(r.KeyID) > 0:
		return invalid("--generate chooses a random CKA_ID itself: drop --hsm-key-id, or drop --generate to use that existing key")
	case !r.Generate && r.KeyLabel == "" && len(r.KeyID) == 0:
		return invalid("no HSM key chosen: give --key-label (or --hsm-key-id HEX) of an existing key, or add --generate to make a new one")
	case !r.Generate && r.KeyLabel != "" && len(r.KeyID) > 0:
		return invalid("give either --key-label or --hsm-key-id, not both")
	}
	if r.Alias != "" {
		if !aliasRE.MatchString(r.Alias) {
			return invalid("--alias %q is not a KMS alias name: it must start with alias/ and use only letters, digits, / _ -", r.Alias)
		}
		if strings.HasPrefix(r.Alias, "alias/aws/") {
			return invalid("--alias %q: names under alias/aws/ are reserved for AWS managed keys", r.Alias)
		}
	}
	wks, err := ParseWrappingKeySpec(string(r.WrappingKeySpec))
	if err != nil {
		return err
	}
	var w Wrapping
	if r.WrappingAlgorithm != "" {
		if w, err = ParseWrappingAlgorithm(r.WrappingAlgorithm); err != nil {
			return err
		}
	}
	if r.KeySpec != "" || r.Generate {
		spec := KeySpecs[0]
		if r.KeySpec != "" {
			if spec, err = ParseKeySpec(r.KeySpec); err != nil {
				return err
			}
		}
		if _, err := spec.Usage(r.KeyUsage); err != nil {
			return err
		}
		if r.WrappingAlgorithm != "" {
			if err := CheckWrapping(spec, w, wks); err != nil {
				return err
			}
		}
	}
	for _, t := range r.Tags {
		if strings.HasPrefix(aws.ToString(t.TagKey), "kmsbridge:") {
			return invalid("tag %q: tag keys beginning kmsbridge: are set by kmsbridge itself", aws.ToString(t.TagKey))
		}
	}
	return r.Expiry.Validate(now)
}

// Importer runs the import flow against one token and one KMS endpoint.
type Importer struct {
	KMS   API
	Token Token
	// Log receives one Info line per step; nil discards.
	Log *slog.Logger
	// Observe, when set, hears of every step as it completes or fails.
	Observe func(StepEvent)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

// run is the state of one import as it proceeds; each step reads what
// earlier steps left and adds its own, and the whole is the Result.
type run struct {
	im       *Importer
	req      *Request
	res      *Result
	key      *hsm.Key
	spec     KeySpec
	usage    types.KeyUsageType
	quirks   hsm.Quirks
	wrapping Wrapping
	pub      *rsa.PublicKey
	pubDER   []byte
	token    []byte
	wrapped  []byte
	// existing is the KMS key's metadata when importing into an existing key.
	existing *types.KeyMetadata
	// aliasTarget is the key id the alias already points to, if it exists.
	aliasTarget string
}

// Steps, in order. Their names appear in logs, errors and the Result.
const (
	StepValidate      = "validate"
	StepSelectKey     = "select-hsm-key"
	StepProbe         = "probe-wrapping"
	StepCheckKMS      = "check-kms"
	StepGenerate      = "generate-hsm-key"
	StepCreateKey     = "create-kms-key"
	StepGetParameters = "get-parameters"
	StepWrap          = "wrap"
	StepImport        = "import"
	StepAlias         = "alias"
	StepVerify        = "verify"
)

// Run imports the HSM key's material into KMS and verifies the KMS key
// works. Every check that can fail without changing anything runs before
// the first change. When a later step fails, the *StepError says what
// exists now and the command that finishes the job.
func (im *Importer) Run(ctx context.Context, req Request) (*Result, error) {
	r := &run{im: im, req: &req, res: &Result{Origin: string(types.OriginTypeExternal)}}
	err := r.runSteps(ctx, []step{
		{StepValidate, r.validate, false},
		{StepSelectKey, r.selectKey, false},
		{StepApproval, r.refuseDualControl, false},
		{StepProbe, r.probe, false},
		{StepCheckKMS, r.checkKMS, false},
		{StepGenerate, r.generate, !req.Generate},
		{StepCreateKey, r.createKey, false},
		{StepGetParameters, r.getParameters, false},
		{StepWrap, r.wrap, false},
		{StepImport, r.importMaterial, false},
		{StepAlias, r.alias, req.Alias == ""},
		{StepVerify, r.verify, false},
	})
	return r.res, err
}

// step is one named step of a flow.
type step struct {
	name string
	fn   func(context.Context) (string, error)
	skip bool
}

// runSteps runs steps in order until one fails, reporting each as it
// completes or fails, so a record shows every step even if the process is
// killed later.
func (r *run) runSteps(ctx context.Context, steps []step) error {
	for _, s := range steps {
		if s.skip {
			continue
		}
		summary, err := s.fn(ctx)
		if err != nil {
			err = r.fail(s.name, err)
			r.emit(s.name, "", err)
			return err
		}
		r.res.Steps = append(r.res.Steps, StepRecord{Name: s.name, Summary: summary, Time: r.im.now().UTC()})
		r.emit(s.name, summary, nil)
	}
	return nil
}

// StepEvent is one step completed or failed, with every identity and
// digest the flow knows at that point (never a secret), for a ceremony
// record.
type StepEvent struct {
	Step    string
	Summary string
	Err     error
	Facts   map[string]string
	Token   *hsm.TokenIdentity
}

func (r *run) emit(step, summary string, err error) {
	if r.im.Log != nil {
		if err != nil {
			r.im.Log.Error("step failed", "step", step)
		} else {
			r.im.Log.Info(summary, "step", step)
		}
	}
	if r.im.Observe != nil {
		ev := StepEvent{Step: step, Summary: summary, Err: err, Facts: r.facts()}
		if r.res.HSM.Token.Serial != "" || r.res.HSM.Token.Label != "" {
			tok := r.res.HSM.Token
			ev.Token = &tok
		}
		r.im.Observe(ev)
	}
}

// facts lists what the flow has established so far, by identity and digest.
func (r *run) facts() map[string]string {
	f := map[string]string{}
	add := func(k, v string) {
		if v != "" {
			f[k] = v
		}
	}
	res := r.res
	add("KmsKeyId", res.KeyId)
	add("KmsKeyArn", res.Arn)
	add("AliasName", res.AliasName)
	add("KeySpec", res.KeySpec)
	add("KeyUsage", res.KeyUsage)
	add("WrappingAlgorithm", res.WrappingAlgorithm)
	add("WrappingKeySpec", res.WrappingKeySpec)
	add("WrappingPublicKeySha256", res.WrappingPublicKeySHA256)
	if len(r.token) > 0 {
		add("ImportTokenSha256", sha256Hex(r.token))
	}
	add("EncryptedKeyMaterialSha256", res.EncryptedKeyMaterialSHA256)
	add("KeyMaterialId", res.KeyMaterialId)
	add("ExpirationModel", res.ExpirationModel)
	if res.ValidTo != nil {
		add("ValidTo", res.ValidTo.Format(time.RFC3339))
	}
	add("HsmKeyLabel", res.HSM.KeyLabel)
	add("HsmKeyId", res.HSM.KeyID)
	add("HsmKeyCheckValue", res.HSM.KeyCheckValue)
	if res.Verification.Summary != "" {
		add("VerificationSummary", res.Verification.Summary)
		add("KmsConfirmedHsmKey", strconv.FormatBool(res.Verification.MaterialConfirmed))
	}
	return f
}

func (r *run) validate(context.Context) (string, error) {
	if r.req.WrappingKeySpec == "" {
		r.req.WrappingKeySpec = types.WrappingKeySpecRsa4096
	}
	if err := r.req.Validate(r.im.now()); err != nil {
		return "", err
	}
	r.res.ExpirationModel = string(r.req.Expiry.Model())
	if !r.req.Expiry.NoExpiry {
		v := r.req.Expiry.ValidTo.UTC()
		r.res.ValidTo = &v
	}
	r.res.WrappingKeySpec = string(r.req.WrappingKeySpec)
	if r.req.KeySpec != "" || r.req.Generate {
		spec := KeySpecs[0]
		if r.req.KeySpec != "" {
			spec, _ = ParseKeySpec(r.req.KeySpec)
		}
		r.setSpec(spec)
	}
	return "request is complete and consistent", nil
}

func (r *run) selectKey(context.Context) (string, error) {
	tok := r.im.Token.Identity()
	r.res.HSM.Token = tok
	r.quirks = r.im.Token.Quirks()
	if r.req.Generate {
		if r.spec.HSM.KeyType == pkcs11.CKK_EC && r.spec.HSM.Curve.Name == hsm.Secp256k1.Name && r.quirks.NoSecp256k1 {
			return "", fmt.Errorf("%w: token %q (%s) cannot generate secp256k1 keys, so it cannot hold %s material: use another HSM", hsm.ErrUnsuitableKey, tok.Label, r.quirks.Name, r.spec.Name)
		}
		if r.req.WrapWithTrusted && r.quirks.IgnoresWrapWithTrusted {
			return "", fmt.Errorf("%w: token %q (%s) does not enforce CKA_WRAP_WITH_TRUSTED: it wraps such keys under any key, so dual control would be a promise the token does not keep; use an HSM that enforces it", hsm.ErrUnsuitableKey, tok.Label, r.quirks.Name)
		}
		inUse, err := r.im.Token.LabelInUse(r.req.KeyLabel)
		if err != nil {
			return "", err
		}
		if inUse {
			return "", fmt.Errorf("%w: token %q already has an object labelled %q: choose a new --key-label, or drop --generate to import that existing key", hsm.ErrLabelExists, tok.Label, r.req.KeyLabel)
		}
		return fmt.Sprintf("label %q is free in token %q (serial %s)", r.req.KeyLabel, tok.Label, tok.Serial), nil
	}
	sel := hsm.KeySelector{Label: r.req.KeyLabel, ID: r.req.KeyID}
	k, err := r.findKey(sel)
	if err != nil {
		return "", err
	}
	if r.spec.Name == "" {
		spec, ok := SpecOfHSMKey(k)
		if !ok {
			return "", fmt.Errorf("%w: HSM key %q is not the material of any KMS key spec (%s)", hsm.ErrUnsuitableKey, k.Label, specNames())
		}
		if _, err := spec.Usage(r.req.KeyUsage); err != nil {
			return "", err
		}
		r.setSpec(spec)
	}
	if err := hsm.CheckForImport(k, r.spec.HSM); err != nil {
		return "", err
	}
	r.setKey(k, false)
	return fmt.Sprintf("found HSM key %q (CKA_ID %s, %s) in token %q", k.Label, k.IDHex(), r.spec.HSM, tok.Label), nil
}

// findKey finds the key sel names: the secret key of a secret spec, the
// private key of a pair; with no spec yet, whichever exists.
func (r *run) findKey(sel hsm.KeySelector) (*hsm.Key, error) {
	if r.spec.Name != "" {
		return r.im.Token.FindKey(sel, r.spec.HSM)
	}
	k, err := r.im.Token.FindKey(sel, hsm.AES256())
	if errors.Is(err, hsm.ErrKeyNotFound) {
		k, err = r.im.Token.FindKey(sel, hsm.RSAKey(0))
		if errors.Is(err, hsm.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: no secret or private key with %s in token %q: check the label or CKA_ID, or create it with --generate", hsm.ErrKeyNotFound, sel, r.res.HSM.Token.Label)
		}
	}
	return k, err
}
func (r *run) setKey(k *hsm.Key, generated bool) {
	r.key = k
	r.res.HSM.KeyLabel = k.Label
	r.res.HSM.KeyID = k.IDHex()
	r.res.HSM.KeyCheckValue = k.CheckValueHex()
	r.res.HSM.Generated = generated
}

func (r *run) probe(context.Context) (string, error) {
	if r.req.WrappingAlgorithm != "" {
		w, _ := ParseWrappingAlgorithm(r.req.WrappingAlgorithm)
		if err := CheckWrapping(r.spec, w, r.req.WrappingKeySpec); err != nil {
			return "", err
		}
		if err := r.tokenCan(w); err != nil {
			if !errors.Is(err, hsm.ErrWrapUnsupported) {
				return "", err
			}
			return "", fmt.Errorf("%w: %v, so it cannot do --wrapping-algorithm %s for %s; %s", ErrInvalidInput, err, w.Algorithm, r.spec.Name, r.alternatives(w))
		}
		r.useWrapping(w)
		return fmt.Sprintf("token can wrap %s material with %s, as asked", r.spec.Name, w.Algorithm), nil
	}
	var refused []string
	for _, w := range ValidWrappings(r.spec, r.req.WrappingKeySpec) {
		err := r.tokenCan(w)
		if err == nil {
			r.useWrapping(w)
			msg := fmt.Sprintf("using %s, the strongest wrapping algorithm KMS accepts for %s that the token supports", w.Algorithm, r.spec.Name)
			if len(refused) > 0 {
				msg += ": " + strings.Join(refused, "; ")
				r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("used %s: %s", w.Algorithm, strings.Join(refused, "; ")))
			}
			return msg, nil
		}
		if !errors.Is(err, hsm.ErrWrapUnsupported) {
			return "", err
		}
		refused = append(refused, fmt.Sprintf("no %s, because %v", w.Algorithm, err))
	}
	return "", fmt.Errorf("%w: token %q can wrap %s material with none of the algorithms KMS accepts for it under %s: %s", ErrInvalidInput, r.res.HSM.Token.Label, r.spec.Name, r.req.WrappingKeySpec, strings.Join(refused, "; "))
}

// useWrapping records the chosen wrapping, with the warning a token that
// pads before RFC 5649 deserves.
func (r *run) useWrapping(w Wrapping) {
	r.wrapping = w
	r.res.WrappingAlgorithm = string(w.Algorithm)
	if w.RSAAES {
		if native, why := r.im.Token.NativeRSAAES(w.OAEP); !native && strings.Contains(why, "lists CKM_RSA_AES_KEY_WRAP") {
			r.res.Warnings = append(r.res.Warnings, why)
		}
	}
	if w.RSAAES && !r.spec.Secret() && r.quirks.PadsToBlock {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s zero-pads the PKCS#8 of a private key to a multiple of 8 bytes before its RFC 5649 wrap, so KMS receives the DER followed by up to 7 zero bytes; strict parsers reject that, and whether KMS does is not known: prefer an HSM without this quirk for production keys", r.quirks.Name))
	}
}

func (r *run) alternatives(not Wrapping) string {
	var alts []string
	for _, w := range ValidWrappings(r.spec, r.req.WrappingKeySpec) {
		if w != not && r.tokenCan(w) == nil {
			alts = append(alts, string(w.Algorithm))
		}
	}
	if len(alts) == 0 {
		return "the token supports none of the other algorithms KMS accepts for it either"
	}
	return "choose " + strings.Join(alts, " or ") + ", which it supports"
}

// checkKMS proves the endpoint and credentials work and that the KMS side
// can take the import, before anything is created.
func (r *run) checkKMS(ctx context.Context) (string, error) {
	if r.req.Alias != "" {
		target, err := r.findAlias(ctx, r.req.Alias)
		if err != nil {
			return "", err
		}
		r.aliasTarget = target
	} else {
		// A cheap read that fails now, not after the HSM key is made, when
		// the endpoint, region or credentials are wrong.
		if _, err := r.im.KMS.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(1)}); err != nil {
			return "", explain("ListAliases", err)
		}
	}
	if r.req.KMSKeyID == "" {
		if r.aliasTarget != "" {
			return "", invalid("alias %s already points to KMS key %s: import into that key with --kms-key-id %s, or choose another --alias", r.req.Alias, r.aliasTarget, r.aliasTarget)
		}
		return "KMS is reachable; a new EXTERNAL key will be created", nil
	}
	out, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(r.req.KMSKeyID)})
	if err != nil {
		return "", explain("DescribeKey", err)
	}
	md := out.KeyMetadata
	r.existing = md
	id := aws.ToString(md.KeyId)
	switch {
	case md.Origin != types.OriginTypeExternal:
		return "", invalid("KMS key %s has origin %s, not EXTERNAL: KMS only accepts imported material into keys created with origin EXTERNAL; leave out --kms-key-id to create one", id, md.Origin)
	case md.KeySpec != r.spec.Name:
		return "", invalid("KMS key %s has key spec %s, but the HSM key is %s material (%s): choose the KMS key and HSM key that belong together", id, md.KeySpec, r.spec.Name, r.spec.HSM)
	case md.KeyState != types.KeyStatePendingImport && md.KeyState != types.KeyStateEnabled:
		return "", invalid("KMS key %s is %s: it accepts material only when PendingImport or Enabled (a key pending deletion must first be restored with aws kms cancel-key-deletion)", id, md.KeyState)
	case r.aliasTarget != "" && r.aliasTarget != id:
		return "", invalid("alias %s points to another KMS key (%s), not %s: choose another --alias", r.req.Alias, r.aliasTarget, id)
	}
	if err := r.checkLink(ctx, md); err != nil {
		return "", err
	}
	return fmt.Sprintf("KMS key %s is EXTERNAL, %s, and can take the material", id, md.KeyState), nil
}

// findAlias returns the key id alias points to, or "" when it is free.
func (r *run) findAlias(ctx context.Context, alias string) (string, error) {
	p := kms.NewListAliasesPaginator(r.im.KMS, &kms.ListAliasesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", explain("ListAliases", err)
		}
		for _, a := range page.Aliases {
			if aws.ToString(a.AliasName) == alias {
				return aws.ToString(a.TargetKeyId), nil
			}
		}
	}
	return "", nil
}

// checkLink refuses an import into a KMS key that kmsbridge tagged as the
// copy of another HSM key: KMS would refuse the material anyway, after the
// wrap, with a less helpful message.
func (r *run) checkLink(ctx context.Context, md *types.KeyMetadata) error {
	keyID := aws.ToString(md.KeyId)
	tags, err := r.listTags(ctx, keyID)
	if err != nil {
		return err
	}
	linked, ok := tags[TagHSMKeyID]
	if r.req.Generate {
		// A key that once held material only ever accepts that material.
		if ok {
			return invalid("KMS key %s already holds material from HSM key CKA_ID %s (label %q, token serial %s): a newly generated key can never be imported into it; import that HSM key with --hsm-key-id %s, or leave out --kms-key-id to create a new KMS key",
				keyID, linked, tags[TagHSMKeyLabel], tags[TagTokenSerial], linked)
		}
		if md.KeyState == types.KeyStateEnabled {
			return invalid("KMS key %s already holds imported material: a newly generated key can never be imported into it; drop --generate and choose the HSM key it came from, or leave out --kms-key-id", keyID)
		}
		return nil
	}
	if !ok || r.key == nil || linked == r.key.IDHex() {
		return nil
	}
	return invalid("KMS key %s holds material from HSM key CKA_ID %s (label %q, token serial %s), not from the chosen HSM key %q (CKA_ID %s): KMS only re-accepts the same material; choose --hsm-key-id %s",
		keyID, linked, tags[TagHSMKeyLabel], tags[TagTokenSerial], r.key.Label, r.key.IDHex(), linked)
}

func (r *run) listTags(ctx context.Context, keyID string) (map[string]string, error) {
	tags := map[string]string{}
	p := kms.NewListResourceTagsPaginator(r.im.KMS, &kms.ListResourceTagsInput{KeyId: aws.String(keyID)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, explain("ListResourceTags", err)
		}
		for _, t := range page.Tags {
			tags[aws.ToString(t.TagKey)] = aws.ToString(t.TagValue)
		}
	}
	return tags, nil
}

func (r *run) generate(context.Context) (string, error) {
	k, err := r.im.Token.Generate(r.req.KeyLabel, r.spec.HSM, r.req.WrapWithTrusted)
	if err != nil {
		return "", err
	}
	r.setKey(k, true)
	return fmt.Sprintf("generated %s key %q (CKA_ID %s) in token %q: sensitive, extractable only by wrapping", r.spec.HSM, k.Label, k.IDHex(), r.res.HSM.Token.Label), nil
}

// linkTags are the tags that link the KMS key to the HSM key.
func (r *run) linkTags() []types.Tag {
	tok := r.res.HSM.Token
	return []types.Tag{
		{TagKey: aws.String(TagHSMKeyID), TagValue: aws.String(r.key.IDHex())},
		{TagKey: aws.String(TagHSMKeyLabel), TagValue: aws.String(r.key.Label)},
		{TagKey: aws.String(TagTokenSerial), TagValue: aws.String(tok.Serial)},
		{TagKey: aws.String(TagTokenLabel), TagValue: aws.String(tok.Label)},
	}
}

func (r *run) createKey(ctx context.Context) (string, error) {
	if r.existing != nil {
		id := aws.ToString(r.existing.KeyId)
		r.res.KeyId, r.res.Arn = id, aws.ToString(r.existing.Arn)
		// Existing keys get the link tags too, so both sides can be found
		// from each other whichever way the key was made.
		tags := append(r.linkTags(), r.req.Tags...)
		if _, err := r.im.KMS.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: tags}); err != nil {
			return "", explain("TagResource", err)
		}
		return fmt.Sprintf("using existing KMS key %s; tagged with HSM key CKA_ID %s", id, r.key.IDHex()), nil
	}
	out, err := r.im.KMS.CreateKey(ctx, &kms.CreateKeyInput{
		Origin:      types.OriginTypeExternal,
		KeySpec:     r.spec.Name,
		KeyUsage:    r.usage,
		Description: optional(r.req.Description),
		Tags:        append(r.linkTags(), r.req.Tags...),
	})
	if err != nil {
		return "", explain("CreateKey", err)
	}
	r.res.KeyId, r.res.Arn = aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
	r.res.CreatedKMSKey = true
	return fmt.Sprintf("created KMS key %s (origin EXTERNAL, PendingImport), tagged with HSM key CKA_ID %s", r.res.KeyId, r.key.IDHex()), nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func (r *run) getParameters(ctx context.Context) (string, error) {
	out, err := r.im.KMS.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
		KeyId:             aws.String(r.res.KeyId),
		WrappingAlgorithm: r.wrapping.Algorithm,
		WrappingKeySpec:   r.req.WrappingKeySpec,
	})
	if err != nil {
		return "", explain("GetParametersForImport", err)
	}
	pub, err := ParseWrappingPublicKey(out.PublicKey, r.req.WrappingKeySpec)
	if err != nil {
		return "", err
	}
	r.pub, r.pubDER, r.token = pub, out.PublicKey, out.ImportToken
	r.res.WrappingPublicKeySHA256 = Fingerprint(out.PublicKey)
	if out.ParametersValidTo != nil {
		r.res.ParametersValidTo = out.ParametersValidTo.UTC()
	}
	return fmt.Sprintf("got %s wrapping public key SHA-256 %s and import token, valid until %s", r.req.WrappingKeySpec, r.res.WrappingPublicKeySHA256, r.res.ParametersValidTo.Format(time.RFC3339)), nil
}

// ParseWrappingPublicKey parses the DER SubjectPublicKeyInfo KMS returned
// and checks it is an RSA key of the size spec promises.
func ParseWrappingPublicKey(der []byte, spec types.WrappingKeySpec) (*rsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("KMS wrapping public key is not a DER SubjectPublicKeyInfo: %w", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("KMS wrapping public key is a %T, not RSA", k)
	}
	if want := wrappingKeyBits(spec); pub.N.BitLen() != want {
		return nil, fmt.Errorf("KMS wrapping public key is RSA-%d, but %s was asked for", pub.N.BitLen(), spec)
	}
	return pub, nil
}

// Fingerprint is the lowercase hex SHA-256 of a DER public key, the value
// officers compare when they read it aloud.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func (r *run) wrap(context.Context) (string, error) {
	wrapped, err := r.wrapWith(r.wrapping)
	if err != nil {
		return "", err
	}
	r.wrapped = wrapped
	sum := sha256.Sum256(wrapped)
	r.res.EncryptedKeyMaterialSHA256 = hex.EncodeToString(sum[:])
	return fmt.Sprintf("wrapped HSM key %q inside the token with %s: %d bytes, SHA-256 %s", r.key.Label, r.wrapping.Algorithm, len(wrapped), r.res.EncryptedKeyMaterialSHA256), nil
}

func (r *run) wrapWith(w Wrapping) ([]byte, error) {
	if w.RSAAES {
		return r.im.Token.WrapRSAAES(r.key, r.pub, w.OAEP)
	}
	return r.im.Token.WrapOAEP(r.key, r.pub, w.OAEP)
}
func (r *run) importMaterial(ctx context.Context) (string, error) {
	in := &kms.ImportKeyMaterialInput{
		KeyId:                aws.String(r.res.KeyId),
		ImportToken:          r.token,
		EncryptedKeyMaterial: r.wrapped,
		ExpirationModel:      r.req.Expiry.Model(),
	}
	if !r.req.Expiry.NoExpiry {
		// Whole seconds: KMS keeps no more, and some emulators reject fractions.
		in.ValidTo = aws.Time(r.req.Expiry.ValidTo.Truncate(time.Second))
	}
	out, err := r.im.KMS.ImportKeyMaterial(ctx, in)
	if err != nil {
		return "", explain("ImportKeyMaterial", err)
	}
	r.res.KeyMaterialId = aws.ToString(out.KeyMaterialId)
	exp := "does not expire"
	if r.res.ValidTo != nil {
		exp = "valid to " + r.res.ValidTo.Format(time.RFC3339)
	}
	return fmt.Sprintf("imported into KMS key %s: KeyMaterialId %s, %s", r.res.KeyId, r.res.KeyMaterialId, exp), nil
}

func (r *run) alias(ctx context.Context) (string, error) {
	r.res.AliasName = r.req.Alias
	if r.aliasTarget == r.res.KeyId {
		return fmt.Sprintf("alias %s already points to %s", r.req.Alias, r.res.KeyId), nil
	}
	if _, err := r.im.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(r.req.Alias), TargetKeyId: aws.String(r.res.KeyId)}); err != nil {
		return "", explain("CreateAlias", err)
	}
	return fmt.Sprintf("alias %s now points to %s", r.req.Alias, r.res.KeyId), nil
}

func (r *run) verify(ctx context.Context) (string, error) {
	v, err := Verify(ctx, r.im.KMS, r.im.Token, r.res.KeyId, r.key, r.spec)
	r.res.Verification = v
	r.res.KeyState = v.KeyState
	if err != nil {
		return "", err
	}
	return v.Summary, nil
}

// setSpec fixes the key spec and its usage; Validate has checked the usage.
func (r *run) setSpec(spec KeySpec) {
	r.spec = spec
	r.usage, _ = spec.Usage(r.req.KeyUsage)
	r.res.KeySpec, r.res.KeyUsage = string(spec.Name), string(r.usage)
}

// tokenCan says whether the token can wrap this spec's material with w:
// by what its quirks say, then by a probe inside the token.
func (r *run) tokenCan(w Wrapping) error {
	tok := r.res.HSM.Token.Label
	if r.dualControl() && w.RSAAES {
		return &hsm.UnsupportedError{Token: tok, What: "RSA-AES under dual control", Why: "RSA-AES wraps the key under a one-use AES key, which only the Security Officer could mark trusted, so a key with CKA_WRAP_WITH_TRUSTED can only be wrapped with RSA-OAEP"}
	}
	if !w.RSAAES {
		if !r.spec.Secret() && !r.quirks.OAEPWrapsPrivateKeys {
			return &hsm.UnsupportedError{Token: tok, What: "RSA-OAEP of a private key", Why: r.quirks.Name + " wraps only secret keys with RSA-OAEP"}
		}
		return r.im.Token.ProbeOAEP(w.OAEP)
	}
	if r.spec.Secret() && r.quirks.PadsToBlock && r.spec.HSM.Bytes%8 != 0 {
		return &hsm.UnsupportedError{Token: tok, What: "RSA-AES of a " + strconv.Itoa(r.spec.HSM.Bytes) + "-byte key", Why: r.quirks.Name + " zero-pads it to a multiple of 8 bytes before its RFC 5649 wrap, and KMS would refuse the longer material"}
	}
	return r.im.Token.ProbeRSAAES(w.OAEP)
}

// dualControl reports whether the key is, or will be, wrappable only under
// a wrapping key the Security Officer approved.
func (r *run) dualControl() bool {
	return r.req.WrapWithTrusted || r.key != nil && r.key.WrapWithTrusted
}

// refuseDualControl stops a one-command import of a key under dual
// control: the SO must approve the wrapping key between getting it from KMS
// and the wrap, which is what the split is for.
func (r *run) refuseDualControl(context.Context) (string, error) {
	if r.dualControl() {
		return "", invalid("HSM key %q has CKA_WRAP_WITH_TRUSTED=true (dual control): the Security Officer must approve each KMS wrapping key before the wrap, so use kmsbridge prepare, then approve (as SO) and wrap on the HSM host, then upload", r.key.Label)
	}
	return "no dual control on this key", nil
}

// CheckTokenCan says, without changing anything, whether tok can import
// material of spec as req asks: generate it (when req.Generate) and wrap it
// with req's wrapping algorithm. key is the existing HSM key, or nil. It
// runs the same checks and probes as import.
func CheckTokenCan(tok Token, spec KeySpec, req Request, key *hsm.Key) error {
	r := &run{im: &Importer{Token: tok}, req: &req, res: &Result{}, key: key}
	r.res.HSM.Token = tok.Identity()
	r.quirks = tok.Quirks()
	r.setSpec(spec)
	if req.Generate && spec.HSM.KeyType == pkcs11.CKK_EC && spec.HSM.Curve.Name == hsm.Secp256k1.Name && r.quirks.NoSecp256k1 {
		return fmt.Errorf("%w: token %q (%s) cannot generate secp256k1 keys", hsm.ErrUnsuitableKey, r.res.HSM.Token.Label, r.quirks.Name)
	}
	if r.req.WrappingKeySpec == "" {
		r.req.WrappingKeySpec = types.WrappingKeySpecRsa4096
	}
	_, err := r.probe(context.Background())
	return err
}
