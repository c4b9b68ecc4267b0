package aws

import (
	"crypto"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// KeySpec is a KMS key spec kmsbridge can import, with what it means in
// the HSM and in KMS.
type KeySpec struct {
	Name types.KeySpec
	// HSM is the key the token holds as the master copy.
	HSM hsm.KeyParams
	// Usages are the KMS key usages the spec allows; the first is the default.
	Usages []types.KeyUsageType
	// MaxMaterial is the largest key material, in bytes, the HSM may wrap:
	// the raw key for secret keys, the PKCS#8 DER (with the public key
	// inside ECPrivateKey) for EC keys. 0 means too large for RSA-OAEP.
	MaxMaterial int
	// Mac is the KMS MAC algorithm of an HMAC key, and its hash.
	Mac     types.MacAlgorithmSpec
	MacHash crypto.Hash
	// Signing lists the KMS signing algorithms of a SIGN_VERIFY key.
	Signing []types.SigningAlgorithmSpec
}

// Secret reports whether the material is a secret key (AES, HMAC).
func (s KeySpec) Secret() bool { return s.HSM.Secret() }

var (
	rsaSigning = []types.SigningAlgorithmSpec{
		types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecRsassaPssSha512,
		types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512,
	}
	rsaUsages = []types.KeyUsageType{types.KeyUsageTypeSignVerify, types.KeyUsageTypeEncryptDecrypt}
	ecUsages  = []types.KeyUsageType{types.KeyUsageTypeSignVerify}
	// NIST curves also make key-agreement keys (DeriveSharedSecret, ECDH);
	// secp256k1 keys only sign (docs/kms-input-rules.md).
	ecNISTUsages = []types.KeyUsageType{types.KeyUsageTypeSignVerify, types.KeyUsageTypeKeyAgreement}
	macUsages    = []types.KeyUsageType{types.KeyUsageTypeGenerateVerifyMac}
)

// KeySpecs lists every key spec kmsbridge imports (SM2 is China-only and
// out of scope).
var KeySpecs = []KeySpec{
	{Name: types.KeySpecSymmetricDefault, HSM: hsm.AES256(), Usages: []types.KeyUsageType{types.KeyUsageTypeEncryptDecrypt}, MaxMaterial: 32},
	{Name: types.KeySpecHmac224, HSM: hsm.HMACKey(28), Usages: macUsages, MaxMaterial: 28, Mac: types.MacAlgorithmSpecHmacSha224, MacHash: crypto.SHA224},
	{Name: types.KeySpecHmac256, HSM: hsm.HMACKey(32), Usages: macUsages, MaxMaterial: 32, Mac: types.MacAlgorithmSpecHmacSha256, MacHash: crypto.SHA256},
	{Name: types.KeySpecHmac384, HSM: hsm.HMACKey(48), Usages: macUsages, MaxMaterial: 48, Mac: types.MacAlgorithmSpecHmacSha384, MacHash: crypto.SHA384},
	{Name: types.KeySpecHmac512, HSM: hsm.HMACKey(64), Usages: macUsages, MaxMaterial: 64, Mac: types.MacAlgorithmSpecHmacSha512, MacHash: crypto.SHA512},
	{Name: types.KeySpecRsa2048, HSM: hsm.RSAKey(2048), Usages: rsaUsages, Signing: rsaSigning},
	{Name: types.KeySpecRsa3072, HSM: hsm.RSAKey(3072), Usages: rsaUsages, Signing: rsaSigning},
	{Name: types.KeySpecRsa4096, HSM: hsm.RSAKey(4096), Usages: rsaUsages, Signing: rsaSigning},
	{Name: types.KeySpecEccNistP256, HSM: hsm.ECKey(hsm.P256), Usages: ecNISTUsages, MaxMaterial: 138, Signing: []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}},
	{Name: types.KeySpecEccNistP384, HSM: hsm.ECKey(hsm.P384), Usages: ecNISTUsages, MaxMaterial: 185, Signing: []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha384}},
	{Name: types.KeySpecEccNistP521, HSM: hsm.ECKey(hsm.P521), Usages: ecNISTUsages, MaxMaterial: 241, Signing: []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha512}},
	{Name: types.KeySpecEccSecgP256k1, HSM: hsm.ECKey(hsm.Secp256k1), Usages: ecUsages, MaxMaterial: 135, Signing: []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}},
}

// notImportable are the KMS key specs AWS offers only for material KMS
// generates: AWS's CreateKey reference lists them, but neither the
// ImportKeyMaterial and GetParametersForImport references (whose wrapping
// algorithms name only symmetric, HMAC, RSA and ECC material) nor the
// import guide's requirements for imported key material list them
// (docs/kms-input-rules.md, Key specs).
var notImportable = map[types.KeySpec]string{
	types.KeySpecEccNistEdwards25519: "AWS KMS offers Ed25519 (ECC_NIST_EDWARDS25519) keys only with key material KMS generates; AWS does not document importing Ed25519 key material",
	types.KeySpecMlDsa44:             "AWS KMS offers ML-DSA keys only with key material KMS generates; AWS does not document importing ML-DSA key material",
	types.KeySpecMlDsa65:             "AWS KMS offers ML-DSA keys only with key material KMS generates; AWS does not document importing ML-DSA key material",
	types.KeySpecMlDsa87:             "AWS KMS offers ML-DSA keys only with key material KMS generates; AWS does not document importing ML-DSA key material",
	types.KeySpecMlKem512:            "AWS KMS offers ML-KEM keys only with key material KMS generates; AWS does not document importing ML-KEM key material",
	types.KeySpecMlKem768:            "AWS KMS offers ML-KEM keys only with key material KMS generates; AWS does not document importing ML-KEM key material",
	types.KeySpecMlKem1024:           "AWS KMS offers ML-KEM keys only with key material KMS generates; AWS does not document importing ML-KEM key material",
}

func SpecNames() string {
	var names []string
	for _, s := range KeySpecs {
		names = append(names, string(s.Name))
	}
	return strings.Join(names, ", ")
}

// ParseKeySpec returns the key spec named s.
func ParseKeySpec(s string) (KeySpec, error) {
	name := types.KeySpec(strings.ToUpper(strings.TrimSpace(s)))
	for _, ks := range KeySpecs {
		if ks.Name == name {
			return ks, nil
		}
	}
	if name == types.KeySpecSm2 {
		return KeySpec{}, invalid("key spec SM2 is offered only in AWS China Regions and is not supported by kmsbridge")
	}
	if why, ok := notImportable[name]; ok {
		return KeySpec{}, invalid("key spec %s cannot be imported: %s. AWS documents importing key material only for SYMMETRIC_DEFAULT, HMAC, RSA and ECC (NIST and secp256k1) keys (docs/kms-input-rules.md, Key specs); choose one of %s", name, why, SpecNames())
	}
	return KeySpec{}, invalid("unknown key spec %q: choose one of %s", kmsimport.Excerpt(s), SpecNames())
}

// SpecOfHSMKey returns the key spec whose material the HSM key k is, so an
// existing key can be imported without naming its spec.
func SpecOfHSMKey(k *hsm.Key) (KeySpec, bool) {
	for _, ks := range KeySpecs {
		if hsm.CheckForImport(k, ks.HSM) == nil {
			return ks, true
		}
	}
	return KeySpec{}, false
}

// Usage returns the KMS key usage for spec: u when the spec allows it, the
// spec's default when u is empty.
func (s KeySpec) Usage(u string) (types.KeyUsageType, error) {
	if u == "" {
		return s.Usages[0], nil
	}
	want := types.KeyUsageType(strings.ToUpper(strings.TrimSpace(u)))
	var allowed []string
	for _, a := range s.Usages {
		if a == want {
			return a, nil
		}
		allowed = append(allowed, string(a))
	}
	return "", invalid("--key-usage %s is not allowed for %s: KMS allows %s", kmsimport.Excerpt(u), s.Name, strings.Join(allowed, " or "))
}

// oaepCapacity is the most bytes RSA-OAEP with h can carry under an RSA
// key of bits: k - 2*hLen - 2 (RFC 8017).
func oaepCapacity(bits int, h hsm.OAEPHash) int {
	hLen := 20
	if h == hsm.OAEPSHA256 {
		hLen = 32
	}
	return bits/8 - 2*hLen - 2
}

// CheckWrapping says, without any token or KMS call, whether KMS accepts
// material of spec wrapped with w under a wrapping key of wks, and if not
// why and what KMS accepts instead (which the token may not do: doctor and
// the import's token check name only what the token was checked to do).
func CheckWrapping(spec KeySpec, w Wrapping, wks types.WrappingKeySpec) error {
	rule, advice := KMSWrapRule(spec, w, wks)
	if rule == "" {
		return nil
	}
	return invalid("%s: %s", rule, advice)
}

// KMSWrapRule is KMS's rule CheckWrapping applies: the rule w breaks for
// spec under wks ("" when none) and what KMS accepts instead.
func KMSWrapRule(spec KeySpec, w Wrapping, wks types.WrappingKeySpec) (rule, advice string) {
	if w.RSAAES {
		return "", ""
	}
	if spec.MaxMaterial == 0 {
		return fmt.Sprintf("%s material (a PKCS#8 RSA private key) is too large for RSA-OAEP alone, so KMS requires RSA-AES key wrap", spec.Name),
			"use --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1"
	}
	bits := WrappingKeyBits(wks)
	if capacity := oaepCapacity(bits, w.OAEP); spec.MaxMaterial > capacity {
		return fmt.Sprintf("%s material (up to %d bytes of PKCS#8) does not fit %s under an %s wrapping key (at most %d bytes)", spec.Name, spec.MaxMaterial, w.Algorithm, wks, capacity),
			"use --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1, or a larger --wrapping-key-spec"
	}
	return "", ""
}

// ValidWrappings lists the wrappings KMS accepts for spec under wks,
// strongest first.
func ValidWrappings(spec KeySpec, wks types.WrappingKeySpec) []Wrapping {
	var ws []Wrapping
	for _, w := range Wrappings {
		if CheckWrapping(spec, w, wks) == nil {
			ws = append(ws, w)
		}
	}
	return ws
}

func (w Wrapping) String() string { return string(w.Algorithm) }

func joinWrappings(ws []Wrapping) string {
	var s []string
	for _, w := range ws {
		s = append(s, string(w.Algorithm))
	}
	return strings.Join(s, ", ")
}
