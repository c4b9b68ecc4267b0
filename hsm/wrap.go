package hsm

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"

	"github.com/miekg/pkcs11"
)

// OAEPHash is the hash RSA-OAEP uses, for both the label digest and MGF1:
// KMS requires the two to be the same.
type OAEPHash int

// The OAEP hashes KMS accepts.
const (
	OAEPSHA1 OAEPHash = iota + 1
	OAEPSHA256
)

// newHash returns the Go hash of h.
func (h OAEPHash) newHash() hash.Hash {
	if h == OAEPSHA256 {
		return sha256.New()
	}
	return sha1.New()
}

func (h OAEPHash) String() string {
	switch h {
	case OAEPSHA1:
		return "SHA-1"
	case OAEPSHA256:
		return "SHA-256"
	}
	return fmt.Sprintf("OAEPHash(%d)", int(h))
}

// mechanism is CKM_RSA_PKCS_OAEP with hash and MGF1 set to h and an empty
// label, as KMS decrypts it.
func (h OAEPHash) mechanism() (*pkcs11.Mechanism, error) {
	var hashAlg, mgf uint
	switch h {
	case OAEPSHA1:
		hashAlg, mgf = pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1
	case OAEPSHA256:
		hashAlg, mgf = pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256
	default:
		return nil, fmt.Errorf("unknown OAEP hash %v", h)
	}
	params := pkcs11.NewOAEPParams(hashAlg, mgf, pkcs11.CKZ_DATA_SPECIFIED, nil)
	return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, params), nil
}

// WrapOAEP wraps key under the RSA public key pub with one C_WrapKey using
// CKM_RSA_PKCS_OAEP. The public key enters the token as a session object
// that can only wrap, and is destroyed before WrapOAEP returns; for a key
// with CKA_WRAP_WITH_TRUSTED, the Security Officer's approved (trusted)
// copy of pub is used instead, and without one WrapOAEP fails with
// ErrNotApproved. The result
// is the RSA ciphertext, exactly the modulus length; the key's value never
// leaves the token in any other form.
func (t *Token) WrapOAEP(key *Key, pub *rsa.PublicKey, h OAEPHash) ([]byte, error) {
	if err := CheckWrappingPublicKey(pub); err != nil {
		return nil, err
	}
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	mech, err := h.mechanism()
	if err != nil {
		return nil, err
	}
	var wk pkcs11.ObjectHandle
	if key.WrapWithTrusted {
		// Dual control: only the Security Officer's approved copy of the
		// KMS wrapping key will do.
		h, ok, err := t.findTrustedWrappingKey(pub)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: HSM key %q has CKA_WRAP_WITH_TRUSTED=true, so the token wraps it only under a wrapping key its Security Officer approved, and this KMS wrapping key is not approved: run kmsbridge approve --bundle FILE as the SO first", ErrNotApproved, key.Label)
		}
		wk = h
	} else {
		if wk, err = t.p.CreateObject(t.session, WrappingPublicKeyTemplate(pub)); err != nil {
			var perr *Error
			if e := newError("C_CreateObject", err); !errors.As(e, &perr) || callFailure(perr.Code) {
				return nil, e
			}
			return nil, &UnsupportedError{Token: t.id.Label, Kind: KindWrappingKey, What: "the KMS wrapping public key as a session object",
				Why: fmt.Sprintf("C_CreateObject of the %d-bit RSA public key (CKA_TOKEN=false, CKA_WRAP=true) returned %s (%#x), so it cannot wrap under a KMS wrapping key with any algorithm; no wrap was tried. A token whose policy refuses public session objects may accept the key approved as trusted by its Security Officer (kmsbridge approve)", pub.N.BitLen(), ckrName(perr.Code), uint(perr.Code))}
		}
	}
	wrapped, err := t.p.WrapKey(t.session, []*pkcs11.Mechanism{mech}, wk, key.Handle)
	if !key.WrapWithTrusted {
		if derr := t.p.DestroyObject(t.session, wk); derr != nil && err == nil {
			return nil, newError("C_DestroyObject", derr)
		}
	}
	if err != nil {
		return nil, withMechanism(newError("C_WrapKey", err), "CKM_RSA_PKCS_OAEP ("+h.String()+")")
	}
	if len(wrapped) != pub.Size() {
		return nil, &UnsupportedError{Token: t.id.Label, Kind: KindWrap, What: "RSA-OAEP " + h.String(),
			Why: fmt.Sprintf("C_WrapKey with CKM_RSA_PKCS_OAEP returned %d bytes, not the %d-byte modulus length every RSA-OAEP ciphertext has, so its output is not RSA-OAEP and KMS could not unwrap it", len(wrapped), pub.Size())}
	}
	return wrapped, nil
}

// probePublicKey is a fixed RSA-2048 public key the probe wraps a throwaway
// key under. Its private half was discarded: nothing wrapped under it can
// ever be read, which is the point.
const probePublicKey = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA48TqpBPqcp4LihTYxj/l
505EY32usWfXIoizjXD1cwf15wCxhJkFDrDe6c583YicKNYlgVPOxwkmiqMQBKGK
7oBzie/yhOXqfTMrcBPg2nhHT0kU23ETzVredcJB/6TZdocbMBDY9sjge4B3Xb9R
Pr5ZIfbvBAMdC20e0u8W6zrAFxA3zCzD0mNJE9c/UorLBRHB1zcQUxMcpgO1Ijua
pO/tWDR6uzRrlMQk8CsylwVLdLm/84qYo/wW5BYlN/2ss8QK7Z/ipry14ErJ5Cp3
CwWbavVwKApIxi1hzqg0arUmu0KPYt8UP8sQYNn3vPdzWy8tEUfNLCqYQU91MLfz
uQIDAQAB
-----END PUBLIC KEY-----`

func probeKey() *rsa.PublicKey {
	block, _ := pem.Decode([]byte(probePublicKey))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		panic("hsm: embedded probe key: " + err.Error())
	}
	return pub.(*rsa.PublicKey)
}

// ErrWrapUnsupported means the token cannot wrap with the asked algorithm.
// Errors that mean it are *UnsupportedError.
var ErrWrapUnsupported = errors.New("wrapping algorithm not supported by the token")

// UnsupportedError says which wrapping a token cannot do and what it
// answered when asked.
type UnsupportedError struct {
	Token string
	// Kind says whether another wrapping method could help (KindWrap) or
	// what else the token lacks.
	Kind Kind
	// What is the wrapping, e.g. "RSA-OAEP SHA-256".
	What string
	// Why is the token's answer, e.g. "C_WrapKey returned CKR_ARGUMENTS_BAD (0x7)".
	Why string
}

func (e *UnsupportedError) Error() string {
	switch e.Kind {
	case KindWrap:
		return fmt.Sprintf("token %q cannot wrap with %s (%s)", e.Token, e.What, e.Why)
	case KindPersisted:
		return e.Why
	case KindWrappingKey:
		return fmt.Sprintf("token %q refuses %s: %s", e.Token, e.What, e.Why)
	}
	return fmt.Sprintf("token %q cannot do %s: %s", e.Token, e.What, e.Why)
}

// AtAll reports whether the token lacks a whole function (wrapping or
// generating any key), so no other algorithm will help, only another HSM.
func (e *UnsupportedError) AtAll() bool {
	return e.Kind == KindNoWrap || e.Kind == KindNoGenerate || e.Kind == KindWrappingKey
}

// Is makes errors.Is(err, ErrWrapUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrWrapUnsupported }

// probeOAEP finds out, inside the token and before any KMS call, whether it
// can wrap an AES-256 key with RSA-OAEP using h. It generates a throwaway
// session AES key, wraps it under a fixed public key whose private half
// does not exist, and destroys it. A nil error means the real wrap will
// work; an error wrapping ErrWrapUnsupported says why it will not.
func (t *Token) probeOAEP(h OAEPHash) error {
	t, done, err := t.bound()
	if err != nil {
		return err
	}
	defer done()
	ok, err := t.HasMechanism(pkcs11.CKM_RSA_PKCS_OAEP)
	if err != nil {
		return err
	}
	what := "RSA-OAEP " + h.String()
	if !ok {
		return &UnsupportedError{Token: t.id.Label, What: what, Why: "it does not list CKM_RSA_PKCS_OAEP"}
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
	probe, err := t.p.GenerateKey(t.session, mech, ProbeKeyTemplate())
	if err != nil {
		return newError("C_GenerateKey", err)
	}
	defer func() { _ = t.p.DestroyObject(t.session, probe) }()
	_, err = t.WrapOAEP(&Key{Handle: probe, Label: "probe"}, probeKey(), h)
	var perr *Error
	if errors.As(err, &perr) && perr.Call == "C_WrapKey" {
		return &UnsupportedError{Token: t.id.Label, What: what, Why: fmt.Sprintf("C_WrapKey returned %s (%#x)", ckrName(perr.Code), uint(perr.Code))}
	}
	return err
}
