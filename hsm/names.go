package hsm

import (
	"fmt"

	"github.com/miekg/pkcs11"
)

// mechanismNames are the mechanisms kmsbridge uses or reports, by name.
var mechanismNames = map[uint]string{
	pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN:  "CKM_RSA_PKCS_KEY_PAIR_GEN",
	pkcs11.CKM_RSA_PKCS:               "CKM_RSA_PKCS",
	pkcs11.CKM_RSA_X_509:              "CKM_RSA_X_509",
	pkcs11.CKM_RSA_PKCS_OAEP:          "CKM_RSA_PKCS_OAEP",
	pkcs11.CKM_RSA_PKCS_PSS:           "CKM_RSA_PKCS_PSS",
	pkcs11.CKM_SHA256_RSA_PKCS:        "CKM_SHA256_RSA_PKCS",
	pkcs11.CKM_RSA_AES_KEY_WRAP:       "CKM_RSA_AES_KEY_WRAP",
	pkcs11.CKM_SHA_1:                  "CKM_SHA_1",
	pkcs11.CKM_SHA_1_HMAC:             "CKM_SHA_1_HMAC",
	pkcs11.CKM_SHA224:                 "CKM_SHA224",
	pkcs11.CKM_SHA224_HMAC:            "CKM_SHA224_HMAC",
	pkcs11.CKM_SHA256:                 "CKM_SHA256",
	pkcs11.CKM_SHA256_HMAC:            "CKM_SHA256_HMAC",
	pkcs11.CKM_SHA384:                 "CKM_SHA384",
	pkcs11.CKM_SHA384_HMAC:            "CKM_SHA384_HMAC",
	pkcs11.CKM_SHA512:                 "CKM_SHA512",
	pkcs11.CKM_SHA512_HMAC:            "CKM_SHA512_HMAC",
	pkcs11.CKM_GENERIC_SECRET_KEY_GEN: "CKM_GENERIC_SECRET_KEY_GEN",
	pkcs11.CKM_EC_KEY_PAIR_GEN:        "CKM_EC_KEY_PAIR_GEN",
	pkcs11.CKM_ECDSA:                  "CKM_ECDSA",
	pkcs11.CKM_ECDH1_DERIVE:           "CKM_ECDH1_DERIVE",
	pkcs11.CKM_AES_KEY_GEN:            "CKM_AES_KEY_GEN",
	pkcs11.CKM_AES_ECB:                "CKM_AES_ECB",
	pkcs11.CKM_AES_CBC:                "CKM_AES_CBC",
	pkcs11.CKM_AES_CBC_PAD:            "CKM_AES_CBC_PAD",
	pkcs11.CKM_AES_GCM:                "CKM_AES_GCM",
	pkcs11.CKM_AES_KEY_WRAP:           "CKM_AES_KEY_WRAP",
	pkcs11.CKM_AES_KEY_WRAP_PAD:       "CKM_AES_KEY_WRAP_PAD",
	CKM_AES_KEY_WRAP_KWP:              "CKM_AES_KEY_WRAP_KWP",
}

// MechanismName is the CKM_ name of mech, or its number in hex.
func MechanismName(mech uint) string {
	if n, ok := mechanismNames[mech]; ok {
		return n
	}
	return fmt.Sprintf("CKM_%#x", mech)
}

// attributeNames are the attributes of kmsbridge's templates, by name.
var attributeNames = map[uint]string{
	pkcs11.CKA_CLASS:             "CKA_CLASS",
	pkcs11.CKA_TOKEN:             "CKA_TOKEN",
	pkcs11.CKA_PRIVATE:           "CKA_PRIVATE",
	pkcs11.CKA_LABEL:             "CKA_LABEL",
	pkcs11.CKA_VALUE:             "CKA_VALUE",
	pkcs11.CKA_TRUSTED:           "CKA_TRUSTED",
	pkcs11.CKA_CHECK_VALUE:       "CKA_CHECK_VALUE",
	pkcs11.CKA_KEY_TYPE:          "CKA_KEY_TYPE",
	pkcs11.CKA_ID:                "CKA_ID",
	pkcs11.CKA_SENSITIVE:         "CKA_SENSITIVE",
	pkcs11.CKA_ENCRYPT:           "CKA_ENCRYPT",
	pkcs11.CKA_DECRYPT:           "CKA_DECRYPT",
	pkcs11.CKA_WRAP:              "CKA_WRAP",
	pkcs11.CKA_UNWRAP:            "CKA_UNWRAP",
	pkcs11.CKA_SIGN:              "CKA_SIGN",
	pkcs11.CKA_SIGN_RECOVER:      "CKA_SIGN_RECOVER",
	pkcs11.CKA_VERIFY:            "CKA_VERIFY",
	pkcs11.CKA_DERIVE:            "CKA_DERIVE",
	pkcs11.CKA_MODULUS:           "CKA_MODULUS",
	pkcs11.CKA_MODULUS_BITS:      "CKA_MODULUS_BITS",
	pkcs11.CKA_PUBLIC_EXPONENT:   "CKA_PUBLIC_EXPONENT",
	pkcs11.CKA_VALUE_LEN:         "CKA_VALUE_LEN",
	pkcs11.CKA_EXTRACTABLE:       "CKA_EXTRACTABLE",
	pkcs11.CKA_EC_PARAMS:         "CKA_EC_PARAMS",
	pkcs11.CKA_EC_POINT:          "CKA_EC_POINT",
	pkcs11.CKA_WRAP_WITH_TRUSTED: "CKA_WRAP_WITH_TRUSTED",
}

// AttributeName is the CKA_ name of typ, or its number in hex.
func AttributeName(typ uint) string {
	if n, ok := attributeNames[typ]; ok {
		return n
	}
	return fmt.Sprintf("CKA_%#x", typ)
}
