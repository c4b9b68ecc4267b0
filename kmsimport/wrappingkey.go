package kmsimport

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// WrappingKeySpec is the size of a cloud's RSA wrapping key as the split's
// files name it (Bundle.WrappingKeySpec): RSA_2048, RSA_3072 or RSA_4096,
// the names AWS's GetParametersForImport uses, which the other clouds'
// bundles reuse for their import job's or KEK's key.
type WrappingKeySpec string

// The wrapping key sizes kmsbridge wraps under.
const (
	WrappingRSA2048 WrappingKeySpec = "RSA_2048"
	WrappingRSA3072 WrappingKeySpec = "RSA_3072"
	WrappingRSA4096 WrappingKeySpec = "RSA_4096"
)

// ParseWrappingKeySpec returns the wrapping key spec named s.
func ParseWrappingKeySpec(s string) (WrappingKeySpec, error) {
	spec := WrappingKeySpec(strings.ToUpper(strings.TrimSpace(s)))
	if spec.Bits() != 0 {
		return spec, nil
	}
	return "", invalid("unknown wrapping key spec %q: choose RSA_4096 (the default), RSA_3072 or RSA_2048", Excerpt(s))
}

// Bits is the RSA modulus size spec promises, or 0 for an unknown spec.
func (spec WrappingKeySpec) Bits() int {
	switch spec {
	case WrappingRSA2048:
		return 2048
	case WrappingRSA3072:
		return 3072
	case WrappingRSA4096:
		return 4096
	}
	return 0
}

// ParseWrappingPublicKey parses the DER SubjectPublicKeyInfo KMS returned
// and checks it is an RSA key of the size spec promises, with an exponent
// fit to wrap under (hsm.CheckWrappingPublicKey).
func ParseWrappingPublicKey(der []byte, spec WrappingKeySpec) (*rsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("KMS wrapping public key is not a DER SubjectPublicKeyInfo: %w", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("KMS wrapping public key is a %T, not RSA", k)
	}
	if want := spec.Bits(); pub.N.BitLen() != want {
		return nil, fmt.Errorf("KMS wrapping public key is RSA-%d, but %s was asked for", pub.N.BitLen(), spec)
	}
	if err := hsm.CheckWrappingPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// Fingerprint is the lowercase hex SHA-256 of a DER public key, the value
// officers compare when they read it aloud.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
