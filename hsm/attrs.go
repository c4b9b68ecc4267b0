package hsm

import "github.com/miekg/pkcs11"

// readAttributes reads the attributes types of object h. It asks for them
// all in one C_GetAttributeValue, which is one round trip to a network HSM
// and one refresh of the object on SoftHSM2; when the token refuses that
// (an attribute the object lacks fails the whole call), it asks for each
// on its own and leaves out those it cannot read. CKA_VALUE must not be
// among types.
func (t *Token) readAttributes(h pkcs11.ObjectHandle, types []uint) map[uint][]byte {
	out := make(map[uint][]byte, len(types))
	tmpl := make([]*pkcs11.Attribute, len(types))
	for i, typ := range types {
		tmpl[i] = pkcs11.NewAttribute(typ, nil)
	}
	if got, err := t.p.GetAttributeValue(t.session, h, tmpl); err == nil && len(got) == len(types) {
		for _, a := range got {
			out[a.Type] = a.Value
		}
		return out
	}
	for _, typ := range types {
		if got, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)}); err == nil && len(got) == 1 {
			out[typ] = got[0].Value
		}
	}
	return out
}

// describedAttributes are the policy, size and check-value attributes
// describe reads of an object of class and keyType: those PKCS#11 defines
// for it, so that a token that has them all answers in one call.
func describedAttributes(class, keyType uint) []uint {
	all := []uint{pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_WRAP_WITH_TRUSTED,
		pkcs11.CKA_LOCAL, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE}
	switch {
	case class == pkcs11.CKO_SECRET_KEY:
		return append(all, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_CHECK_VALUE)
	case class == pkcs11.CKO_PRIVATE_KEY && keyType == pkcs11.CKK_RSA:
		return append(all, pkcs11.CKA_MODULUS)
	case class == pkcs11.CKO_PRIVATE_KEY && keyType == pkcs11.CKK_EC:
		return append(all, pkcs11.CKA_EC_PARAMS)
	}
	return append(all, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_MODULUS, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_CHECK_VALUE)
}

// readError is the error of reading attribute typ of h on its own, for a
// message saying why it could not be read.
func (t *Token) readError(h pkcs11.ObjectHandle, typ uint) error {
	_, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
	return newError("C_GetAttributeValue", err)
}
