package hsm

import (
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// EphemeralWrappingKeyTemplate is the template of the one-use AES-256 key
// a composed RSA-AES wrap makes inside the token: a session object that
// can wrap, extractable so RSA-OAEP can wrap it in turn, and destroyed
// right after.
func EphemeralWrappingKeyTemplate() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		// AES-256, as KMS's RSA_AES_KEY_WRAP requires
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, AESKeyBytes),
		// a session object: never stored, gone with the session at the latest
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// never readable in plaintext; leaves the token only under RSA-OAEP
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, false),
		// it wraps the target key and does nothing else
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "kmsbridge ephemeral AES key (session)"),
	}
}

// oneCallWrapper is a PKCS11 that can wrap in one C_WrapKey with a buffer
// sized from the RFC 5649 formula, for tokens whose size query
// under-reports.
type oneCallWrapper interface {
	WrapKeyOneCall(sh pkcs11.SessionHandle, mech uint, wrappingKey, key pkcs11.ObjectHandle) ([]byte, error)
}

// wrapKWP wraps key under the AES key wk with RFC 5649, using the
// mechanism and calling convention the token's quirks call for.
func (t *Token) wrapKWP(q Quirks, wk, key pkcs11.ObjectHandle) ([]byte, error) {
	if q.KWPSizeQueryShort {
		ow, ok := t.p.(oneCallWrapper)
		if !ok {
			return nil, fmt.Errorf("%s needs a one-call C_WrapKey for AES key wrap, which this module handle cannot make", q.Name)
		}
		out, err := ow.WrapKeyOneCall(t.session, q.KWPMechanism, wk, key)
		return out, newError("C_WrapKey", err)
	}
	out, err := t.p.WrapKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(q.KWPMechanism, nil)}, wk, key)
	return out, newError("C_WrapKey", err)
}

// WrapRSAAES wraps key the way KMS's RSA_AES_KEY_WRAP_SHA_* expects,
// entirely inside the token: a one-use AES-256 session key is generated,
// key is wrapped under it with RFC 5649, the AES key is wrapped under pub
// with RSA-OAEP using h, and the AES key is destroyed. The result is
// OAEP(aes key) || KWP(key), the first part exactly pub's modulus length:
// byte for byte what PKCS#11's CKM_RSA_AES_KEY_WRAP gives, which no Debian
// token implements.
func (t *Token) WrapRSAAES(key *Key, pub *rsa.PublicKey, h OAEPHash) ([]byte, error) {
	q := t.Quirks()
	eph, err := t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, EphemeralWrappingKeyTemplate())
	if err != nil {
		return nil, newError("C_GenerateKey", err)
	}
	defer func() { _ = t.p.DestroyObject(t.session, eph) }()
	kwp, err := t.wrapKWP(q, eph, key.Handle)
	if err != nil {
		return nil, err
	}
	if len(kwp) < 16 || len(kwp)%8 != 0 {
		return nil, fmt.Errorf("C_WrapKey returned %d bytes of AES key wrap, not a whole number of 8-byte blocks: the token's %#x is not RFC 5649", len(kwp), q.KWPMechanism)
	}
	oaep, err := t.WrapOAEP(&Key{Handle: eph, Label: "ephemeral AES key"}, pub, h)
	if err != nil {
		return nil, err
	}
	return append(oaep, kwp...), nil
}

// ProbeRSAAES finds out, inside the token and before any KMS call, whether
// it can do the composed RSA-AES wrap with OAEP hash h: it wraps a
// throwaway session AES key under the probe public key (whose private half
// does not exist) and checks the shape of the result.
func (t *Token) ProbeRSAAES(h OAEPHash) error {
	q := t.Quirks()
	what := "RSA-AES key wrap with OAEP " + h.String()
	for _, m := range []struct {
		mech uint
		name string
	}{{pkcs11.CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"}, {q.KWPMechanism, fmt.Sprintf("AES key wrap with padding (%#x)", q.KWPMechanism)}, {pkcs11.CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP"}} {
		ok, err := t.HasMechanism(m.mech)
		if err != nil {
			return err
		}
		if !ok {
			return &UnsupportedError{Token: t.id.Label, What: what, Why: "it does not list " + m.name}
		}
	}
	probe, err := t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, ProbeKeyTemplate())
	if err != nil {
		return newError("C_GenerateKey", err)
	}
	defer func() { _ = t.p.DestroyObject(t.session, probe) }()
	pub := probeKey()
	out, err := t.WrapRSAAES(&Key{Handle: probe, Label: "probe"}, pub, h)
	var perr *Error
	if errors.As(err, &perr) && perr.Call == "C_WrapKey" {
		return &UnsupportedError{Token: t.id.Label, What: what, Why: fmt.Sprintf("C_WrapKey returned %s (%#x)", ckrName(perr.Code), uint(perr.Code))}
	}
	if err != nil {
		return err
	}
	// OAEP part plus RFC 5649 of 32 bytes: 8 bytes of integrity check, 32 of key.
	if want := pub.Size() + 40; len(out) != want {
		return &UnsupportedError{Token: t.id.Label, What: what, Why: fmt.Sprintf("its output is %d bytes, not the %d of RSA-OAEP plus RFC 5649", len(out), want)}
	}
	return nil
}
