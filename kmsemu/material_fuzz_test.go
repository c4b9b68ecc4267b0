package kmsemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"sort"
	"testing"
)

// FuzzParseMaterial feeds arbitrary bytes to the emulator's PKCS#8 and key
// material parsing, as ImportKeyMaterial would after unwrapping: it must
// answer with an error, never panic. The first byte chooses the key spec.
func FuzzParseMaterial(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	f.Add(byte(0), der)
	f.Add(byte(1), make([]byte, 32))
	f.Add(byte(2), []byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add(byte(3), append(der, 0, 0, 0))
	names := make([]string, 0, len(keySpecs))
	for n := range keySpecs {
		names = append(names, n)
	}
	sort.Strings(names)
	f.Fuzz(func(t *testing.T, which byte, raw []byte) {
		ks := keySpecs[names[int(which)%len(names)]]
		for _, lenient := range []bool{false, true} {
			m, aerr := parseMaterial(ks, raw, lenient)
			if aerr == nil && m == nil {
				t.Fatalf("parseMaterial(%s) gave neither material nor an error", names[int(which)%len(names)])
			}
		}
		_, _ = parsePrivateKeyInfo(raw)
	})
}
