package aws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// WrappedSignatureFormat names the detached signature format of a
// wrapped-material file; see docs/wrapped-signature.md.
const WrappedSignatureFormat = "kmsbridge-wrapped-signature/2"

// SignatureSuffix is appended to a wrapped file's path to name its
// detached signature: signer.wrapped.json.sig.
const SignatureSuffix = ".sig"

// WrappedBinding is what a wrapped blob is bound to by its signature: the
// bundle it was made from, the KMS key and import token it is for, the
// HSM key and token it is the wrap of, and the blob itself. Upload checks
// every field against the wrapped file (and the bundle, when given), so a
// blob cannot be moved to another HSM key's file, another bundle or
// another KMS key without the signature failing.
type WrappedBinding struct {
	BundleSha256               string `json:"BundleSha256"`
	KmsKeyId                   string `json:"KmsKeyId"`
	ImportTokenSha256          string `json:"ImportTokenSha256"`
	WrappingPublicKeySha256    string `json:"WrappingPublicKeySha256"`
	HsmKeyId                   string `json:"HsmKeyId"`
	HsmKeyLabel                string `json:"HsmKeyLabel"`
	TokenSerial                string `json:"TokenSerial"`
	EncryptedKeyMaterialSha256 string `json:"EncryptedKeyMaterialSha256"`
}

// BindingOf is the binding a wrapped file claims.
func BindingOf(w *kmsimport.Wrapped) WrappedBinding {
	return WrappedBinding{BundleSha256: w.BundleSha256, KmsKeyId: w.KeyId, ImportTokenSha256: w.ImportTokenSha256,
		WrappingPublicKeySha256: w.PublicKeySha256, HsmKeyId: w.HSMKey.KeyID, HsmKeyLabel: w.HSMKey.KeyLabel,
		TokenSerial: w.Token.Serial, EncryptedKeyMaterialSha256: w.EncryptedKeyMaterialSha256}
}

// fields lists the binding in its signed order.
func (b WrappedBinding) fields() [][2]string {
	return [][2]string{{"BundleSha256", b.BundleSha256}, {"KmsKeyId", b.KmsKeyId}, {"ImportTokenSha256", b.ImportTokenSha256},
		{"WrappingPublicKeySha256", b.WrappingPublicKeySha256}, {"HsmKeyId", b.HsmKeyId}, {"HsmKeyLabel", b.HsmKeyLabel},
		{"TokenSerial", b.TokenSerial}, {"EncryptedKeyMaterialSha256", b.EncryptedKeyMaterialSha256}}
}

// WrappedSignature is the detached signature of a wrapped-material file by
// the ceremony's audit key, written beside it by wrap and checked by
// upload, so an edit of the file in transit, or a blob moved between
// files, is found.
type WrappedSignature struct {
	// Format is WrappedSignatureFormat.
	Format string `json:"Format"`
	// WrappedSha256 is the SHA-256 of the wrapped file's bytes, hex.
	WrappedSha256 string `json:"WrappedSha256"`
	// Binding is what the wrapped blob is bound to.
	Binding WrappedBinding `json:"Binding"`
	// AuditKeyId is the audit key's CKA_ID, hex.
	AuditKeyId string `json:"AuditKeyId"`
	// AuditPublicKeySha256 is the SHA-256 of the audit public key's DER
	// SubjectPublicKeyInfo, hex: the fingerprint on the officers' paper.
	AuditPublicKeySha256 string `json:"AuditPublicKeySha256"`
	// AuditPublicKey is that DER SubjectPublicKeyInfo. It is used to check
	// the signature only when a fingerprint from elsewhere (the bundle
	// prepare wrote on the online host) vouches for it.
	AuditPublicKey []byte `json:"AuditPublicKey"`
	// Algorithm is ECDSA_SHA_256: ECDSA P-256 over SHA-256.
	Algorithm string `json:"Algorithm"`
	// Signature is the ASN.1 DER ECDSA signature over SHA-256 of
	// signedMessage.
	Signature []byte `json:"Signature"`
}

// signedMessage is what the audit key signs: the format name (so a
// signature for one purpose is never valid for another), the file's
// digest, every binding field and the audit key's fingerprint, one
// Name="value" line each (values quoted as Go strings, so no value can
// forge a line).
func (s *WrappedSignature) signedMessage() []byte {
	var b strings.Builder
	b.WriteString(WrappedSignatureFormat + "\n")
	fmt.Fprintf(&b, "WrappedSha256=%q\n", s.WrappedSha256)
	for _, f := range s.Binding.fields() {
		fmt.Fprintf(&b, "%s=%q\n", f[0], f[1])
	}
	fmt.Fprintf(&b, "AuditPublicKeySha256=%q\n", s.AuditPublicKeySha256)
	return []byte(b.String())
}

// AuditKeyFingerprint is the fingerprint of an audit public key: the
// SHA-256 of its DER SubjectPublicKeyInfo, hex.
func AuditKeyFingerprint(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return kmsimport.SHA256Hex(der), nil
}

// SignWrapped signs the wrapped file w written at path with signer (the
// audit key, CKA_ID keyID) and writes the detached signature to
// path+SignatureSuffix, a new file. It reads the file back, so the
// signature covers the bytes on disk, and refuses a file that is not w.
func SignWrapped(path string, w *kmsimport.Wrapped, signer crypto.Signer, keyID []byte) (*WrappedSignature, error) {
	raw, err := safefile.Read("--out", path, safefile.MaxJSON)
	if err != nil {
		return nil, err
	}
	onDisk, err := kmsimport.ReadWrapped(path, nil, "")
	if err != nil {
		return nil, err
	}
	if BindingOf(onDisk) != BindingOf(w) {
		return nil, fmt.Errorf("%w: %s changed between writing and signing: wrap again", kmsimport.ErrVerification, path)
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, err
	}
	s := &WrappedSignature{Format: WrappedSignatureFormat, WrappedSha256: kmsimport.SHA256Hex(raw), Binding: BindingOf(w), AuditKeyId: hex.EncodeToString(keyID),
		AuditPublicKeySha256: kmsimport.SHA256Hex(der), AuditPublicKey: der, Algorithm: "ECDSA_SHA_256"}
	digest := sha256.Sum256(s.signedMessage())
	if s.Signature, err = signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		return nil, fmt.Errorf("signing the wrapped file with the audit key: %w", err)
	}
	if err := kmsimport.WriteNewFile(path+SignatureSuffix, s); err != nil {
		return nil, err
	}
	return s, nil
}

// readWrappedSignature reads a signature file strictly.
func readWrappedSignature(sigPath string) (*WrappedSignature, error) {
	var s WrappedSignature
	if _, err := kmsimport.ReadStrict("signature", sigPath, &s); err != nil {
		return nil, fmt.Errorf("%w (wrap writes it beside the wrapped file when an audit key is in use; give --signature FILE if it was moved)", err)
	}
	if s.Format != WrappedSignatureFormat {
		return nil, invalid("%s: format %q is not %q: not a kmsbridge wrapped-file signature, or from another version; wrap again", sigPath, kmsimport.Excerpt(s.Format), WrappedSignatureFormat)
	}
	if s.Algorithm != "ECDSA_SHA_256" {
		return nil, invalid("%s: algorithm %q is not ECDSA_SHA_256", sigPath, kmsimport.Excerpt(s.Algorithm))
	}
	return &s, nil
}

// VerifyWrappedSignature checks the detached signature sigPath of the
// wrapped file w, read from path, against the audit public key pub: the
// key, the file's bytes, every binding field against the file's own, and
// the signature. Any mismatch is ErrVerification: the file is not what
// the audit key signed.
func VerifyWrappedSignature(path, sigPath string, w *kmsimport.Wrapped, pub *ecdsa.PublicKey) (*WrappedSignature, error) {
	s, err := readWrappedSignature(sigPath)
	if err != nil {
		return nil, err
	}
	return s, verifyWrapped(path, sigPath, w, s, pub)
}

func verifyWrapped(path, sigPath string, w *kmsimport.Wrapped, s *WrappedSignature, pub *ecdsa.PublicKey) error {
	if pub.Curve != elliptic.P256() {
		return invalid("the audit public key is not an EC P-256 key")
	}
	fp, err := AuditKeyFingerprint(pub)
	if err != nil {
		return err
	}
	if fp != s.AuditPublicKeySha256 {
		return fmt.Errorf("%w: %s was made by the audit key with SHA-256 %s, not by the ceremony's audit key (%s): do not upload this file", kmsimport.ErrVerification, sigPath, kmsimport.Excerpt(s.AuditPublicKeySha256), fp)
	}
	raw, err := safefile.Read("--wrapped", path, safefile.MaxJSON)
	if err != nil {
		return fmt.Errorf("%w: %w", kmsimport.ErrInvalidInput, err)
	}
	if sum := kmsimport.SHA256Hex(raw); sum != s.WrappedSha256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, but the audit key signed a file with SHA-256 %s: the wrapped file was altered after wrap; do not upload it, wrap again", kmsimport.ErrVerification, path, sum, kmsimport.Excerpt(s.WrappedSha256))
	}
	got, want := BindingOf(w).fields(), s.Binding.fields()
	for i := range got {
		if got[i][1] != want[i][1] {
			return fmt.Errorf("%w: %s says %s is %s, but the audit key signed it for %s %s: the wrapped blob was moved to another file, key or bundle; do not upload it, wrap again", kmsimport.ErrVerification, path, got[i][0], kmsimport.Excerpt(got[i][1]), want[i][0], kmsimport.Excerpt(want[i][1]))
		}
	}
	digest := sha256.Sum256(s.signedMessage())
	if !ecdsa.VerifyASN1(pub, digest[:], s.Signature) {
		return fmt.Errorf("%w: the signature in %s does not verify under the audit public key: the signature or the file was altered; do not upload it, wrap again", kmsimport.ErrVerification, sigPath)
	}
	return nil
}

// IntegrityCheck is what upload knows about a wrapped file's integrity.
type IntegrityCheck struct {
	// Path is the wrapped file, already read into Wrapped.
	Path    string
	Wrapped *kmsimport.Wrapped
	// SigPath is the detached signature (default Path + SignatureSuffix).
	SigPath string
	// Bundle is the online host's copy of the bundle (or nil), and
	// BundleSha256 its file digest.
	Bundle       *kmsimport.Bundle
	BundleSha256 string
	// AuditPublicKey is the ceremony's audit public key given to upload
	// (--audit-public-key), or nil.
	AuditPublicKey *ecdsa.PublicKey
	// AllowUnsigned accepts a wrapped file no audit key signed, when
	// nothing says one was in use (--allow-unsigned).
	AllowUnsigned bool
}

// CheckIntegrity decides whether a wrapped file may be uploaded, before
// KMS is touched, and returns what its HSM evidence is worth, for the
// result and the record:
//
//   - when the wrapped file, the bundle, --audit-public-key or a signature
//     file beside it says an audit key was in use, the signature must
//     verify (all of them naming the same key), under --audit-public-key
//     or under the key the signature carries when the bundle's fingerprint
//     vouches for it; else ErrVerification (exit 5), or ErrInvalidInput
//     (exit 2) when only the public key to check with is missing;
//   - otherwise the file is unsigned and is refused (exit 2) unless
//     AllowUnsigned, which the result and the record then say.
func CheckIntegrity(c IntegrityCheck) (string, error) {
	if c.SigPath == "" {
		c.SigPath = c.Path + SignatureSuffix
	}
	claims := map[string]string{}
	if fp := c.Wrapped.AuditPublicKeySha256; fp != "" {
		claims["the wrapped file"] = fp
	}
	if c.Bundle != nil && c.Bundle.AuditPublicKeySha256 != "" {
		claims["the bundle"] = c.Bundle.AuditPublicKeySha256
	}
	if c.AuditPublicKey != nil {
		fp, err := AuditKeyFingerprint(c.AuditPublicKey)
		if err != nil {
			return "", err
		}
		claims["--audit-public-key"] = fp
	}
	want := ""
	for _, who := range []string{"--audit-public-key", "the bundle", "the wrapped file"} {
		fp, ok := claims[who]
		if !ok {
			continue
		}
		if want == "" {
			want = fp
			continue
		}
		if fp != want {
			return "", fmt.Errorf("%w: %s names audit key %s, but %s names %s: the files are not of one ceremony, or one was altered; do not upload", kmsimport.ErrVerification, who, kmsimport.Excerpt(fp), firstClaim(claims, want), want)
		}
	}
	_, statErr := os.Stat(c.SigPath)
	sigExists := statErr == nil
	if want == "" && !sigExists {
		if !c.AllowUnsigned {
			return "", invalid("%s is not signed (no %s, and neither it nor the bundle names an audit key): upload proves the import against the HSM's evidence in the file, which unsigned is only what the file says, and its blob could be another key's; wrap with --audit-key LABEL so it is signed, or give --allow-unsigned to upload it anyway (recorded)", c.Path, c.SigPath)
		}
		return "unsigned, not checked (--allow-unsigned): the HSM's evidence in the wrapped file is only what the file says", nil
	}
	if !sigExists {
		if !errors.Is(statErr, fs.ErrNotExist) {
			return "", invalid("signature %s: %v", c.SigPath, statErr)
		}
		return "", fmt.Errorf("%w: %s names audit key %s, but there is no signature %s: it was removed, or not carried with the file; bring the .sig that wrap wrote (--signature FILE if it was moved) or wrap again. --allow-unsigned does not accept a file an audit key was to sign", kmsimport.ErrVerification, firstClaim(claims, want), want, c.SigPath)
	}
	s, err := readWrappedSignature(c.SigPath)
	if err != nil {
		return "", err
	}
	pub := c.AuditPublicKey
	how := "--audit-public-key"
	if pub == nil {
		if c.Bundle == nil || c.Bundle.AuditPublicKeySha256 == "" {
			return "", invalid("%s is signed by audit key %s, which nothing here vouches for: give the ceremony's audit public key with --audit-public-key AUDIT.pem (or pass --bundle with a bundle prepare made with --audit-public-key)", c.Path, kmsimport.Excerpt(s.AuditPublicKeySha256))
		}
		if kmsimport.SHA256Hex(s.AuditPublicKey) != c.Bundle.AuditPublicKeySha256 {
			return "", fmt.Errorf("%w: %s carries a public key with SHA-256 %s, not the audit key %s the bundle names: do not upload this file", kmsimport.ErrVerification, c.SigPath, kmsimport.SHA256Hex(s.AuditPublicKey), c.Bundle.AuditPublicKeySha256)
		}
		k, err := x509.ParsePKIXPublicKey(s.AuditPublicKey)
		ec, ok := k.(*ecdsa.PublicKey)
		if err != nil || !ok {
			return "", fmt.Errorf("%w: %s: the audit public key it carries is not an EC key", kmsimport.ErrVerification, c.SigPath)
		}
		pub, how = ec, "the bundle's audit key fingerprint"
	}
	if err := verifyWrapped(c.Path, c.SigPath, c.Wrapped, s, pub); err != nil {
		return "", err
	}
	if c.Bundle != nil && s.Binding.BundleSha256 != c.BundleSha256 {
		return "", fmt.Errorf("%w: the audit key signed %s for the bundle with SHA-256 %s, not for --bundle (%s): pair each wrapped file with the bundle it came from", kmsimport.ErrVerification, c.Path, kmsimport.Excerpt(s.Binding.BundleSha256), c.BundleSha256)
	}
	return fmt.Sprintf("signed by audit key CKA_ID %s (public key SHA-256 %s, checked against %s), signature checked and bound to bundle %s, KMS key %s, HSM key CKA_ID %s", s.AuditKeyId, s.AuditPublicKeySha256, how, s.Binding.BundleSha256, s.Binding.KmsKeyId, s.Binding.HsmKeyId), nil
}

// firstClaim names who claimed fingerprint fp, for messages.
func firstClaim(claims map[string]string, fp string) string {
	for _, who := range []string{"--audit-public-key", "the bundle", "the wrapped file"} {
		if claims[who] == fp {
			return who
		}
	}
	return "something"
}
