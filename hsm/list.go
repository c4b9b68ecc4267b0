package hsm

import "github.com/miekg/pkcs11"

// ListKeys returns every secret key and private key in the token that the
// logged-in user can see, with the same public attributes FindKey reads
// (never CKA_VALUE). Public keys, certificates and data objects are left
// out: they are never the material of an import.
func (t *Token) ListKeys() ([]*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	var keys []*Key
	for _, class := range []uint{pkcs11.CKO_SECRET_KEY, pkcs11.CKO_PRIVATE_KEY} {
		hs, err := t.findObjects([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)})
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			k, err := t.describe(h)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}
