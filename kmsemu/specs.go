package kmsemu

import (
	"crypto"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"hash"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// specKind groups key specs by what their material is.
type specKind int

const (
	kindSymmetric specKind = iota // SYMMETRIC_DEFAULT: 32 raw bytes, AES-256-GCM
	kindHMAC                      // HMAC_*: raw bytes of the spec's length
	kindRSA                       // RSA_*: PKCS#8 RSA private key
	kindEC                        // ECC_*: PKCS#8 EC private key
)

const (
	usageSignVerify   = string(types.KeyUsageTypeSignVerify)
	usageMAC          = string(types.KeyUsageTypeGenerateVerifyMac)
	usageKeyAgreement = string(types.KeyUsageTypeKeyAgreement)
)

// ecCurve is one curve an ECC_* key spec names.
type ecCurve struct {
	name string                // as messages show it: "P-256 (secp256r1)"
	oid  asn1.ObjectIdentifier // the namedCurve in PKCS#8 and SubjectPublicKeyInfo
	nist elliptic.Curve        // nil for secp256k1, which crypto/ecdsa lacks
	// size is the length in bytes of a private scalar and of a coordinate.
	size int
	// signing is the one ECDSA signing algorithm KMS offers on this curve.
	signing string
}

var (
	oidP256      = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384      = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521      = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	oidSecp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}

	curveP256 = &ecCurve{"P-256 (secp256r1)", oidP256, elliptic.P256(), 32, string(types.SigningAlgorithmSpecEcdsaSha256)}
	curveP384 = &ecCurve{"P-384 (secp384r1)", oidP384, elliptic.P384(), 48, string(types.SigningAlgorithmSpecEcdsaSha384)}
	curveP521 = &ecCurve{"P-521 (secp521r1)", oidP521, elliptic.P521(), 66, string(types.SigningAlgorithmSpecEcdsaSha512)}
	curveK1   = &ecCurve{"secp256k1", oidSecp256k1, nil, 32, string(types.SigningAlgorithmSpecEcdsaSha256)}
	ecCurves  = []*ecCurve{curveP256, curveP384, curveP521, curveK1}
)

// keySpec is what the emulator knows about one KeySpec.
type keySpec struct {
	name string
	kind specKind
	// usages are the KeyUsage values KMS allows with this spec; emulated
	// are those the emulator implements (the rest answer
	// UnsupportedOperationException).
	usages   []string
	emulated []string
	// secretLen is the material length of SYMMETRIC_DEFAULT and HMAC keys.
	secretLen int
	// mac and macHash: the one MAC algorithm of an HMAC key.
	mac     string
	macHash func() hash.Hash
	rsaBits int
	curve   *ecCurve
}

func hmacSpec(name string, n int, mac types.MacAlgorithmSpec, h func() hash.Hash) *keySpec {
	return &keySpec{name: name, kind: kindHMAC, usages: []string{usageMAC}, emulated: []string{usageMAC}, secretLen: n, mac: string(mac), macHash: h}
}

func rsaSpec(name string, bits int) *keySpec {
	u := []string{usageEncDec, usageSignVerify}
	return &keySpec{name: name, kind: kindRSA, usages: u, emulated: u, rsaBits: bits}
}

func ecSpec(name string, c *ecCurve) *keySpec {
	u := []string{usageSignVerify}
	if c.nist != nil {
		u = []string{usageSignVerify, usageKeyAgreement}
	}
	return &keySpec{name: name, kind: kindEC, usages: u, emulated: u, curve: c}
}

// keySpecs are the key specs the emulator emulates. Other KeySpec values KMS
// defines (SM2, ML_DSA_*, ML_KEM_*, ECC_NIST_EDWARDS25519) answer
// UnsupportedOperationException.
var keySpecs = map[string]*keySpec{
	specSymmetric:     {name: specSymmetric, kind: kindSymmetric, usages: []string{usageEncDec}, emulated: []string{usageEncDec}, secretLen: materialBytes},
	"HMAC_224":        hmacSpec("HMAC_224", 28, types.MacAlgorithmSpecHmacSha224, sha256.New224),
	"HMAC_256":        hmacSpec("HMAC_256", 32, types.MacAlgorithmSpecHmacSha256, sha256.New),
	"HMAC_384":        hmacSpec("HMAC_384", 48, types.MacAlgorithmSpecHmacSha384, sha512.New384),
	"HMAC_512":        hmacSpec("HMAC_512", 64, types.MacAlgorithmSpecHmacSha512, sha512.New),
	"RSA_2048":        rsaSpec("RSA_2048", 2048),
	"RSA_3072":        rsaSpec("RSA_3072", 3072),
	"RSA_4096":        rsaSpec("RSA_4096", 4096),
	"ECC_NIST_P256":   ecSpec("ECC_NIST_P256", curveP256),
	"ECC_NIST_P384":   ecSpec("ECC_NIST_P384", curveP384),
	"ECC_NIST_P521":   ecSpec("ECC_NIST_P521", curveP521),
	"ECC_SECG_P256K1": ecSpec("ECC_SECG_P256K1", curveK1),
}

// asymmetric reports whether the spec is a key pair.
func (ks *keySpec) asymmetric() bool { return ks.kind == kindRSA || ks.kind == kindEC }

// rsaSigningAlgorithms are the signing algorithms of RSA SIGN_VERIFY keys,
// in the order KMS lists them.
var rsaSigningAlgorithms = []string{
	string(types.SigningAlgorithmSpecRsassaPkcs1V15Sha256),
	string(types.SigningAlgorithmSpecRsassaPkcs1V15Sha384),
	string(types.SigningAlgorithmSpecRsassaPkcs1V15Sha512),
	string(types.SigningAlgorithmSpecRsassaPssSha256),
	string(types.SigningAlgorithmSpecRsassaPssSha384),
	string(types.SigningAlgorithmSpecRsassaPssSha512),
}

// rsaEncryptionAlgorithms are the encryption algorithms of RSA
// ENCRYPT_DECRYPT keys.
var rsaEncryptionAlgorithms = []string{
	string(types.EncryptionAlgorithmSpecRsaesOaepSha1),
	string(types.EncryptionAlgorithmSpecRsaesOaepSha256),
}

// signingAlg is how one SigningAlgorithmSpec signs.
type signingAlg struct {
	hash crypto.Hash
	pss  bool // RSASSA-PSS, salt length = digest length, as KMS signs
	ec   bool // ECDSA, DER-encoded signature
}

var signingAlgs = map[string]signingAlg{
	string(types.SigningAlgorithmSpecRsassaPssSha256):      {hash: crypto.SHA256, pss: true},
	string(types.SigningAlgorithmSpecRsassaPssSha384):      {hash: crypto.SHA384, pss: true},
	string(types.SigningAlgorithmSpecRsassaPssSha512):      {hash: crypto.SHA512, pss: true},
	string(types.SigningAlgorithmSpecRsassaPkcs1V15Sha256): {hash: crypto.SHA256},
	string(types.SigningAlgorithmSpecRsassaPkcs1V15Sha384): {hash: crypto.SHA384},
	string(types.SigningAlgorithmSpecRsassaPkcs1V15Sha512): {hash: crypto.SHA512},
	string(types.SigningAlgorithmSpecEcdsaSha256):          {hash: crypto.SHA256, ec: true},
	string(types.SigningAlgorithmSpecEcdsaSha384):          {hash: crypto.SHA384, ec: true},
	string(types.SigningAlgorithmSpecEcdsaSha512):          {hash: crypto.SHA512, ec: true},
}

// encryptionAlgorithms is KeyMetadata.EncryptionAlgorithms: present only
// for ENCRYPT_DECRYPT keys.
func (k *key) encryptionAlgorithms() []string {
	switch {
	case k.usage != usageEncDec:
		return nil
	case k.ks().kind == kindRSA:
		return rsaEncryptionAlgorithms
	default:
		return []string{algSymmetric}
	}
}

// signingAlgorithms is KeyMetadata.SigningAlgorithms: present only for
// SIGN_VERIFY keys.
func (k *key) signingAlgorithms() []string {
	switch {
	case k.usage != usageSignVerify:
		return nil
	case k.ks().kind == kindRSA:
		return rsaSigningAlgorithms
	default:
		return []string{k.ks().curve.signing}
	}
}

// keyAgreementAlgorithms is KeyMetadata.KeyAgreementAlgorithms: ECDH for
// KEY_AGREEMENT keys.
func (k *key) keyAgreementAlgorithms() []string {
	if k.usage != usageKeyAgreement {
		return nil
	}
	return []string{string(types.KeyAgreementAlgorithmSpecEcdh)}
}

// macAlgorithms is KeyMetadata.MacAlgorithms: present only for HMAC keys.
func (k *key) macAlgorithms() []string {
	if k.ks().kind != kindHMAC {
		return nil
	}
	return []string{k.ks().mac}
}

// ks is the key's spec. Every key's spec is in keySpecs: CreateKey refuses
// the others.
func (k *key) ks() *keySpec { return keySpecs[k.spec] }

// checkSpecUsage applies CreateKey's rules on KeySpec and KeyUsage, returning
// the key usage to use. KeyUsage is optional only for SYMMETRIC_DEFAULT.
func checkSpecUsage(spec string, usage *string) (*keySpec, string, *apiError) {
	ks, ok := keySpecs[spec]
	if !ok {
		return nil, "", notImplemented("kms-emulator doesn't support KeySpec %s yet: it emulates SYMMETRIC_DEFAULT, HMAC_224/256/384/512, RSA_2048/3072/4096, ECC_NIST_P256/P384/P521 and ECC_SECG_P256K1", spec)
	}
	if usage == nil {
		if ks.kind == kindSymmetric {
			return ks, usageEncDec, nil
		}
		return nil, "", errorf("ValidationException", "KeyUsage is required for KeySpec %s: specify %s", spec, strings.Join(ks.usages, " or "))
	}
	u := *usage
	if !slices.Contains(ks.usages, u) {
		return nil, "", errorf("ValidationException", "KeyUsage %s is not compatible with KeySpec %s: specify %s", u, spec, strings.Join(ks.usages, " or "))
	}
	if !slices.Contains(ks.emulated, u) {
		return nil, "", notImplemented("kms-emulator doesn't emulate KeyUsage %s keys yet (KeySpec %s)", u, spec)
	}
	return ks, u, nil
}
