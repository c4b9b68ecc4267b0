package hsm

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/internal/kwp"
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
			return nil, newError("C_WrapKey", errNoOneCall)
		}
		out, err := ow.WrapKeyOneCall(t.session, q.KWPMechanism, wk, key)
		return out, withMechanism(newError("C_WrapKey", err), MechanismName(q.KWPMechanism))
	}
	out, err := t.p.WrapKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(q.KWPMechanism, nil)}, wk, key)
	return out, withMechanism(newError("C_WrapKey", err), MechanismName(q.KWPMechanism))
}

// WrapRSAAES wraps key the way KMS's RSA_AES_KEY_WRAP_SHA_* expects,
// entirely inside the token. When the token's own CKM_RSA_AES_KEY_WRAP has
// been checked to produce exactly that (NativeRSAAES), it is one C_WrapKey.
// Otherwise, as on every Debian token, it is composed: a one-use AES-256
// session key is generated, key is wrapped under it with RFC 5649, the AES
// key is wrapped under pub with RSA-OAEP using h, and the AES key is
// destroyed. Either way the result is OAEP(aes key) || KWP(key), the first
// part exactly pub's modulus length.
func (t *Token) WrapRSAAES(key *Key, pub *rsa.PublicKey, h OAEPHash) ([]byte, error) {
	if err := CheckWrappingPublicKey(pub); err != nil {
		return nil, err
	}
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	if native, _ := t.NativeRSAAES(h); native {
		return t.wrapRSAAESNative(key, pub, h)
	}
	q := t.Quirks()
	tmpl := EphemeralWrappingKeyTemplate()
	if c, err := t.Capabilities(); err == nil {
		tmpl = c.adapt(tmpl)
	}
	eph, err := t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, tmpl)
	if err != nil {
		e := withMechanism(newError("C_GenerateKey", err), "CKM_AES_KEY_GEN")
		var perr *Error
		if !errors.As(e, &perr) || callFailure(perr.Code) {
			return nil, e
		}
		return nil, &UnsupportedError{Token: t.id.Label, Kind: KindTemplate, What: "RSA-AES key wrap with OAEP " + h.String(),
			Why: fmt.Sprintf("RSA-AES wraps under a one-use AES-256 session key (CKA_TOKEN=false, CKA_SENSITIVE=true, CKA_EXTRACTABLE=true, CKA_WRAP=true), and C_GenerateKey of it returned %s (%#x): the token refuses that template or mechanism", ckrName(perr.Code), uint(perr.Code))}
	}
	defer func() { _ = t.p.DestroyObject(t.session, eph) }()
	if c, err := t.Capabilities(); err == nil {
		// The one-use AES key must not outlive the session.
		if err := c.checkSession(t, eph, "one-use AES-256 wrapping key"); err != nil {
			return nil, err
		}
	}
	kwp, err := t.wrapKWP(q, eph, key.Handle)
	if errors.Is(err, errNoOneCall) {
		return nil, &UnsupportedError{Token: t.id.Label, Kind: KindWrap, What: "RSA-AES key wrap with OAEP " + h.String(),
			Why: fmt.Sprintf("%s's AES key wrap needs a one-call C_WrapKey (its size query under-reports), which this module handle cannot make", q.Name)}
	}
	if err != nil {
		return nil, err
	}
	if len(kwp) < 16 || len(kwp)%8 != 0 {
		return nil, &UnsupportedError{Token: t.id.Label, Kind: KindWrap, What: "RSA-AES key wrap with OAEP " + h.String(),
			Why: fmt.Sprintf("C_WrapKey with %s returned %d bytes, not a whole number of 8-byte blocks of at least 16, so its output is not RFC 5649 and KMS could not unwrap it", MechanismName(q.KWPMechanism), len(kwp))}
	}
	oaep, err := t.WrapOAEP(&Key{Handle: eph, Label: "ephemeral AES key"}, pub, h)
	if err != nil {
		return nil, err
	}
	return append(oaep, kwp...), nil
}

// probeRSAAES finds out, inside the token and before any KMS call, whether
// it can do the composed RSA-AES wrap with OAEP hash h: it wraps a
// throwaway session AES key under the probe public key (whose private half
// does not exist) and checks the shape of the result.
func (t *Token) probeRSAAES(h OAEPHash) error {
	t, done, err := t.bound()
	if err != nil {
		return err
	}
	defer done()
	if native, _ := t.NativeRSAAES(h); native {
		return nil
	}
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

// rsaAESMechanism is CKM_RSA_AES_KEY_WRAP with a 256-bit AES key and OAEP
// with h for digest and MGF1, as KMS unwraps it.
func rsaAESMechanism(h OAEPHash) (*pkcs11.Mechanism, error) {
	if h != OAEPSHA1 && h != OAEPSHA256 {
		return nil, fmt.Errorf("unknown OAEP hash %v", h)
	}
	var hashAlg, mgf uint = pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1
	if h == OAEPSHA256 {
		hashAlg, mgf = pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256
	}
	return pkcs11.NewMechanism(CKM_RSA_AES_KEY_WRAP, &pkcs11.RSAAESKeyWrapParams{
		AESKeyBits: 256,
		OAEPParams: *pkcs11.NewOAEPParams(hashAlg, mgf, pkcs11.CKZ_DATA_SPECIFIED, nil),
	}), nil
}

// wrapRSAAESNative is one C_WrapKey with the token's CKM_RSA_AES_KEY_WRAP,
// under pub brought in as a wrap-only session object.
func (t *Token) wrapRSAAESNative(key *Key, pub *rsa.PublicKey, h OAEPHash) ([]byte, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	mech, err := rsaAESMechanism(h)
	if err != nil {
		return nil, err
	}
	wk, err := t.p.CreateObject(t.session, WrappingPublicKeyTemplate(pub))
	if err != nil {
		return nil, newError("C_CreateObject", err)
	}
	defer func() { _ = t.p.DestroyObject(t.session, wk) }()
	out, err := t.p.WrapKey(t.session, []*pkcs11.Mechanism{mech}, wk, key.Handle)
	if err != nil {
		return nil, withMechanism(newError("C_WrapKey", err), "CKM_RSA_AES_KEY_WRAP ("+h.String()+")")
	}
	if len(out) < pub.Size()+16 || (len(out)-pub.Size())%8 != 0 {
		return nil, &UnsupportedError{Token: t.id.Label, Kind: KindWrap, What: "RSA-AES key wrap with OAEP " + h.String(),
			Why: fmt.Sprintf("C_WrapKey with CKM_RSA_AES_KEY_WRAP returned %d bytes, not RSA-OAEP (%d) plus RFC 5649, so KMS could not unwrap it", len(out), pub.Size())}
	}
	return out, nil
}

// nativeCheck is the outcome of checking a token's CKM_RSA_AES_KEY_WRAP.
type nativeCheck struct {
	ok  bool
	why string
}

// NativeRSAAES reports whether the token's own CKM_RSA_AES_KEY_WRAP with
// OAEP hash h is used: only when the token lists it and its output on a
// throwaway probe key checks out outside the token (the right OAEP hash,
// an RFC 5649 part that unwraps to the probe key). why says which, for the
// log; SoftHSM2 2.7, for one, lists the mechanism but uses SHA-1 OAEP when
// asked for SHA-256. The answer is kept for the session.
func (t *Token) NativeRSAAES(h OAEPHash) (bool, string) {
	t, done, err := t.bound()
	if err != nil {
		return false, err.Error()
	}
	defer done()
	cache := &t.native
	if t.shared != nil {
		t.shared.nativeMu.Lock()
		defer t.shared.nativeMu.Unlock()
		cache = &t.shared.native
	}
	if c, ok := (*cache)[h]; ok {
		return c.ok, c.why
	}
	c := t.checkNativeRSAAES(h)
	if *cache == nil {
		*cache = map[OAEPHash]nativeCheck{}
	}
	(*cache)[h] = c
	return c.ok, c.why
}

// probeKnownValueTemplate is the template of the probe key the native
// check wraps: throwaway random bytes made for the check alone, in a
// session object that is neither sensitive nor kept, so that what the
// token wraps can be compared with what went in. It is never real key
// material.
func probeKnownValueTemplate(value []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "kmsbridge native RSA-AES check (session)"),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, value),
	}
}

var (
	checkKeyOnce sync.Once
	checkKey     *rsa.PrivateKey
	checkKeyErr  error
)

func (t *Token) checkNativeRSAAES(h OAEPHash) nativeCheck {
	listed, err := t.HasMechanism(CKM_RSA_AES_KEY_WRAP)
	if err != nil || !listed {
		return nativeCheck{false, "the token does not list CKM_RSA_AES_KEY_WRAP, so the wrap is composed inside the token"}
	}
	fail := func(format string, args ...any) nativeCheck {
		return nativeCheck{false, "the token lists CKM_RSA_AES_KEY_WRAP, but " + fmt.Sprintf(format, args...) + ", so the wrap is composed inside the token instead"}
	}
	checkKeyOnce.Do(func() { checkKey, checkKeyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if checkKeyErr != nil {
		return fail("no check key: %v", checkKeyErr)
	}
	value := make([]byte, AESKeyBytes)
	if _, err := rand.Read(value); err != nil {
		return fail("no probe value: %v", err)
	}
	target, err := t.p.CreateObject(t.session, probeKnownValueTemplate(value))
	if err != nil {
		return fail("the probe key could not be made (%v)", newError("C_CreateObject", err))
	}
	defer func() { _ = t.p.DestroyObject(t.session, target) }()
	out, err := t.wrapRSAAESNative(&Key{Handle: target, Label: "probe"}, &checkKey.PublicKey, h)
	if err != nil {
		return fail("it failed on a probe key (%v)", err)
	}
	n := checkKey.PublicKey.Size()
	aesKey, err := rsa.DecryptOAEP(h.newHash(), nil, checkKey, out[:n], nil)
	if err != nil {
		return fail("its output is not RSA-OAEP with %s for digest and MGF1", h)
	}
	got, err := kwp.Unwrap(aesKey, out[n:])
	if err != nil || !bytes.Equal(got, value) {
		return fail("its AES part does not unwrap (RFC 5649) to the probe key")
	}
	return nativeCheck{true, "the token's own CKM_RSA_AES_KEY_WRAP, checked on a probe key"}
}
