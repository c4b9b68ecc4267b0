package hsm

import (
	"errors"

	"github.com/miekg/pkcs11"
)

// ListKeys returns every secret key and private key kept in the token
// (CKA_TOKEN true) that the logged-in user can see, with the same public
// attributes FindKey reads (never CKA_VALUE). Public keys, certificates and
// data objects are left out: they are never the material of an import. So
// are session objects: they are the throwaway keys of operations running
// at the same time (visible to every session of the process), gone when
// those end. A key destroyed between being found and being read (by
// another process, say) is left out too.
func (t *Token) ListKeys() ([]*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	var keys []*Key
	for _, class := range []uint{pkcs11.CKO_SECRET_KEY, pkcs11.CKO_PRIVATE_KEY} {
		hs, err := t.findObjects([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			k, err := t.describe(h)
			if errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)) {
				continue
			}
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// CountObjects returns how many objects kept in the token (CKA_TOKEN true)
// the logged-in user can see. It costs one search and reads no attribute:
// on a token that makes every attribute read a file read and a decryption
// (SoftHSM2's file store, docs/tokens.md), reading each object's label
// only to count them costs about twice the search.
func (t *Token) CountObjects() (int, error) {
	hs, err := t.findObjects([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
	return len(hs), err
}

// Labels returns how many objects kept in the token (CKA_TOKEN true) that
// the logged-in user can see carry each label, of any class. It costs one
// search of the whole token and one C_GetAttributeValue per object (one
// call where the module handle can make it, not miekg/pkcs11's length
// query and read: labelOneCall): a bulk run reads it once instead of searching for each key's label, which on a
// token that searches by reading every object (SoftHSM2's file store,
// docs/tokens.md) costs a read of every object per key. An object
// destroyed between being found and being read is left out.
func (t *Token) Labels() (map[string]int, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	hs, err := t.findObjects([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
	if err != nil {
		return nil, err
	}
	labels := make(map[string]int, len(hs))
	lr, oneCall := t.p.(oneCallLabeller)
	for _, h := range hs {
		if oneCall {
			label, err := lr.LabelOneCall(t.session, h)
			switch {
			case err == nil:
				labels[objectText(label)]++
				continue
			case errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)):
				continue
			case errors.Is(err, errNoOneCall):
				oneCall = false
			case !errors.Is(err, pkcs11.Error(pkcs11.CKR_BUFFER_TOO_SMALL)):
				return nil, newError("C_GetAttributeValue", err)
			}
			// A label longer than the one call's buffer, or no raw
			// module: read it the usual way.
		}
		attrs, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)) {
			continue
		}
		if err != nil {
			return nil, newError("C_GetAttributeValue", err)
		}
		if len(attrs) == 1 {
			labels[objectText(attrs[0].Value)]++
		}
	}
	return labels, nil
}

// oneCallLabeller is a PKCS11 that can read an object's CKA_LABEL with one
// C_GetAttributeValue (moduleCtx, through the bounds and the gate).
type oneCallLabeller interface {
	LabelOneCall(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) ([]byte, error)
}
