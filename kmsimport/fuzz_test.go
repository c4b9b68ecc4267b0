package kmsimport

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// FuzzParseWrappingPublicKey feeds arbitrary DER to the parser of the
// bundle's SubjectPublicKeyInfo (KMS's wrapping public key).
func FuzzParseWrappingPublicKey(f *testing.F) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	f.Add(der, uint8(0))
	f.Add(der[:len(der)/2], uint8(1))
	f.Add([]byte{0x30, 0x00}, uint8(2))
	specs := []types.WrappingKeySpec{types.WrappingKeySpecRsa2048, types.WrappingKeySpecRsa3072, types.WrappingKeySpecRsa4096}
	f.Fuzz(func(t *testing.T, der []byte, which uint8) {
		pub, err := ParseWrappingPublicKey(der, specs[int(which)%len(specs)])
		if err == nil && pub == nil {
			t.Fatal("no key and no error")
		}
	})
}

// FuzzRules checks the input rules on arbitrary strings: a refusal is
// always a ValidationError with a short message.
func FuzzRules(f *testing.F) {
	f.Add("team", "payments")
	f.Add("aws:x", "")
	f.Add("alias/aws/x", "\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, err := range []error{CheckTag(a, b), CheckAlias(a), CheckDescription(b), CheckKeyLabel(a), CheckKeyMaterialDescription(b)} {
			if err == nil {
				continue
			}
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("%T is not a *ValidationError", err)
			}
			if len(err.Error()) > 600 {
				t.Fatalf("error is %d bytes long", len(err.Error()))
			}
		}
	})
}
