package hsm

import (
	"crypto/rsa"
	"math/big"

	"github.com/miekg/pkcs11"
)

// AESKeyBytes is the length of the AES-256 keys kmsbridge generates: the
// 32 bytes of KMS SYMMETRIC_DEFAULT key material.
const AESKeyBytes = 32

// AES256KeyTemplate is the template of the AES-256 master copy kmsbridge
// generates for a KMS SYMMETRIC_DEFAULT key. Every attribute that decides
// the key's safety is set explicitly, never left to the token's defaults.
// wrapWithTrusted restricts wrapping to wrapping keys the Security Officer
// marked CKA_TRUSTED (dual control).
func AES256KeyTemplate(label string, id []byte, wrapWithTrusted bool) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// a secret key, of type AES
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		// 256 bits: the length KMS requires for SYMMETRIC_DEFAULT material
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, AESKeyBytes),
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
		// no use inside the HSM: the key exists to be imported into KMS,
		// so nothing can encrypt, sign or derive with it here
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		// how kmsbridge and operators find it again
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
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
