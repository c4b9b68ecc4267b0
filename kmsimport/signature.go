package kmsimport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// WrappedSignatureFormat names the detached signature format of a
// wrapped-material file; see docs/wrapped-signature.md.
const WrappedSignatureFormat = "kmsbridge-wrapped-signature/1"

// SignatureSuffix is appended to a wrapped file's path to name its
// detached signature: signer.wrapped.json.sig.
const SignatureSuffix = ".sig"

// WrappedSignature is the detached signature of a wrapped-material file by
// the ceremony's audit key, written beside it by wrap and checked by
// upload, so an edit of the HSM's evidence in transit is found.
type WrappedSignature struct {
	// Format is WrappedSignatureFormat.
	Format string `json:"Format"`
	// WrappedSha256 is the SHA-256 of the wrapped file's bytes, hex.
	WrappedSha256 string `json:"WrappedSha256"`
	// AuditKeyId is the audit key's CKA_ID, hex.
	AuditKeyId string `json:"AuditKeyId"`
	// AuditPublicKeySha256 is the SHA-256 of the audit public key's DER
	// SubjectPublicKeyInfo, hex: the fingerprint on the officers' paper.
	AuditPublicKeySha256 string `json:"AuditPublicKeySha256"`
	// Algorithm is ECDSA_SHA_256: ECDSA P-256 over SHA-256.
	Algorithm string `json:"Algorithm"`
	// Signature is the ASN.1 DER ECDSA signature over SHA-256 of
	// signedMessage(WrappedSha256).
	Signature []byte `json:"Signature"`
}

// signedMessage is what the audit key signs: the format name and the
// file's digest, so a signature for one purpose is never valid for another.
func signedMessage(wrappedSHA256 string) []byte {
	return []byte(WrappedSignatureFormat + "\n" + wrappedSHA256 + "\n")
}

// SignWrapped signs the wrapped file at path with signer (the audit key,
// CKA_ID keyID) and writes the detached signature to path+SignatureSuffix,
// a new file. It reads the file back, so the signature covers the bytes
// on disk.
func SignWrapped(path string, signer crypto.Signer, keyID []byte) (*WrappedSignature, error) {
	raw, err := safefile.Read("--out", path, safefile.MaxJSON)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, err
	}
	s := &WrappedSignature{Format: WrappedSignatureFormat, WrappedSha256: sha256Hex(raw), AuditKeyId: hex.EncodeToString(keyID),
		AuditPublicKeySha256: sha256Hex(der), Algorithm: "ECDSA_SHA_256"}
	digest := sha256.Sum256(signedMessage(s.WrappedSha256))
	if s.Signature, err = signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		return nil, fmt.Errorf("signing the wrapped file with the audit key: %w", err)
	}
	if err := writeNewFile(path+SignatureSuffix, s); err != nil {
		return nil, err
	}
	return s, nil
}

// VerifyWrappedSignature checks the detached signature sigPath of the
// wrapped file at path against the audit public key pub. Any mismatch is
// ErrVerification: the file is not what the audit key signed.
func VerifyWrappedSignature(path, sigPath string, pub *ecdsa.PublicKey) (*WrappedSignature, error) {
	var s WrappedSignature
	if _, err := readStrict("signature", sigPath, &s); err != nil {
		return nil, fmt.Errorf("%w (wrap writes it beside the wrapped file when an audit key is in use; give --signature FILE if it was moved)", err)
	}
	if s.Format != WrappedSignatureFormat {
		return nil, invalid("%s: format %q is not %q: not a kmsbridge wrapped-file signature", sigPath, Excerpt(s.Format), WrappedSignatureFormat)
	}
	if s.Algorithm != "ECDSA_SHA_256" {
		return nil, invalid("%s: algorithm %q is not ECDSA_SHA_256", sigPath, Excerpt(s.Algorithm))
	}
	if pub.Curve != elliptic.P256() {
		return nil, invalid("the audit public key is not an EC P-256 key")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if fp := sha256Hex(der); fp != s.AuditPublicKeySha256 {
		return nil, fmt.Errorf("%w: %s was made by the audit key with SHA-256 %s, not by --audit-public-key (%s): use the ceremony's audit public key, or do not upload this file", ErrVerification, sigPath, Excerpt(s.AuditPublicKeySha256), fp)
	}
	raw, err := safefile.Read("--wrapped", path, safefile.MaxJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if sum := sha256Hex(raw); sum != s.WrappedSha256 {
		return nil, fmt.Errorf("%w: %s has SHA-256 %s, but the audit key signed a file with SHA-256 %s: the wrapped file was altered after wrap; do not upload it, wrap again", ErrVerification, path, sum, Excerpt(s.WrappedSha256))
	}
	digest := sha256.Sum256(signedMessage(s.WrappedSha256))
	if !ecdsa.VerifyASN1(pub, digest[:], s.Signature) {
		return nil, fmt.Errorf("%w: the signature in %s does not verify under the audit public key: the signature or the file was altered; do not upload it, wrap again", ErrVerification, sigPath)
	}
	return &s, nil
}
