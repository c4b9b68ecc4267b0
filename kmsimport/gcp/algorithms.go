// Package gcp imports HSM key material into Google Cloud KMS: its client
// and endpoint rule, the algorithms and import methods it accepts, the
// import flow in step order (with the import job's attestation verified
// before the wrap), and the result. The HSM side is kmsimport's.
package gcp

import (
	"crypto"
	"fmt"
	"sort"
	"strings"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Algorithm is a Cloud KMS algorithm kmsbridge can import, with the key
// the HSM holds as its master copy. docs/gcp-import.md gives the sources.
type Algorithm struct {
	Name    string
	PB      kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
	Purpose kmspb.CryptoKey_CryptoKeyPurpose
	HSM     hsm.KeyParams
	// MacHash is the hash of an HMAC algorithm.
	MacHash crypto.Hash
}

func (a Algorithm) secret() bool { return a.HSM.Secret() }

// Algorithms lists what kmsbridge imports into Cloud KMS: material Cloud
// KMS takes as raw bytes (symmetric, HMAC) or PKCS#8 (RSA, EC) and that a
// token can generate. Raw AES (AES_*_GCM/CBC/CTR) and AES-128 are left out
// until tested.
var Algorithms = func() []Algorithm {
	a := []Algorithm{
		{Name: "GOOGLE_SYMMETRIC_ENCRYPTION", PB: kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION, Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, HSM: hsm.AES256()},
		{Name: "HMAC_SHA1", PB: kmspb.CryptoKeyVersion_HMAC_SHA1, Purpose: kmspb.CryptoKey_MAC, HSM: hsm.HMACKey(20), MacHash: crypto.SHA1},
		{Name: "HMAC_SHA224", PB: kmspb.CryptoKeyVersion_HMAC_SHA224, Purpose: kmspb.CryptoKey_MAC, HSM: hsm.HMACKey(28), MacHash: crypto.SHA224},
		{Name: "HMAC_SHA256", PB: kmspb.CryptoKeyVersion_HMAC_SHA256, Purpose: kmspb.CryptoKey_MAC, HSM: hsm.HMACKey(32), MacHash: crypto.SHA256},
		{Name: "HMAC_SHA384", PB: kmspb.CryptoKeyVersion_HMAC_SHA384, Purpose: kmspb.CryptoKey_MAC, HSM: hsm.HMACKey(48), MacHash: crypto.SHA384},
		{Name: "HMAC_SHA512", PB: kmspb.CryptoKeyVersion_HMAC_SHA512, Purpose: kmspb.CryptoKey_MAC, HSM: hsm.HMACKey(64), MacHash: crypto.SHA512},
		{Name: "EC_SIGN_P256_SHA256", PB: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, HSM: hsm.ECKey(hsm.P256)},
		{Name: "EC_SIGN_P384_SHA384", PB: kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384, Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, HSM: hsm.ECKey(hsm.P384)},
		{Name: "EC_SIGN_SECP256K1_SHA256", PB: kmspb.CryptoKeyVersion_EC_SIGN_SECP256K1_SHA256, Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, HSM: hsm.ECKey(hsm.Secp256k1)},
	}
	for _, bits := range []int{2048, 3072, 4096} {
		for _, v := range []struct {
			name    string
			purpose kmspb.CryptoKey_CryptoKeyPurpose
		}{
			{"RSA_SIGN_PSS_%d_SHA256", kmspb.CryptoKey_ASYMMETRIC_SIGN},
			{"RSA_SIGN_PKCS1_%d_SHA256", kmspb.CryptoKey_ASYMMETRIC_SIGN},
			{"RSA_DECRYPT_OAEP_%d_SHA256", kmspb.CryptoKey_ASYMMETRIC_DECRYPT},
		} {
			name := fmt.Sprintf(v.name, bits)
			a = append(a, Algorithm{Name: name, PB: kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm(kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm_value[name]), Purpose: v.purpose, HSM: hsm.RSAKey(bits)})
		}
	}
	return a
}()

func algorithmNames() string {
	var n []string
	for _, a := range Algorithms {
		n = append(n, a.Name)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// ParseAlgorithm returns the algorithm named s.
func ParseAlgorithm(s string) (Algorithm, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	for _, a := range Algorithms {
		if a.Name == name {
			return a, nil
		}
	}
	return Algorithm{}, invalid("--gcp-algorithm %q is not one kmsbridge imports into Cloud KMS: choose one of %s", kmsimport.Excerpt(s), algorithmNames())
}

// AlgorithmOf is the algorithm an existing HSM key's type implies, when
// there is exactly one: RSA keys can be several, so they need
// --gcp-algorithm.
func AlgorithmOf(k *hsm.Key) (Algorithm, error) {
	var found []Algorithm
	for _, a := range Algorithms {
		if hsm.CheckForImport(k, a.HSM) == nil {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Algorithm{}, fmt.Errorf("%w: HSM key %q is not the material of any Cloud KMS algorithm kmsbridge imports (%s)", hsm.ErrUnsuitableKey, k.Label, algorithmNames())
	}
	var names []string
	for _, a := range found {
		names = append(names, a.Name)
	}
	return Algorithm{}, invalid("HSM key %q fits several Cloud KMS algorithms (%s): choose one with --gcp-algorithm", k.Label, strings.Join(names, ", "))
}

// Import methods, strongest first: SHA-256 before SHA-1, AES key wrap
// (any size of material) before direct OAEP, 4096-bit before 3072-bit.
var methods = []struct {
	pb   kmspb.ImportJob_ImportMethod
	wrap kmsimport.CloudWrap
}{
	{kmspb.ImportJob_RSA_OAEP_4096_SHA256_AES_256, kmsimport.CloudWrap{Name: "RSA_OAEP_4096_SHA256_AES_256", Method: hsm.WrapMethod{RSAAES: true, OAEP: hsm.OAEPSHA256}, RSABits: 4096}},
	{kmspb.ImportJob_RSA_OAEP_3072_SHA256_AES_256, kmsimport.CloudWrap{Name: "RSA_OAEP_3072_SHA256_AES_256", Method: hsm.WrapMethod{RSAAES: true, OAEP: hsm.OAEPSHA256}, RSABits: 3072}},
	{kmspb.ImportJob_RSA_OAEP_4096_SHA256, kmsimport.CloudWrap{Name: "RSA_OAEP_4096_SHA256", Method: hsm.WrapMethod{OAEP: hsm.OAEPSHA256}, RSABits: 4096}},
	{kmspb.ImportJob_RSA_OAEP_3072_SHA256, kmsimport.CloudWrap{Name: "RSA_OAEP_3072_SHA256", Method: hsm.WrapMethod{OAEP: hsm.OAEPSHA256}, RSABits: 3072}},
	{kmspb.ImportJob_RSA_OAEP_4096_SHA1_AES_256, kmsimport.CloudWrap{Name: "RSA_OAEP_4096_SHA1_AES_256", Method: hsm.WrapMethod{RSAAES: true, OAEP: hsm.OAEPSHA1}, RSABits: 4096}},
	{kmspb.ImportJob_RSA_OAEP_3072_SHA1_AES_256, kmsimport.CloudWrap{Name: "RSA_OAEP_3072_SHA1_AES_256", Method: hsm.WrapMethod{RSAAES: true, OAEP: hsm.OAEPSHA1}, RSABits: 3072}},
}

// target is Cloud KMS as a kmsimport.CloudTarget.
type target struct{}

func (target) Cloud() string { return "Google Cloud KMS" }

// WrapMethods: direct RSA-OAEP only for secret keys, which fit one OAEP
// block ([proto]: RSA_OAEP_*_SHA256 "cannot be used to wrap RSA keys"; EC
// PKCS#8 is left to the AES methods too).
func (target) WrapMethods(p hsm.KeyParams) []kmsimport.CloudWrap {
	var out []kmsimport.CloudWrap
	for _, m := range methods {
		if !m.wrap.Method.RSAAES && !p.Secret() {
			continue
		}
		out = append(out, m.wrap)
	}
	return out
}

func methodOf(name string) (kmspb.ImportJob_ImportMethod, kmsimport.CloudWrap, bool) {
	for _, m := range methods {
		if m.wrap.Name == name {
			return m.pb, m.wrap, true
		}
	}
	return 0, kmsimport.CloudWrap{}, false
}

func wrapOf(pb kmspb.ImportJob_ImportMethod) (kmsimport.CloudWrap, bool) {
	for _, m := range methods {
		if m.pb == pb {
			return m.wrap, true
		}
	}
	return kmsimport.CloudWrap{}, false
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", kmsimport.ErrInvalidInput, fmt.Sprintf(format, args...))
}
