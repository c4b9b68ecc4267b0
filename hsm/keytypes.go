package hsm

import (
	"encoding/asn1"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Curve is an elliptic curve a token can generate keys on, named by its
// OID in CKA_EC_PARAMS.
type Curve struct {
	Name string
	OID  asn1.ObjectIdentifier
	// Bytes is the size of a coordinate (and of the private scalar).
	Bytes int
}

// The curves KMS imports.
var (
	P256      = Curve{"P-256", asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}, 32}
	P384      = Curve{"P-384", asn1.ObjectIdentifier{1, 3, 132, 0, 34}, 48}
	P521      = Curve{"P-521", asn1.ObjectIdentifier{1, 3, 132, 0, 35}, 66}
	Secp256k1 = Curve{"secp256k1", asn1.ObjectIdentifier{1, 3, 132, 0, 10}, 32}
)

// Curves lists the curves above, to find one by OID.
var Curves = []Curve{P256, P384, P521, Secp256k1}

// params is the DER OID that goes into CKA_EC_PARAMS.
func (c Curve) params() []byte {
	b, err := asn1.Marshal(c.OID)
	if err != nil {
		panic(err) // a constant OID always marshals
	}
	return b
}

// KeyParams says what kind of key to generate, or to expect when finding one.
type KeyParams struct {
	// KeyType is CKK_AES, CKK_GENERIC_SECRET (HMAC), CKK_RSA or CKK_EC.
	KeyType uint
	// Bytes is the length of a secret key.
	Bytes int
	// Bits is the modulus size of an RSA key.
	Bits int
	// Curve is the curve of an EC key.
	Curve Curve
	// Encrypts makes a generated AES key one the token lets encrypt
	// (CKA_ENCRYPT), and nothing more, so the token can prove a cloud holds
	// the same key by encrypting as the cloud does (Azure Managed HSM's
	// oct-HSM keys; see EncryptAESCBCPad).
	Encrypts bool
	// Derive gives the private key of an EC pair CKA_DERIVE=true: a
	// key-agreement key (KMS KEY_AGREEMENT), whose one use is ECDH, so the
	// token can prove by its own ECDH that KMS holds the same key
	// (AgreementMAC). Every other key kmsbridge generates has no use in
	// the token.
	Derive bool
}

// AESKey is an AES secret key of n bytes (16, 24 or 32).
func AESKey(n int) KeyParams { return KeyParams{KeyType: pkcs11.CKK_AES, Bytes: n} }

// AES256 is an AES-256 secret key.
func AES256() KeyParams { return KeyParams{KeyType: pkcs11.CKK_AES, Bytes: AESKeyBytes} }

// HMACKey is a generic secret key of n bytes, for HMAC.
func HMACKey(n int) KeyParams { return KeyParams{KeyType: pkcs11.CKK_GENERIC_SECRET, Bytes: n} }

// RSAKey is an RSA key pair with a modulus of bits.
func RSAKey(bits int) KeyParams { return KeyParams{KeyType: pkcs11.CKK_RSA, Bits: bits} }

// ECKey is an EC key pair on c.
func ECKey(c Curve) KeyParams { return KeyParams{KeyType: pkcs11.CKK_EC, Curve: c} }

// Secret reports whether the key is a single secret key rather than a pair.
func (p KeyParams) Secret() bool {
	return p.KeyType == pkcs11.CKK_AES || p.KeyType == pkcs11.CKK_GENERIC_SECRET
}

func (p KeyParams) String() string {
	switch p.KeyType {
	case pkcs11.CKK_AES:
		if p.Encrypts {
			return fmt.Sprintf("AES-%d (may encrypt, for the proof)", p.Bytes*8)
		}
		return fmt.Sprintf("AES-%d", p.Bytes*8)
	case pkcs11.CKK_GENERIC_SECRET:
		return fmt.Sprintf("%d-byte HMAC secret", p.Bytes)
	case pkcs11.CKK_RSA:
		return fmt.Sprintf("RSA-%d", p.Bits)
	case pkcs11.CKK_EC:
		return "EC " + p.Curve.Name
	}
	return fmt.Sprintf("key type %#x", p.KeyType)
}
