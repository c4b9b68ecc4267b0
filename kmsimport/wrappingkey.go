package kmsimport

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

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
	if want := WrappingKeyBits(spec); pub.N.BitLen() != want {
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
