package hsm

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// ErrNoAgreement means the token cannot derive an ECDH secret with an HSM
// key (the mechanism is missing, the key has CKA_DERIVE=false, the token
// refuses the derived key's template): the agreement can then be compared
// with the public key only. It is wrapped with the reason in the token's
// own terms.
var ErrNoAgreement = errors.New("the token cannot derive an ECDH secret with this key")

// deriver is the C_DeriveKey of a module; *pkcs11.Ctx has it. It is not
// part of PKCS11 so the unit tests' fakes need not grow it: a PKCS11
// without it cannot derive, which AgreementMAC says.
type deriver interface {
	DeriveKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, base pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
}

// DeriveKey is C_DeriveKey, bounded, when the module has it.
func (b boundedP11) DeriveKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, base pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	d, ok := b.p.(deriver)
	if !ok {
		return 0, fmt.Errorf("%w: this module handle has no C_DeriveKey", ErrNoAgreement)
	}
	return bounded(b.w, b.d, "C_DeriveKey", func() (pkcs11.ObjectHandle, error) { return d.DeriveKey(sh, m, base, temp) })
}

// AgreementSecretTemplate is the template of the ECDH secret AgreementMAC
// derives: a session object (gone with the session even if kmsbridge is
// killed), sensitive and never extractable, whose only use is the one
// HMAC that proves what it is. Its value never leaves the token.
func AgreementSecretTemplate(n int) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		// the raw ECDH secret (CKD_NULL): the curve's field size in bytes,
		// what KMS DeriveSharedSecret returns
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, n),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "kmsbridge ECDH check (session)"),
	}
}

// AgreementMAC derives, inside the token, the ECDH secret of the private
// key k (an EC key on a NIST curve) with the peer's public point (the
// uncompressed point 04||X||Y) by CKM_ECDH1_DERIVE with no KDF, as a
// sensitive, non-extractable session secret, and returns the HMAC-SHA-256
// of challenge under it, computed in the token. The caller compares it
// with the HMAC of the same challenge under the secret KMS's
// DeriveSharedSecret returns for the same peer key: equal only if KMS
// holds k. The derived secret's value is never read; the object is
// destroyed before returning. A token that cannot do this answers
// ErrNoAgreement with the reason.
func (t *Token) AgreementMAC(k *Key, peerPoint, challenge []byte) ([]byte, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	if k.Class != pkcs11.CKO_PRIVATE_KEY || k.KeyType != pkcs11.CKK_EC || k.Curve == nil {
		return nil, fmt.Errorf("%w: HSM key %q is not an EC private key on a known curve", ErrNoAgreement, k.Label)
	}
	n := k.Curve.Bytes
	if len(peerPoint) != 1+2*n || peerPoint[0] != 4 {
		return nil, fmt.Errorf("the peer's point is not an uncompressed point on %s", k.Curve.Name)
	}
	// What the token offers, before asking it to do anything.
	if list, err := t.p.GetMechanismList(t.slot); err == nil && !hasMechanism(list, pkcs11.CKM_ECDH1_DERIVE) {
		return nil, fmt.Errorf("%w: token %q does not list CKM_ECDH1_DERIVE", ErrNoAgreement, t.id.Label)
	} else if err == nil && !hasMechanism(list, pkcs11.CKM_SHA256_HMAC) {
		return nil, fmt.Errorf("%w: token %q does not list CKM_SHA256_HMAC, with which the derived secret would be compared", ErrNoAgreement, t.id.Label)
	}
	attrs, err := t.p.GetAttributeValue(t.session, k.Handle, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_DERIVE, nil)})
	if err != nil {
		return nil, noAgreement(fmt.Sprintf("reading CKA_DERIVE of HSM key %q", k.Label), newError("C_GetAttributeValue", err))
	}
	if !boolean(attrs[0].Value) {
		return nil, fmt.Errorf("%w: HSM key %q has CKA_DERIVE=false (kmsbridge sets it only on keys it generates for KEY_AGREEMENT)", ErrNoAgreement, k.Label)
	}
	d, ok := t.p.(deriver)
	if !ok {
		return nil, fmt.Errorf("%w: this module handle has no C_DeriveKey", ErrNoAgreement)
	}
	mech := pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, peerPoint))
	h, err := d.DeriveKey(t.session, []*pkcs11.Mechanism{mech}, k.Handle, AgreementSecretTemplate(n))
	if err != nil {
		if errors.Is(err, ErrNoAgreement) {
			return nil, err
		}
		return nil, noAgreement("", withMechanism(newError("C_DeriveKey", err), "CKM_ECDH1_DERIVE"))
	}
	defer func() { _ = t.p.DestroyObject(t.session, h) }()
	// Read back what the token made, never trusting the template: the
	// secret must be a sensitive, non-extractable session object.
	got, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
	})
	if err != nil {
		return nil, noAgreement("reading back the derived secret's policy", newError("C_GetAttributeValue", err))
	}
	if !boolean(got[0].Value) || boolean(got[1].Value) || boolean(got[2].Value) {
		return nil, fmt.Errorf("%w: token %q made the derived secret with CKA_SENSITIVE=%t CKA_EXTRACTABLE=%t CKA_TOKEN=%t, not the sensitive, non-extractable session object asked for; it was destroyed unused",
			ErrNoAgreement, t.id.Label, boolean(got[0].Value), boolean(got[1].Value), boolean(got[2].Value))
	}
	if err := t.p.SignInit(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, h); err != nil {
		return nil, noAgreement("", withMechanism(newError("C_SignInit", err), "CKM_SHA256_HMAC"))
	}
	mac, err := t.p.Sign(t.session, challenge)
	if err != nil {
		return nil, noAgreement("", newError("C_Sign", err))
	}
	return mac, nil
}

// noAgreement is a refusal of the token's ECDH check as ErrNoAgreement,
// with what was being done, so the caller falls back to the public-key
// comparison; a token that stopped answering or hung stays what it is
// (ErrTokenUnresponsive), which ends the run.
func noAgreement(doing string, err error) error {
	if errors.Is(err, ErrTokenUnresponsive) {
		return err
	}
	if doing != "" {
		return fmt.Errorf("%w: %s: %v", ErrNoAgreement, doing, err)
	}
	return fmt.Errorf("%w: %v", ErrNoAgreement, err)
}

func hasMechanism(list []*pkcs11.Mechanism, m uint) bool {
	for _, x := range list {
		if x.Mechanism == m {
			return true
		}
	}
	return false
}

// ProbeAgreement checks, on a throwaway session key pair on curve c made
// as kmsbridge makes a key-agreement key (CKA_DERIVE=true), that the token
// derives an ECDH secret the way AgreementMAC needs and that the secret is
// the right one: the token's HMAC under it equals the HMAC under the
// peer's ECDH with the pair's public key, computed here. Nothing is left
// in the token. ErrNoAgreement (with the reason) when the token cannot.
func (t *Token) ProbeAgreement(c Curve) error {
	t, done, err := t.bound()
	if err != nil {
		return err
	}
	defer done()
	curve := map[string]ecdh.Curve{P256.Name: ecdh.P256(), P384.Name: ecdh.P384(), P521.Name: ecdh.P521()}[c.Name]
	if curve == nil {
		return fmt.Errorf("%w: %s is not a NIST curve, so it has no key agreement in KMS", ErrNoAgreement, c.Name)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	p := ECKey(c)
	p.Derive = true
	pub, priv := KeyPairTemplates(p, probeLabel, id, false)
	for _, tmpl := range [][]*pkcs11.Attribute{pub, priv} {
		for i, a := range tmpl {
			if a.Type == pkcs11.CKA_TOKEN {
				tmpl[i] = pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)
			}
		}
	}
	pubH, privH, err := t.p.GenerateKeyPair(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pub, priv)
	if err != nil {
		return noAgreement("generating a throwaway "+c.Name+" key-agreement pair", withMechanism(newError("C_GenerateKeyPair", err), "CKM_EC_KEY_PAIR_GEN"))
	}
	defer func() { _ = t.p.DestroyObject(t.session, privH); _ = t.p.DestroyObject(t.session, pubH) }()
	attrs, err := t.p.GetAttributeValue(t.session, pubH, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return noAgreement("reading the throwaway pair's public point", newError("C_GetAttributeValue", err))
	}
	point, err := ecPoint(attrs[0].Value, c)
	if err != nil {
		return fmt.Errorf("%w: the throwaway pair's %v", ErrNoAgreement, err)
	}
	theirs, err := curve.NewPublicKey(point)
	if err != nil {
		return fmt.Errorf("%w: the throwaway pair's public point: %v", ErrNoAgreement, err)
	}
	peer, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	challenge := make([]byte, 32)
	_, _ = rand.Read(challenge)
	mac, err := t.AgreementMAC(&Key{Handle: privH, Label: probeLabel, Class: pkcs11.CKO_PRIVATE_KEY, KeyType: pkcs11.CKK_EC, Curve: &c}, peer.PublicKey().Bytes(), challenge)
	if err != nil {
		return err
	}
	z, err := peer.ECDH(theirs)
	if err != nil {
		return err
	}
	defer clear(z)
	want := hmac.New(sha256.New, z)
	want.Write(challenge)
	if !hmac.Equal(mac, want.Sum(nil)) {
		return fmt.Errorf("%w: token %q derives an ECDH secret that differs from the peer's ECDH with its public key", ErrNoAgreement, t.id.Label)
	}
	return nil
}
