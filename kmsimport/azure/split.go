package azure

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/byok"
)

// The air-gapped split for Azure Key Vault, with the same three commands
// and files as AWS's (kmsimport/aws/split.go):
//
//   - Prepare (online, no HSM): the Key Exchange Key created or reused
//     (RSA-HSM, key_ops import only) and its public key and versioned kid
//     written into the bundle.
//   - WrapBundle (offline, no network): the HSM key wrapped inside the
//     token under the KEK with CKM_RSA_AES_KEY_WRAP, and the standard .byok
//     transfer blob built from it: the file Azure's own `az keyvault key
//     import --byok-file` takes. The wrapped file carries the .byok bytes,
//     so the audit key's signature covers them.
//   - Upload (online, no HSM): the KEK checked to be the one wrapped under,
//     the .byok imported tagged with the HSM key, and the vault's public
//     key checked equal to the HSM's (from the wrap's evidence).

// StepEvidence gathers the HSM's evidence for the upload's proof.
const StepEvidence = "gather-evidence"

func init() {
	kmsimport.RegisterSplitCloud(kmsimport.CloudAzure, kmsimport.SplitCloud{
		CheckBundle: checkBundle, CheckEndpoint: checkBundleEndpoint, CheckWrapped: checkWrapped,
	})
}

// Prepare is the online first step: the KEK, created when absent or
// checked to be exactly a KEK, and the bundle with its public key. req
// names no HSM key (the wrap does) and must name the key type.
func (im *Importer) Prepare(ctx context.Context, req Request) (*kmsimport.Bundle, *Result, error) {
	r := &run{im: im, req: &req, res: &Result{Cloud: "azure", Vault: req.Vault, KeyName: req.KeyName}, carryAttestation: true}
	err := r.engine().Run(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: r.validatePrepare},
		{Name: StepCheck, Run: r.checkPrepare},
		{Name: StepCreateKEK, Run: r.createKEK}})
	if err != nil {
		return nil, r.res, err
	}
	der, err := x509.MarshalPKIXPublicKey(r.kekPub)
	if err != nil {
		return nil, r.res, err
	}
	now := im.now().UTC()
	validTo := now.Add(kmsimport.AzureBundleValidity)
	if a := r.kek.Attributes; a != nil && a.Expires != nil && a.Expires.Before(validTo) {
		validTo = a.Expires.UTC()
	}
	kid := []byte(r.res.KEK.KID)
	var carried *kmsimport.AzureAttestation
	if s := r.kekStatement; s != nil {
		carried = &kmsimport.AzureAttestation{Version: s.Version, CertificatePEM: s.CertificatePEM, PrivateKeyAttestation: s.PrivateKeyAttestation, PublicKeyAttestation: s.PublicKeyAttestation}
		if r.res.KEKAttestation == nil {
			r.res.Attestation += "; the Managed HSM's attestation is carried in the bundle: wrap --azure-attestation-root verifies it on the offline host"
		}
	}
	return &kmsimport.Bundle{
		Format: kmsimport.BundleFormat, Cloud: kmsimport.CloudAzure, KeyId: req.String(), KeySpec: req.KeyType,
		WrappingAlgorithm: byok.EncRSAAESWrap, WrappingKeySpec: fmt.Sprintf("RSA_%d", r.kekPub.N.BitLen()),
		PublicKey: der, PublicKeySha256: kmsimport.Fingerprint(der), ImportToken: kid, ImportTokenSha256: kmsimport.Fingerprint(kid),
		ParametersValidTo: validTo, PreparedAt: now,
		Azure: &kmsimport.AzureSplit{Vault: req.Vault, KeyName: req.KeyName, KEKName: req.KEKName, ManagedHSM: r.req.ManagedHSM, Tags: req.Tags, Expires: req.Expires,
			NotBefore: req.NotBefore, Disabled: req.Disabled, KEKAttestation: r.res.Attestation, KEKAttestationStatement: carried},
	}, r.res, nil
}

func (r *run) validatePrepare(context.Context) (string, error) {
	if r.req.KeyType == "" {
		return "", invalid("prepare --cloud azure needs --azure-key-type (%s): the offline wrap generates or finds an HSM key of that type", KeyTypeNames)
	}
	// The HSM key is named at the wrap; everything else is checked now.
	v := *r.req
	v.KeyLabel, v.Generate = "named-at-wrap", false
	if err := v.Validate(r.im.now()); err != nil {
		return "", err
	}
	r.req.KEKName, r.req.KEKBits = v.KEKName, v.KEKBits
	r.params, _ = ParamsOf(r.req.KeyType)
	r.res.ManagedHSM = r.req.ManagedHSM
	if err := r.loadRoots(); err != nil {
		return "", err
	}
	if r.params.Secret() {
		if err := r.octProvable(); err != nil {
			return "", err
		}
	}
	return "request is complete and consistent", nil
}

// checkPrepare reads Key Vault, changing nothing: the KEK (import-only
// RSA-HSM of this vault, or absent) and the target (absent: the split
// imports a new key, whose tags the upload sets from the HSM key).
func (r *run) checkPrepare(ctx context.Context) (string, error) {
	var said []string
	kek, err := r.checkKEK(ctx)
	if err != nil {
		return "", err
	}
	said = append(said, kek)
	_, err = r.im.KV.GetKey(ctx, r.req.KeyName, "", nil)
	switch {
	case err == nil:
		return "", invalid("key %s already exists: the split imports a new key (the HSM key that would be its master is not known online); choose a new --key-name", r.req)
	case isNotFound(err):
		said = append(said, "key "+r.req.KeyName+" is free")
	default:
		return "", kvError("GetKey", err)
	}
	return strings.Join(said, "; "), nil
}

// offlineKV is the vault on the offline host: there is none. A step
// that would read it gets an error instead of a network call.
type offlineKV struct{}

var errOffline = errors.New("the offline host does not talk to Key Vault")

func (offlineKV) CreateKey(context.Context, string, azkeys.CreateKeyParameters, *azkeys.CreateKeyOptions) (azkeys.CreateKeyResponse, error) {
	return azkeys.CreateKeyResponse{}, errOffline
}
func (offlineKV) GetKey(context.Context, string, string, *azkeys.GetKeyOptions) (azkeys.GetKeyResponse, error) {
	return azkeys.GetKeyResponse{}, errOffline
}
func (offlineKV) Encrypt(context.Context, string, string, azkeys.KeyOperationParameters, *azkeys.EncryptOptions) (azkeys.EncryptResponse, error) {
	return azkeys.EncryptResponse{}, errOffline
}
func (offlineKV) Decrypt(context.Context, string, string, azkeys.KeyOperationParameters, *azkeys.DecryptOptions) (azkeys.DecryptResponse, error) {
	return azkeys.DecryptResponse{}, errOffline
}
func (offlineKV) GetKeyAttestation(context.Context, string, string, *azkeys.GetKeyAttestationOptions) (azkeys.GetKeyAttestationResponse, error) {
	return azkeys.GetKeyAttestationResponse{}, errOffline
}
func (offlineKV) ImportKey(context.Context, string, azkeys.ImportKeyParameters, *azkeys.ImportKeyOptions) (azkeys.ImportKeyResponse, error) {
	return azkeys.ImportKeyResponse{}, errOffline
}

// WrapRequest names the HSM key of the offline wrap.
type WrapRequest struct {
	KeyLabel string
	KeyID    []byte
	Generate bool
	// AttestationRoot, when set, is the manufacturer root (PEM file) the
	// bundle's Managed HSM attestation of the KEK is verified against on
	// this host, before any HSM key is found or made.
	AttestationRoot string
	// HSMPartitions pin the Managed HSM whose partition must have
	// attested the KEK (--azure-hsm-partition); they need AttestationRoot.
	HSMPartitions []string
}

// WrapBundle finds or generates the HSM key, wraps it inside the token
// under the bundle's KEK, builds the .byok transfer blob, and gathers the
// HSM's evidence. It needs no network; im.KV is not used. b was read with
// kmsimport.ReadBundle and its fingerprint confirmed.
func (im *Importer) WrapBundle(b *kmsimport.Bundle, bundleSHA256 string, wr WrapRequest) (*kmsimport.Wrapped, *Result, error) {
	im.KV = offlineKV{}
	a := b.Azure
	pub, err := kmsimport.ParseWrappingPublicKey(b.PublicKey, kmsimport.WrappingKeySpec(b.WrappingKeySpec))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", kmsimport.ErrInvalidInput, err)
	}
	req := Request{Vault: a.Vault, ManagedHSM: a.ManagedHSM, KeyName: a.KeyName, KEKName: a.KEKName, KEKBits: pub.N.BitLen(), KeyType: b.KeySpec,
		KeyLabel: wr.KeyLabel, KeyID: wr.KeyID, Generate: wr.Generate, Tags: a.Tags, NotBefore: a.NotBefore, Expires: a.Expires, Disabled: a.Disabled}
	r := &run{im: im, req: &req, res: &Result{Cloud: "azure", Vault: a.Vault, KeyName: a.KeyName}}
	r.kekPub = pub
	r.res.KEK = KEK{KID: string(b.ImportToken), Bits: pub.N.BitLen(), PublicKeySHA256: b.PublicKeySha256}
	if err := r.loadTrust(a.Vault, a.ManagedHSM, wr.AttestationRoot, wr.HSMPartitions); err != nil {
		if wr.AttestationRoot != "" && !a.ManagedHSM {
			return nil, r.res, invalid("--azure-attestation-root is for a Managed HSM bundle: %s is a Key Vault, which attests no keys; drop it", a.Vault)
		}
		return nil, r.res, err
	}
	if wr.AttestationRoot != "" {
		if err := r.verifyCarried(b); err != nil {
			return nil, r.res, err
		}
	} else {
		// The bundle's words are prepare's, unchecked here and editable by
		// whoever carried it: the wrapped file (and the upload after it)
		// says so rather than repeating them as this host's.
		r.res.Attestation = AttestationNotVerified + " on the offline host (no --azure-attestation-root); the bundle says: " + bundleWords(a.KEKAttestation)
		a.KEKAttestation = r.res.Attestation
	}
	if p, _ := ParamsOf(b.KeySpec); p.Secret() {
		if err := r.octProvable(); err != nil {
			return nil, r.res, err
		}
	}
	var ev kmsimport.Evidence
	err = r.engine().Run(context.Background(), []kmsimport.Step{
		{Name: StepValidate, Run: r.validate},
		{Name: StepSelectKey, Run: r.selectKey},
		{Name: StepProbe, Run: r.probe},
		{Name: StepGenerate, Run: r.generate},
		{Name: StepWrap, Run: r.wrapKey},
		{Name: StepEvidence, Run: func(context.Context) (string, error) {
			if r.params.Secret() {
				var said string
				ev, said, err = r.octEvidence()
				return said, err
			}
			der, err := r.im.Token.PublicKeyDER(r.key)
			ev = kmsimport.Evidence{PublicKey: der}
			return "gathered the HSM's public key for the upload's proof", err
		}}})
	if err != nil {
		return nil, r.res, err
	}
	// Read back what was built: a .byok Azure's specification accepts,
	// under this bundle's KEK.
	blob, err := byok.Parse(r.blob)
	if err != nil || blob.Header.KID != string(b.ImportToken) {
		return nil, r.res, fmt.Errorf("%w: the .byok built does not parse back as a transfer blob for KEK %s: %v", kmsimport.ErrVerification, b.ImportToken, err)
	}
	h := r.res.HSM
	tok := h.Token
	return &kmsimport.Wrapped{
		Format: kmsimport.WrappedFormat, Cloud: kmsimport.CloudAzure, BundleSha256: bundleSHA256,
		KeyId: b.KeyId, KeySpec: b.KeySpec, WrappingAlgorithm: b.WrappingAlgorithm, WrappingKeySpec: b.WrappingKeySpec,
		PublicKeySha256: b.PublicKeySha256, ImportToken: b.ImportToken, ImportTokenSha256: b.ImportTokenSha256, ParametersValidTo: b.ParametersValidTo,
		EncryptedKeyMaterial: r.blob, EncryptedKeyMaterialSha256: r.res.ByokSHA256,
		Token: tok, HSMKey: kmsimport.HSMKey{Token: tok, KeyLabel: h.KeyLabel, KeyID: h.KeyID, Generated: h.Generated},
		Evidence: ev, Warnings: r.res.Warnings, WrappedAt: im.now().UTC(), Azure: a,
	}, r.res, nil
}

// UploadRequest is what the online host trusts about the KEK at upload:
// with AttestationRoot, the vault's attestation of the KEK the .byok is
// wrapped under is read and verified again before the import, held to
// HSMPartitions when given (--azure-hsm-partition).
type UploadRequest struct {
	AttestationRoot string
	HSMPartitions   []string
}

// Upload imports the wrapped file's .byok into the vault, tagged with the
// HSM key, and proves it. w was read with kmsimport.ReadWrapped and its
// integrity checked.
func (im *Importer) Upload(ctx context.Context, w *kmsimport.Wrapped, ur UploadRequest) (*Result, error) {
	a := w.Azure
	req := Request{Vault: a.Vault, ManagedHSM: a.ManagedHSM, KeyName: a.KeyName, KEKName: a.KEKName, KeyType: w.KeySpec, Tags: a.Tags, NotBefore: a.NotBefore, Expires: a.Expires, Disabled: a.Disabled,
		AttestationRoot: ur.AttestationRoot, HSMPartitions: ur.HSMPartitions}
	r := &run{im: im, req: &req, uploading: true, res: &Result{Cloud: "azure", Vault: a.Vault, KeyName: a.KeyName, ManagedHSM: a.ManagedHSM, ImportMethod: w.WrappingAlgorithm, ByokSHA256: w.EncryptedKeyMaterialSha256}}
	if err := r.loadRoots(); err != nil {
		return r.res, err
	}
	r.params, _ = ParamsOf(w.KeySpec)
	id, _ := hexID(w.HSMKey.KeyID)
	r.key = &hsm.Key{Label: w.HSMKey.KeyLabel, ID: id, ValueLen: uint(r.params.Bytes)}
	r.res.HSM = HSMKey{Token: w.Token, KeyLabel: w.HSMKey.KeyLabel, KeyID: w.HSMKey.KeyID, Generated: w.HSMKey.Generated}
	r.blob = w.EncryptedKeyMaterial
	r.res.Attestation = "at wrap: " + a.KEKAttestation
	r.res.Warnings = append(r.res.Warnings, w.Warnings...)
	err := r.engine().Run(ctx, []kmsimport.Step{
		{Name: StepCheck, Run: r.checkUpload(w)},
		{Name: StepImport, Run: r.importKey},
		{Name: StepVerify, Run: r.verifyEvidence(w.Evidence)}})
	return r.res, err
}

// checkUpload reads Key Vault, changing nothing: the KEK named in the
// .byok still import-only, of this vault, with the public key the wrap
// used; the target absent, or imported by an earlier upload of this very
// HSM key (its tags and its public key), which is then not imported again.
func (r *run) checkUpload(w *kmsimport.Wrapped) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		_, _, version, _ := byok.SplitKID(string(w.ImportToken))
		var said []string
		if r.params.Secret() {
			if err := r.octFromEvidence(w.Evidence); err != nil {
				return "", err
			}
		}
		tk, err := r.im.KV.GetKey(ctx, r.req.KeyName, "", nil)
		if err := r.checkService(); err != nil {
			return "", err
		}
		switch {
		case err == nil:
			b := tk.KeyBundle
			if tag(b.Tags, TagHSMKeyID) != r.key.IDHex() || tag(b.Tags, TagTokenSerial) != r.res.HSM.Token.Serial {
				return "", invalid("key %s exists but its tags do not link it to this HSM key (%s=%q, %s=%q): importing would add a version to a key kmsbridge did not make for it; run prepare --cloud azure with a new --key-name, wrap and upload again",
					r.req, TagHSMKeyID, tag(b.Tags, TagHSMKeyID), TagTokenSerial, tag(b.Tags, TagTokenSerial))
			}
			if _, err := r.proveEvidence(ctx, &b, w.Evidence); err != nil {
				return "", fmt.Errorf("key %s is tagged as this HSM key's, but: %w", r.req, err)
			}
			r.existing = &b
			r.res.Resumed = append(r.res.Resumed, "key "+string(*b.Key.KID)+", imported by an earlier upload")
			return "key " + r.req.KeyName + " was imported from this HSM key by an earlier upload: nothing is imported again", nil
		case isNotFound(err):
			said = append(said, "key "+r.req.KeyName+" will be imported")
		default:
			return "", kvError("GetKey", err)
		}
		// Only an import still to make needs a bundle young enough.
		if !r.im.now().Before(w.ParametersValidTo) {
			return "", invalid("the bundle this .byok was wrapped from was valid until %s: run prepare --cloud azure, wrap and upload again", w.ParametersValidTo.UTC().Format(time.RFC3339))
		}
		got, err := r.im.KV.GetKey(ctx, r.req.KEKName, version, nil)
		if err != nil {
			if isNotFound(err) {
				return "", invalid("the Key Exchange Key %s the .byok is wrapped under does not exist in %s: upload to the vault prepare ran against", w.ImportToken, r.req.Vault)
			}
			return "", kvError("GetKey", err)
		}
		if err := r.useKEK(&got.KeyBundle); err != nil {
			return "", err
		}
		// What the wrap established about the KEK is the file's to say.
		r.res.Attestation = "at wrap: " + w.Azure.KEKAttestation
		if r.res.KEK.KID != string(w.ImportToken) || r.res.KEK.PublicKeySHA256 != w.PublicKeySha256 {
			return "", fmt.Errorf("%w: the vault's KEK %s has public key SHA-256 %s, not the %s the .byok was wrapped under: do not upload; prepare, wrap and upload again", kmsimport.ErrVerification, r.res.KEK.KID, r.res.KEK.PublicKeySHA256, w.PublicKeySha256)
		}
		said = append(said, "Key Exchange Key "+r.res.KEK.KID+" is import-only RSA-HSM with the public key the .byok was wrapped under")
		if len(r.roots) > 0 {
			// The vault this host talks to attests the KEK again: with a
			// pin, that KEK is the pinned HSM's, whatever the file says.
			if err := r.attestKEK(ctx); err != nil {
				return "", err
			}
			r.res.Attestation = AttestationVerified + " at upload: " + r.res.KEKAttestation.Summary() + "; at wrap: " + w.Azure.KEKAttestation
			said = append(said, "KEK attestation verified at upload")
		}
		return strings.Join(said, "; "), nil
	}
}

// verifyEvidence reads the key back and proves the vault holds the HSM's
// key from the wrap's evidence.
func (r *run) verifyEvidence(ev kmsimport.Evidence) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		b, kty, err := r.readImported(ctx)
		if err != nil {
			return "", err
		}
		p, err := r.proveEvidence(ctx, &b, ev)
		if err != nil {
			return "", err
		}
		r.res.KeyID, r.res.KeyType, r.res.Imported = string(*b.Key.KID), string(kty), r.existing == nil
		r.res.Proof = p
		return p.Summary, nil
	}
}

// proveEvidence is prove (prove.go) with the HSM's half taken from the
// wrap's evidence, the upload having no token: the vault's public key
// equal to the one the wrap read (RSA, EC), or the Managed HSM computing
// what the token computed (AES, oct.go; octFromEvidence ran in check).
func (r *run) proveEvidence(ctx context.Context, b *azkeys.KeyBundle, ev kmsimport.Evidence) (Proof, error) {
	if r.params.Secret() {
		return r.proveOct(ctx, b)
	}
	der, err := spkiOf(b.Key)
	if err != nil {
		return Proof{}, fmt.Errorf("%w: %v", kmsimport.ErrVerification, err)
	}
	sum := kmsimport.Fingerprint(der)
	if len(ev.PublicKey) == 0 || !sameKey(der, ev.PublicKey) {
		return Proof{}, fmt.Errorf("%w: key %s's public key (SHA-256 %s) is not the HSM key's the wrap read: do not use it", kmsimport.ErrVerification, *b.Key.KID, sum)
	}
	return Proof{MaterialConfirmed: true, Method: ProofPublicKey, PublicKeySHA256: sum,
		Summary: "Key Vault's public key equals the HSM key's, as the wrap read it (SPKI SHA-256 " + sum + ")"}, nil
}

// sameKey compares two SubjectPublicKeyInfo encodings by their keys.
func sameKey(a, b []byte) bool {
	ka, errA := x509.ParsePKIXPublicKey(a)
	kb, errB := x509.ParsePKIXPublicKey(b)
	if errA != nil || errB != nil {
		return false
	}
	e, ok := ka.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(kb)
}

// checkTarget checks what an Azure bundle and wrapped file share.
func checkTarget(path, keyID, keyType, alg, spec string, kid []byte, a *kmsimport.AzureSplit) error {
	req := Request{Vault: a.Vault, ManagedHSM: a.ManagedHSM, KeyName: a.KeyName, KEKName: a.KEKName, KEKBits: 4096, KeyType: keyType, KeyLabel: "named-at-wrap",
		Tags: a.Tags, NotBefore: a.NotBefore, Disabled: a.Disabled}
	if err := req.Validate(time.Time{}); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := normalize(a.Vault, "Vault"); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case keyType == "":
		return invalid("%s: no key type (KeySpec): the file was altered", path)
	case keyID != req.String():
		return invalid("%s: KeyId %q is not %s: the file was altered", path, kmsimport.Excerpt(keyID), req.String())
	case alg != byok.EncRSAAESWrap:
		return invalid("%s: WrappingAlgorithm %q is not %s, the one Azure BYOK takes: the file was altered", path, kmsimport.Excerpt(alg), byok.EncRSAAESWrap)
	case spec != "RSA_2048" && spec != "RSA_3072" && spec != "RSA_4096":
		return invalid("%s: WrappingKeySpec %q is not a KEK size (RSA_2048, RSA_3072, RSA_4096): the file was altered", path, kmsimport.Excerpt(spec))
	}
	if IsManagedHSM(a.Vault) && !a.ManagedHSM {
		return invalid("%s: vault %s is a Managed HSM, but the file says ManagedHsm false: the file was altered (a Managed HSM's KEK attestation would go unchecked); use the bundle prepare wrote", path, a.Vault)
	}
	if a.KEKAttestationStatement != nil && !a.ManagedHSM {
		return invalid("%s: a Key Vault's file carries a key attestation, which only a Managed HSM gives: the file was altered", path)
	}
	vault, name, _, err := byok.SplitKID(string(kid))
	if err != nil || vault != a.Vault || !strings.EqualFold(name, a.KEKName) {
		return invalid("%s: ImportToken %q is not a version of Key Exchange Key %s/keys/%s: the file was altered", path, kmsimport.Excerpt(string(kid)), a.Vault, a.KEKName)
	}
	return nil
}

func checkBundle(path string, b *kmsimport.Bundle) error {
	return checkTarget(path, b.KeyId, b.KeySpec, b.WrappingAlgorithm, b.WrappingKeySpec, b.ImportToken, b.Azure)
}

func checkWrapped(path string, w *kmsimport.Wrapped) error {
	if err := checkTarget(path, w.KeyId, w.KeySpec, w.WrappingAlgorithm, w.WrappingKeySpec, w.ImportToken, w.Azure); err != nil {
		return err
	}
	blob, err := byok.Parse(w.EncryptedKeyMaterial)
	if err != nil {
		return fmt.Errorf("%w: %s: its .byok: %v; wrap again", kmsimport.ErrInvalidInput, path, err)
	}
	if blob.Header.KID != string(w.ImportToken) {
		return invalid("%s: its .byok is wrapped under KEK %s, but the file says %s: the file was altered; wrap again", path, kmsimport.Excerpt(blob.Header.KID), kmsimport.Excerpt(string(w.ImportToken)))
	}
	if p, _ := ParamsOf(w.KeySpec); p.Secret() {
		if len(w.Evidence.PublicKey) > 0 {
			return invalid("%s: Evidence.PublicKey is set for an AES key: the file was altered", path)
		}
	} else if pub, err := x509.ParsePKIXPublicKey(w.Evidence.PublicKey); err != nil || pub == nil {
		return invalid("%s: Evidence.PublicKey is not the HSM key's public key (DER): use the file kmsbridge wrote, unedited", path)
	} else if _, isRSA := pub.(*rsa.PublicKey); isRSA != strings.HasPrefix(w.KeySpec, "RSA") {
		return invalid("%s: Evidence.PublicKey is not a %s key: the file was altered", path, w.KeySpec)
	}
	if _, err := hexID(w.HSMKey.KeyID); err != nil {
		return invalid("%s: HsmKey.KeyId %q is not hex: use the file kmsbridge wrote, unedited", path, kmsimport.Excerpt(w.HSMKey.KeyID))
	}
	return nil
}

// checkBundleEndpoint applies Azure's endpoint rule offline: a bundle
// whose KEK came from a vault that is not Azure's is wrapped for only
// when --allow-endpoint names it on this host too.
func checkBundleEndpoint(b *kmsimport.Bundle, allow string) error {
	u := b.KmsEndpoint.URL
	if n, err := normalize(u, "the bundle's endpoint"); err != nil || n != b.Azure.Vault {
		return invalid("the bundle's endpoint %q is not its vault %s: the file was altered; run prepare --cloud azure again", kmsimport.Excerpt(u), b.Azure.Vault)
	}
	if _, err := VaultURL(u, "", nil); err == nil {
		return nil
	}
	var allowed []string
	if allow != "" {
		allowed = []string{allow}
	}
	if _, err := VaultURL("", u, allowed); err != nil {
		return fmt.Errorf("%w (the bundle's Key Exchange Key came from %s; if that vault was meant, confirm it on this host too: --allow-endpoint %s)", err, kmsimport.Excerpt(u), kmsimport.Excerpt(u))
	}
	return nil
}

func hexID(s string) ([]byte, error) {
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil || s == "" || fmt.Sprintf("%x", b) != s {
		return nil, errors.New("not lowercase hex")
	}
	return b, nil
}

// bundleWords is a bundle's free text as a result may repeat it: without
// control characters, and no longer than prepare ever writes (2 KiB).
func bundleWords(s string) string {
	if len(s) > 2048 {
		s = strings.ToValidUTF8(s[:2048], "") + "..."
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
