package hsm

import (
	"crypto/rsa"
	"errors"
	"fmt"
)

// ErrWeakWrappingKey is a KMS wrapping public key the token must not wrap
// under.
var ErrWeakWrappingKey = errors.New("the KMS wrapping public key is not one to wrap under")

// CheckWrappingPublicKey refuses an RSA public key whose exponent is not
// one an RSA key pair has (odd and more than 2^16, docs/threat-model.md,
// "The courier of the air-gapped files"): the modulus alone is what attestations and
// fingerprints are often compared by, and with e=1 RSA-OAEP hides nothing.
// Every wrap and approval asks it before the key enters the token, and
// every parse of a cloud's or a bundle's wrapping key asks it first.
func CheckWrappingPublicKey(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil || pub.N.Sign() <= 0 {
		return fmt.Errorf("%w: it has no RSA modulus", ErrWeakWrappingKey)
	}
	if pub.E <= 1<<16 || pub.E%2 == 0 {
		return fmt.Errorf("%w: its RSA public exponent %d is not odd and more than 65536, as every cloud's (65537) is", ErrWeakWrappingKey, pub.E)
	}
	return nil
}
