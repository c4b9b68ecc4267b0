package kmsimport

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"strings"
	"testing"
)

// A wrapping public key from a cloud or a bundle is input: one whose
// exponent is not FIPS 186-5's (odd, more than 2^16) is refused before
// anything is wrapped under it, whatever its modulus. With e=1 RSA-OAEP is
// the identity: the "wrapped" key would be readable by anyone.
func TestParseWrappingPublicKeyRefusesAWeakExponent(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []int{1, 3, 17, 65536, 65538} {
		der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: k.N, E: e})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseWrappingPublicKey(der, WrappingRSA2048); err == nil || !strings.Contains(err.Error(), "exponent") {
			t.Errorf("exponent %d: %v", e, err)
		}
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if _, err := ParseWrappingPublicKey(der, WrappingRSA2048); err != nil {
		t.Errorf("e=65537: %v", err)
	}
}
