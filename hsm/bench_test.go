package hsm_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// BenchmarkWrapOAEP is one import's work inside SoftHSM2: bring the KMS
// wrapping key in as a session object, wrap, destroy it.
func BenchmarkWrapOAEP(b *testing.B) {
	tk := benchToken(b)
	k, err := tk.Generate("bench", hsm.AES256(), false)
	if err != nil {
		b.Fatal(err)
	}
	priv, _ := rsa.GenerateKey(rand.Reader, 4096)
	b.ResetTimer()
	for b.Loop() {
		if _, err := tk.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrapRSAAES is the composed RSA-AES wrap of an EC key: ephemeral
// AES key, RFC 5649, OAEP, destroy.
func BenchmarkWrapRSAAES(b *testing.B) {
	tk := benchToken(b)
	k, err := tk.Generate("bench-ec", hsm.ECKey(hsm.P256), false)
	if err != nil {
		b.Fatal(err)
	}
	priv, _ := rsa.GenerateKey(rand.Reader, 4096)
	b.ResetTimer()
	for b.Loop() {
		if _, err := tk.WrapRSAAES(k, &priv.PublicKey, hsm.OAEPSHA1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProbe is the wrapping-algorithm probe every import runs first,
// answered from the Token's cache after the first (BenchmarkProbeUncached
// is the probe itself).
func BenchmarkProbe(b *testing.B) {
	tk := benchToken(b)
	for b.Loop() {
		_ = tk.ProbeOAEP(hsm.OAEPSHA256)
		if err := tk.ProbeOAEP(hsm.OAEPSHA1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditSign is one signature of a signed record's entry: C_SignInit
// and C_Sign with the audit key inside SoftHSM2. A record's entries are
// signed one at a time (each chains to the one before), so this bounds how
// fast a signed record can grow, whatever the parallelism.
func BenchmarkAuditSign(b *testing.B) {
	tk := benchToken(b)
	k, err := tk.GenerateAuditKey("audit")
	if err != nil {
		b.Fatal(err)
	}
	s, err := tk.AuditSigner(k)
	if err != nil {
		b.Fatal(err)
	}
	digest := make([]byte, 32)
	for b.Loop() {
		if _, err := s.Sign(nil, digest, crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}
