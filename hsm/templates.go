package hsm

import (
	"crypto/rsa"
	"math/big"

	"github.com/miekg/pkcs11"
)

// AESKeyBytes is the length of the AES-256 keys kmsbridge generates: the
// 32 bytes of KMS SYMMETRIC_DEFAULT key material.
const AESKeyBytes = 32

// SecretKeyTemplate is the template of a secret key kmsbridge generates as
// the master copy of KMS key material: AES-256 for SYMMETRIC_DEFAULT, a
// generic secret of the spec's length for HMAC keys. Every attribute that
// decides the key's safety is set explicitly, never left to the token's
// defaults. wrapWithTrusted restricts wrapping to wrapping keys the
// Security Officer marked CKA_TRUSTED (dual control).
func SecretKeyTemplate(p KeyParams, label string, id []byte, wrapWithTrusted bool) []*pkcs11.Attribute {
	hmac := p.KeyType == pkcs11.CKK_GENERIC_SECRET
	return []*pkcs11.Attribute{
		// a secret key of the asked type (CKK_AES or CKK_GENERIC_SECRET)
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, p.KeyType),
		// exactly the length KMS requires for the key spec
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, p.Bytes),
		// a persistent token object: the HSM keeps the master copy so the
		// same material can be imported again after it expires or is deleted
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// visible only to a logged-in user
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// the value can never be read out in plaintext
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		// the value may leave the token only wrapped, which is how it reaches KMS
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		// with dual control, only under a wrapping key the SO has approved
		pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, wrapWithTrusted),
		// an HMAC key may sign, so the HSM can compute the HMAC that proves
		// KMS holds the same material; an AES key has no use in the HSM
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, hmac),
		// an AES key asked to (Encrypts) may encrypt, so the HSM can prove a
		// cloud that only encrypts holds the same key (Azure Managed HSM)
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, p.Encrypts && p.KeyType == pkcs11.CKK_AES),
		// nothing else: no decryption, verification, wrapping or derivation
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		// how kmsbridge and operators find it again
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// AES256KeyTemplate is SecretKeyTemplate for AES-256.
func AES256KeyTemplate(label string, id []byte, wrapWithTrusted bool) []*pkcs11.Attribute {
	return SecretKeyTemplate(AES256(), label, id, wrapWithTrusted)
}

// KeyPairTemplates are the templates of an RSA or EC key pair kmsbridge
// generates as the master copy of an asymmetric KMS key. The private key
// is sensitive and extractable only by wrapping, with no use in the HSM;
// the public key is a token object with the same label and CKA_ID, so the
// HSM can prove KMS holds the pair (KMS's public key must equal it, and
// KMS's signatures must verify under it).
func KeyPairTemplates(p KeyParams, label string, id []byte, wrapWithTrusted bool) (public, private []*pkcs11.Attribute) {
	public = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, p.KeyType),
		// kept in the token beside the private key, readable without login
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		// may verify (KMS's signatures); never encrypts or wraps
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	switch p.KeyType {
	case pkcs11.CKK_RSA:
		public = append(public,
			// the modulus size of the KMS key spec, and the usual exponent F4
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, p.Bits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	case pkcs11.CKK_EC:
		// the curve of the KMS key spec, as a named-curve OID
		public = append(public, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p.Curve.params()))
	}
	private = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, p.KeyType),
		// a persistent token object: the HSM keeps the master copy
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// visible only to a logged-in user
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// the private key can never be read out in plaintext
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		// it may leave the token only wrapped, which is how it reaches KMS
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		// with dual control, only under a wrapping key the SO has approved
		pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, wrapWithTrusted),
		// no use in the HSM: KMS signs with it, the HSM only keeps it
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN_RECOVER, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		// ECDH only for a key-agreement key (KeyParams.Derive), so the HSM
		// can prove KMS holds it; never for any other
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, p.Derive && p.KeyType == pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	return public, private
}

// WrappingPublicKeyTemplate is the template of a KMS wrapping public key
// brought into the token for one wrap. It is a session object, gone when
// the session closes even if kmsbridge is killed before destroying it, and
// it can only wrap.
func WrappingPublicKeyTemplate(pub *rsa.PublicKey) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		// a session object: never stored in the token
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		// only for wrapping keys; not for encrypting data or verifying
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "kmsbridge KMS wrapping key (session)"),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()),
	}
}

// ProbeKeyTemplate is the template of the throwaway AES key the
// wrapping-algorithm probe wraps. It is a session object and extractable,
// holds nothing of value, and is destroyed right after the probe.
func ProbeKeyTemplate() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, AESKeyBytes),
		// a session object: never stored in the token
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// as the real key: sensitive and extractable, so the probe exercises
		// the same policy checks the real wrap will meet
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "kmsbridge probe (session)"),
	}
}
