package kmsimport

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"
)

// FuzzParseWrappingPublicKey feeds arbitrary DER to the parser of the
// bundle's SubjectPublicKeyInfo (KMS's wrapping public key).
func FuzzParseWrappingPublicKey(f *testing.F) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	f.Add(der, uint8(0))
	f.Add(der[:len(der)/2], uint8(1))
	f.Add([]byte{0x30, 0x00}, uint8(2))
	specs := []WrappingKeySpec{WrappingRSA2048, WrappingRSA3072, WrappingRSA4096}
	f.Fuzz(func(t *testing.T, der []byte, which uint8) {
		pub, err := ParseWrappingPublicKey(der, specs[int(which)%len(specs)])
		if err == nil && pub == nil {
			t.Fatal("no key and no error")
		}
	})
}
