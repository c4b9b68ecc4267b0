package hsm

import (
	"crypto"
	"fmt"

	"github.com/miekg/pkcs11"
)

// hmacMechanisms maps a hash to its PKCS#11 HMAC mechanism.
var hmacMechanisms = map[crypto.Hash]uint{
	crypto.SHA224: pkcs11.CKM_SHA224_HMAC,
	crypto.SHA256: pkcs11.CKM_SHA256_HMAC,
	crypto.SHA384: pkcs11.CKM_SHA384_HMAC,
	crypto.SHA512: pkcs11.CKM_SHA512_HMAC,
}

// HMAC computes the HMAC of msg with the secret key k inside the token, so
// the result can be compared with KMS's GenerateMac over the same message.
func (t *Token) HMAC(k *Key, h crypto.Hash, msg []byte) ([]byte, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	mech, ok := hmacMechanisms[h]
	if !ok {
		return nil, fmt.Errorf("no PKCS#11 HMAC mechanism for %v", h)
	}
	if err := t.p.SignInit(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, k.Handle); err != nil {
		return nil, withMechanism(newError("C_SignInit", err), MechanismName(mech))
	}
	mac, err := t.p.Sign(t.session, msg)
	if err != nil {
		return nil, newError("C_Sign", err)
	}
	return mac, nil
}
