package hsm

import "github.com/miekg/pkcs11"

// The calls a module may have beside PKCS11 (deriver, encrypter) pass the
// gate too: a gated module that hid them would make the token look unable
// to derive or encrypt, and the proofs that need them (the HSM's own ECDH
// for a key-agreement key, the AES proof for Managed HSM) would quietly
// fall back or fail. gate_test.go checks a gated module keeps them.

// DeriveKey is C_DeriveKey through the gate: it creates an object from
// temp, so it runs apart from searches when temp asks for a token object.
func (x gated) DeriveKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, base pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	d, ok := x.p.(deriver)
	if !ok {
		return 0, ErrNoAgreement
	}
	defer x.creating(temp)()
	h, err := d.DeriveKey(sh, m, base, temp)
	if err == nil && !onToken(temp) {
		x.g.madeSession(sh, h)
	}
	return h, err
}

// EncryptInit is C_EncryptInit through the gate.
func (x gated) EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	e, ok := x.p.(encrypter)
	if !ok {
		return errNoEncrypt
	}
	defer x.using()()
	return e.EncryptInit(sh, m, o)
}

// Encrypt is C_Encrypt through the gate.
func (x gated) Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	e, ok := x.p.(encrypter)
	if !ok {
		return nil, errNoEncrypt
	}
	defer x.using()()
	return e.Encrypt(sh, message)
}

var (
	_ deriver   = gated{}
	_ encrypter = gated{}
)
