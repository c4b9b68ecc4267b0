package azure

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/byok"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// Steps, in order.
const (
	StepValidate  = "validate"
	StepSelectKey = "select-hsm-key"
	StepProbe     = "probe-wrapping"
	StepCheck     = "check-azure"
	StepGenerate  = "generate-hsm-key"
	StepCreateKEK = "create-kek"
	StepWrap      = "wrap"
	StepImport    = "import"
	StepVerify    = "verify"

	journalOpKEK    = "azure:CreateKey"
	journalOpImport = "azure:ImportKey"
)

// Tags linking a Key Vault key to its HSM master copy, so a re-run
// adopts only a key that is provably its own.
const (
	TagHSMKeyID    = "kmsbridge-hsm-key-id"
	TagTokenSerial = "kmsbridge-token-serial"
)

// Importer runs an import into Key Vault against one token.
type Importer struct {
	KV      API
	Token   kmsimport.Token
	Journal *journal.Journal
	Log     *slog.Logger
	Observe func(kmsimport.StepEvent)
	Now     func() time.Time
	// Halt, when set, is asked after every step whether the flow must
	// stop (the ceremony record could not be written).
	Halt    func() error
	Command string
	// Owner is the ownership authority that decides whether an HSM key
	// found may be taken up or adopted (--adopt); nil is one over Journal
	// that adopts nothing.
	Owner *ownership.Authority
	// Challenge, when set, tells which service the vault says it is
	// (service.go); check-azure refuses a contradiction.
	Challenge *Challenge
}

type run struct {
	im  *Importer
	req *Request
	res *Result

	params hsm.KeyParams
	key    *hsm.Key
	wrap   kmsimport.CloudWrap

	kek      *azkeys.KeyBundle
	kekPub   *rsa.PublicKey
	existing *azkeys.KeyBundle // the target, imported by an earlier run
	oct      *octProof         // the token's half of an AES key's proof
	roots    []*x509.Certificate
	pins     []string // partition pins (--azure-hsm-partition), lower-case hex
	// uploading: the run is upload's, after the wrap (for messages).
	uploading bool
	// carryAttestation: prepare reads the KEK's attestation even without
	// roots, for the offline wrap; kekStatement is what it read.
	carryAttestation bool
	kekStatement     *attest.Statement
	blob             []byte
	changed          []string
}

// target is Key Vault's side of the seam: BYOK takes CKM_RSA_AES_KEY_WRAP
// with OAEP SHA-1 only (docs/azure-import.md).
type target struct{ kekBits int }

func (target) Cloud() string { return "azure" }

func (t target) WrapMethods(hsm.KeyParams) []kmsimport.CloudWrap {
	return []kmsimport.CloudWrap{{Name: byok.EncRSAAESWrap + " (RSA-OAEP SHA-1, AES-256 key wrap with padding)",
		Method: hsm.WrapMethod{RSAAES: true, OAEP: hsm.OAEPSHA1}, RSABits: t.kekBits}}
}

// Run imports the HSM key's material into Key Vault: everything
// checkable first, then the changes, each journaled, then the proof.
func (im *Importer) Run(ctx context.Context, req Request) (*Result, error) {
	r := &run{im: im, req: &req, res: &Result{Cloud: "azure", Vault: req.Vault, KeyName: req.KeyName}}
	err := r.engine().Run(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: r.validate},
		{Name: StepSelectKey, Run: r.selectKey},
		{Name: StepProbe, Run: r.probe},
		{Name: StepCheck, Run: r.check},
		{Name: StepGenerate, Run: r.generate},
		{Name: StepCreateKEK, Run: r.createKEK},
		{Name: StepWrap, Run: r.wrapKey},
		{Name: StepImport, Run: r.importKey},
		{Name: StepVerify, Run: r.verify},
	})
	return r.res, err
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

func (im *Importer) command() string {
	if im.Command == "" {
		return "import"
	}
	return im.Command
}

// engine is the step engine (kmsimport/engine.go) over this run, which
// a re-run finishes.
func (r *run) engine() kmsimport.Engine {
	flow := kmsimport.RerunFlow{Made: &r.changed, Steps: &r.res.Steps, Token: &r.res.HSM.Token, Journal: r.im.Journal, Of: r.facts}
	return kmsimport.Engine{Flow: flow, Journal: r.im.Journal, Command: r.im.command(), Log: r.im.Log, Observe: r.im.Observe, Now: r.im.Now, Halt: r.im.Halt}
}

// facts is what the run has established, for the ceremony record.
func (r *run) facts() map[string]string {
	facts := map[string]string{"Cloud": "azure", "Vault": r.req.Vault, "KeyName": r.req.KeyName}
	for k, v := range map[string]string{"KeyId": r.res.KeyID, "KekId": r.res.KEK.KID, "KekPublicKeySha256": r.res.KEK.PublicKeySHA256,
		"ImportMethod": r.res.ImportMethod, "ByokSha256": r.res.ByokSHA256, "HsmKeyLabel": r.res.HSM.KeyLabel,
		"HsmKeyId": r.res.HSM.KeyID, "ProofSummary": r.res.Proof.Summary} {
		if v != "" {
			facts[k] = v
		}
	}
	return facts
}

func (r *run) validate(context.Context) (string, error) {
	if err := r.req.Validate(r.im.now()); err != nil {
		return "", err
	}
	r.res.ManagedHSM = r.req.ManagedHSM
	if r.req.KeyType != "" {
		r.params, _ = ParamsOf(r.req.KeyType)
	}
	if err := r.loadRoots(); err != nil {
		return "", err
	}
	return "request is complete and consistent", nil
}

func (r *run) journalTarget() map[string]string {
	return map[string]string{"Vault": r.req.Vault, "KeyName": r.req.KeyName, "KeyLabel": r.req.KeyLabel, "TokenSerial": r.res.HSM.Token.Serial}
}

// selectKey chooses the HSM key through the HSM side every cloud shares
// (kmsimport.ChooseHSMKey): the ownership authority decides what may be
// taken up or adopted. A label taken by a key this host cannot prove its
// own is taken up all the same when the vault already holds it under the
// key name, tagged with its CKA_ID (check-azure then proves the public
// key): another host's run, or a lost journal.
func (r *run) selectKey(ctx context.Context) (string, error) {
	tok := r.im.Token.Identity()
	r.res.HSM.Token = tok
	// Found by class: a private key of any type (RSA or EC), or a secret
	// key (AES, Managed HSM only); paramsOf then says which kind it is.
	kinds := []hsm.KeyParams{hsm.RSAKey(0), hsm.AES256()}
	if r.req.KeyType != "" {
		kinds = []hsm.KeyParams{r.params}
	}
	ch, err := kmsimport.ChooseHSMKey(r.im.Token, r.im.Owner, r.im.Journal, kmsimport.KeyChoice{
		Label: r.req.KeyLabel, ID: r.req.KeyID, Generate: r.req.Generate,
		Params: r.params, Kinds: kinds, Kind: r.paramsOf,
		What:     "RSA or EC private key, nor AES secret key,",
		NotFound: ", or create it with --generate (Key Vault imports RSA and EC keys; Managed HSM also AES)",
		Command:  r.im.command(),
	})
	if errors.Is(err, hsm.ErrLabelExists) {
		if k, ok := r.importedElsewhere(ctx); ok {
			// Tags name it; the ownership authority decides whether it may
			// be taken up (never as generated), and check-azure proves the
			// vault's key is its material before anything is used.
			owner := r.im.Owner
			if owner == nil {
				owner = &ownership.Authority{TokenSerial: tok.Serial, Journal: r.im.Journal, Command: r.im.command()}
			}
			link := fmt.Sprintf("key %s is tagged with its CKA_ID and this token's serial", r.req)
			v, lerr := owner.LinkedKey(k.Label, k, link, "choose a new --key-label, or run the same kmsbridge "+r.im.command()+" again with --adopt added to take it over on purpose (recorded, with its provenance)")
			if lerr != nil {
				return "", fmt.Errorf("token %q already has an object labelled %q: %w", tok.Label, k.Label, lerr)
			}
			r.setKey(k, false)
			r.res.HSM.Adopted = v.Adopted
			r.req.Generate = false
			r.res.Resumed = append(r.res.Resumed, fmt.Sprintf("HSM key %q (CKA_ID %s), already imported as %s", k.Label, k.IDHex(), r.req))
			return fmt.Sprintf("label %q is taken by HSM key CKA_ID %s, which %s is tagged with (this host cannot prove which run generated it; its public key is proved in check-azure): taking it up", k.Label, k.IDHex(), r.req), nil
		}
	}
	r.res.Warnings = append(r.res.Warnings, ch.Warnings...)
	if ch.Key != nil {
		r.req.Generate = false
		r.setKey(ch.Key, ch.Generated)
		r.res.HSM.Adopted = ch.Adopted
		if ch.Resumed != "" {
			r.res.Resumed = append(r.res.Resumed, ch.Resumed)
		}
	}
	if err != nil {
		return "", err
	}
	return ch.Summary, nil
}

// paramsOf is the Key Vault-importable kind of an existing HSM key, which
// becomes the run's; it must be the --azure-key-type given.
func (r *run) paramsOf(k *hsm.Key) (hsm.KeyParams, error) {
	p, err := r.paramsOfKey(k)
	if err != nil {
		return hsm.KeyParams{}, err
	}
	if r.req.KeyType != "" && !sameKind(p, r.params) {
		return hsm.KeyParams{}, invalid("HSM key %q is %s, but --azure-key-type says %s: drop --azure-key-type, or choose the HSM key that matches", k.Label, p, r.req.KeyType)
	}
	r.params = p
	return p, nil
}

// importedElsewhere finds the HSM key labelled --key-label when the
// target key already exists tagged with its CKA_ID and this token's
// serial. It only reads.
func (r *run) importedElsewhere(ctx context.Context) (*hsm.Key, bool) {
	k, err := r.im.Token.FindKey(hsm.KeySelector{Label: r.req.KeyLabel}, r.params)
	if err != nil {
		return nil, false
	}
	got, err := r.im.KV.GetKey(ctx, r.req.KeyName, "", nil)
	if err != nil || tag(got.Tags, TagHSMKeyID) != k.IDHex() || tag(got.Tags, TagTokenSerial) != r.res.HSM.Token.Serial {
		return nil, false
	}
	return k, true
}

func (r *run) setKey(k *hsm.Key, generated bool) {
	r.key = k
	r.res.HSM.Take(k, generated)
}

func (r *run) probe(context.Context) (string, error) {
	w, notes, err := kmsimport.ChooseCloudWrap(r.im.Token, target{r.req.KEKBits}, r.params, r.req.Generate && r.key == nil)
	if err != nil {
		return "", err
	}
	r.wrap = w
	r.res.ImportMethod = w.Name
	r.res.Warnings = append(r.res.Warnings, notes...)
	return "the token can wrap " + r.params.String() + " with " + w.Name + ", the one method Azure BYOK accepts", nil
}

// checkKEK reads the Key Exchange Key, changing nothing, and says what was
// found: an import-only RSA-HSM key of this vault (its attestation checked
// where the vault offers one), or none yet (it will be created). It also
// holds the vault's challenge to the service asked for. Both the import and
// the split's prepare start with it.
func (r *run) checkKEK(ctx context.Context) (string, error) {
	got, err := r.im.KV.GetKey(ctx, r.req.KEKName, "", nil)
	if err := r.checkService(); err != nil {
		return "", err
	}
	switch {
	case err == nil:
		if err := r.useKEK(&got.KeyBundle); err != nil {
			return "", err
		}
		if err := r.attestKEK(ctx); err != nil {
			return "", err
		}
		return "Key Exchange Key " + r.res.KEK.KID + " is import-only RSA-HSM; KEK attestation " + r.res.Attestation, nil
	case isNotFound(err):
		return fmt.Sprintf("Key Exchange Key %s will be created (RSA-HSM %d, key_ops import only)", r.req.KEKName, r.req.KEKBits), nil
	default:
		return "", kvError("GetKey", err)
	}
}

// check reads Key Vault, changing nothing: the KEK (an import-only RSA-HSM
// key of this vault, or absent), and the target (absent, or imported by an
// earlier run from this very HSM key).
func (r *run) check(ctx context.Context) (string, error) {
	var said []string
	if r.params.Secret() {
		if err := r.octPrecheck(); err != nil {
			return "", err
		}
	}
	kek, err := r.checkKEK(ctx)
	if err != nil {
		return "", err
	}
	said = append(said, kek)
	tk, err := r.im.KV.GetKey(ctx, r.req.KeyName, "", nil)
	switch {
	case err == nil:
		if err := r.adopt(ctx, &tk.KeyBundle); err != nil {
			return "", err
		}
		said = append(said, "key "+r.req.KeyName+" was imported from this HSM key by an earlier run")
	case isNotFound(err):
		said = append(said, "key "+r.req.KeyName+" will be imported")
	default:
		return "", kvError("GetKey", err)
	}
	return strings.Join(said, "; "), nil
}

// useKEK accepts a KEK only as Azure defines it: RSA-HSM of an allowed
// size, the single operation import, enabled and within its validity, and
// a key of this very vault.
func (r *run) useKEK(b *azkeys.KeyBundle) error {
	k := b.Key
	if k == nil || k.KID == nil || k.Kty == nil {
		return invalid("Key Vault answered GetKey %s without a key: re-run, and report it if it persists", r.req.KEKName)
	}
	kid := string(*k.KID)
	vault, name, _, err := byok.SplitKID(kid)
	if err != nil || vault != r.req.Vault || !strings.EqualFold(name, r.req.KEKName) {
		return invalid("the Key Exchange Key's identifier %q is not a version of %s/keys/%s: refusing to wrap under a key of another vault", kid, r.req.Vault, r.req.KEKName)
	}
	if *k.Kty != azkeys.KeyTypeRSAHSM {
		return invalid("key %s is %s, not RSA-HSM: it cannot be a Key Exchange Key; name another with --kek-name", r.req.KEKName, *k.Kty)
	}
	var ops []string
	for _, o := range k.KeyOps {
		if o != nil {
			ops = append(ops, string(*o))
		}
	}
	if len(ops) != 1 || ops[0] != string(azkeys.KeyOperationImport) {
		return invalid("key %s has key_ops %v: a Key Exchange Key must have the single operation import (Azure: import is exclusive), or its private key could also decrypt or sign; name another with --kek-name", r.req.KEKName, ops)
	}
	if a := b.Attributes; a != nil {
		now := r.im.now()
		if a.Enabled != nil && !*a.Enabled {
			return invalid("Key Exchange Key %s is disabled: enable it, or name another with --kek-name", kid)
		}
		if a.Expires != nil && !a.Expires.After(now) {
			return invalid("Key Exchange Key %s expired at %s: name another with --kek-name", kid, a.Expires.UTC().Format(time.RFC3339))
		}
		if a.NotBefore != nil && a.NotBefore.After(now) {
			return invalid("Key Exchange Key %s is not valid before %s", kid, a.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	if len(k.N) == 0 || len(k.E) == 0 || len(k.E) > 4 {
		return invalid("Key Exchange Key %s has no usable RSA public key", kid)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
	if b := pub.N.BitLen(); b != 2048 && b != 3072 && b != 4096 {
		return invalid("Key Exchange Key %s is RSA-%d: Azure's KEK is 2048, 3072 or 4096 bits", kid, b)
	}
	if err := hsm.CheckWrappingPublicKey(pub); err != nil {
		return invalid("Key Exchange Key %s: %v", kid, err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(der)
	r.kek, r.kekPub = b, pub
	r.res.KEK.KID, r.res.KEK.Bits, r.res.KEK.PublicKeySHA256 = kid, pub.N.BitLen(), hex.EncodeToString(sum[:])
	r.res.Attestation = attestationNote(r.req.ManagedHSM)
	return nil
}

// adopt accepts an existing target key only with proof it is this HSM
// key's: the tags, then the public key itself.
func (r *run) adopt(ctx context.Context, b *azkeys.KeyBundle) error {
	name := r.req.String()
	if r.key == nil {
		return invalid("key %s already exists, and the HSM key is only about to be generated: a new HSM key cannot be the one it holds; choose a new --key-name", name)
	}
	if tag(b.Tags, TagHSMKeyID) != r.key.IDHex() || tag(b.Tags, TagTokenSerial) != r.res.HSM.Token.Serial {
		return invalid("key %s exists but its tags do not link it to this HSM key (%s=%q, %s=%q): importing would add a version to a key kmsbridge did not make for it; choose a new --key-name",
			name, TagHSMKeyID, tag(b.Tags, TagHSMKeyID), TagTokenSerial, tag(b.Tags, TagTokenSerial))
	}
	if _, err := r.prove(ctx, b); err != nil {
		return fmt.Errorf("key %s is tagged as this HSM key's, but: %w; choose a new --key-name", name, err)
	}
	r.existing = b
	r.res.Resumed = append(r.res.Resumed, "key "+string(*b.Key.KID)+", imported by an earlier run")
	return nil
}

func tag(tags map[string]*string, k string) string {
	if v := tags[k]; v != nil {
		return *v
	}
	return ""
}

// samePublicKey compares the vault key's public key with the HSM's, as
// SubjectPublicKeyInfo DER.
func (r *run) samePublicKey(b *azkeys.KeyBundle) (bool, string, error) {
	der, err := spkiOf(b.Key)
	if err != nil {
		return false, "", fmt.Errorf("%w: %v", kmsimport.ErrVerification, err)
	}
	sum := sha256.Sum256(der)
	hsmDER, err := r.im.Token.PublicKeyDER(r.key)
	if err != nil {
		return false, "", err
	}
	return bytes.Equal(der, hsmDER), hex.EncodeToString(sum[:]), nil
}

func (r *run) generate(context.Context) (string, error) {
	if !r.req.Generate || r.key != nil {
		return kmsimport.NotNeeded, nil
	}
	k, err := kmsimport.GenerateHSMKey(r.im.Token, r.im.Journal, r.im.command(), r.req.KeyLabel, r.params, false, r.journalTarget())
	if k != nil {
		r.setKey(k, true)
		r.changed = append(r.changed, fmt.Sprintf("HSM key %q (CKA_ID %s) in token %q", k.Label, k.IDHex(), r.res.HSM.Token.Label))
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("generated %s HSM key %q (CKA_ID %s), sensitive and extractable only by wrapping", r.params, k.Label, k.IDHex()), nil
}

func (r *run) createKEK(ctx context.Context) (string, error) {
	if r.kek != nil || r.existing != nil {
		return kmsimport.NotNeeded, nil
	}
	p, err := r.im.Journal.Intend(journal.Intent{Command: r.im.command(), Op: journalOpKEK,
		Target: map[string]string{"Vault": r.req.Vault, "KeyName": r.req.KEKName}, Find: map[string]string{"KeyName": r.req.KEKName}})
	if err != nil {
		return "", fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	got, err := r.im.KV.CreateKey(noRetry(ctx), r.req.KEKName, azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(r.req.KEKBits)),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)},
		Tags:   map[string]*string{"kmsbridge-purpose": to.Ptr("key-exchange-key")},
	}, nil)
	if err != nil {
		_ = p.Done(journal.ResultUnknown, nil, err)
		r.changed = append(r.changed, "perhaps Key Exchange Key "+r.req.KEKName+" (the answer was lost)")
		return "", kvError("CreateKey", err)
	}
	r.changed = append(r.changed, "Key Exchange Key "+r.req.KEKName)
	if err := r.useKEK(&got.KeyBundle); err != nil {
		_ = p.Done(journal.ResultOK, nil, nil)
		return "", err
	}
	r.res.KEK.Created = true
	if err := p.Done(journal.ResultOK, map[string]string{"KekId": r.res.KEK.KID, "KekPublicKeySha256": r.res.KEK.PublicKeySHA256}, nil); err != nil {
		return "", fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	if err := r.attestKEK(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("created Key Exchange Key %s (RSA-HSM %d, key_ops import only); KEK attestation %s", r.res.KEK.KID, r.res.KEK.Bits, r.res.Attestation), nil
}

func (r *run) generator() string {
	t := r.res.HSM.Token
	return fmt.Sprintf("kmsbridge %s; %s %s firmware %s", buildinfo.Get().Version, t.Manufacturer, t.Model, t.Firmware)
}

func (r *run) wrapKey(context.Context) (string, error) {
	if r.existing != nil {
		return kmsimport.NotNeeded, nil
	}
	ct, _, err := kmsimport.WrapInToken(r.im.Token, r.key, r.kekPub, r.wrap.Method)
	if err != nil {
		return "", err
	}
	if len(ct) <= r.kekPub.Size() {
		return "", fmt.Errorf("%w: the token's wrap is %d bytes, no longer than the KEK's %d-byte RSA block", hsm.ErrWrapUnsupported, len(ct), r.kekPub.Size())
	}
	blob, err := byok.Build(r.res.KEK.KID, ct, r.generator())
	if err != nil {
		return "", err
	}
	r.blob = blob
	sum := sha256.Sum256(blob)
	r.res.ByokSHA256 = hex.EncodeToString(sum[:])
	return fmt.Sprintf("wrapped HSM key %q inside the token under the KEK with %s: a %d-byte .byok transfer blob", r.key.Label, r.wrap.Name, len(blob)), nil
}

func (r *run) importKey(ctx context.Context) (string, error) {
	if r.existing != nil {
		return kmsimport.NotNeeded, nil
	}
	kty, crv := r.ktyOf()
	tags := map[string]*string{TagHSMKeyID: to.Ptr(r.key.IDHex()), TagTokenSerial: to.Ptr(r.res.HSM.Token.Serial)}
	for k, v := range r.req.Tags {
		tags[k] = to.Ptr(v)
	}
	attrs := &azkeys.KeyAttributes{Enabled: to.Ptr(!r.req.Disabled), Expires: r.req.Expires, NotBefore: r.req.NotBefore}
	p, err := r.im.Journal.Intend(journal.Intent{Command: r.im.command(), Op: journalOpImport, Target: r.journalTarget(),
		Find: map[string]string{"KeyName": r.req.KeyName, "tag:" + TagHSMKeyID: r.key.IDHex()}})
	if err != nil {
		return "", fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	got, err := r.im.KV.ImportKey(noRetry(ctx), r.req.KeyName, azkeys.ImportKeyParameters{
		HSM: to.Ptr(true), Key: &azkeys.JSONWebKey{Kty: to.Ptr(kty), Crv: crv, T: r.blob}, KeyAttributes: attrs, Tags: tags}, nil)
	if err != nil {
		_ = p.Done(journal.ResultUnknown, nil, err)
		r.changed = append(r.changed, "perhaps key "+r.req.String()+" (the answer was lost; a re-run looks for it by its tags)")
		return "", kvError("ImportKey", err)
	}
	kid := ""
	if got.Key != nil && got.Key.KID != nil {
		kid = string(*got.Key.KID)
	}
	r.res.KeyID, r.res.Imported = kid, true
	r.changed = append(r.changed, "key "+kid)
	if err := p.Done(journal.ResultOK, map[string]string{"KeyId": kid}, nil); err != nil {
		return "", fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	return "imported " + kid + " as " + string(kty), nil
}

// readImported reads the imported key back, as both the one-pass import
// and the split's upload prove it: present, of the material's key type,
// tagged with this HSM key and token, and without the operation import
// (that is a Key Exchange Key, not the imported key).
func (r *run) readImported(ctx context.Context) (azkeys.KeyBundle, azkeys.KeyType, error) {
	got, err := r.im.KV.GetKey(ctx, r.req.KeyName, "", nil)
	if err != nil {
		return azkeys.KeyBundle{}, "", kvError("GetKey", err)
	}
	b := got.KeyBundle
	if b.Key == nil || b.Key.KID == nil || b.Key.Kty == nil {
		return b, "", fmt.Errorf("%w: Key Vault returned no key for %s", kmsimport.ErrVerification, r.req)
	}
	kty, _ := r.ktyOf()
	if *b.Key.Kty != kty {
		return b, "", fmt.Errorf("%w: key %s is %s, not %s", kmsimport.ErrVerification, *b.Key.KID, *b.Key.Kty, kty)
	}
	if tag(b.Tags, TagHSMKeyID) != r.key.IDHex() || tag(b.Tags, TagTokenSerial) != r.res.HSM.Token.Serial {
		return b, "", fmt.Errorf("%w: key %s does not carry the tags linking it to HSM key CKA_ID %s", kmsimport.ErrVerification, *b.Key.KID, r.key.IDHex())
	}
	if slices.ContainsFunc(b.Key.KeyOps, func(o *azkeys.KeyOperation) bool { return o != nil && *o == azkeys.KeyOperationImport }) {
		return b, "", fmt.Errorf("%w: key %s has the operation import", kmsimport.ErrVerification, *b.Key.KID)
	}
	return b, kty, nil
}

// verify reads the key back and proves the vault holds the HSM's key.
func (r *run) verify(ctx context.Context) (string, error) {
	b, kty, err := r.readImported(ctx)
	if err != nil {
		return "", err
	}
	proof, err := r.prove(ctx, &b)
	if err != nil {
		return "", err
	}
	r.res.KeyID, r.res.KeyType = string(*b.Key.KID), string(kty)
	r.res.Proof = proof
	if err := r.checkAttributes(&b); err != nil {
		return "", err
	}
	return r.res.Proof.Summary, nil
}
