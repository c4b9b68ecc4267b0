package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// AES-CBC with PKCS#7 padding is the one encryption the token computes with
// a master copy: the token's half of the proof that a cloud holds the same
// AES key (Azure Managed HSM encrypts with A128CBCPAD, A192CBCPAD and
// A256CBCPAD under an IV the caller chooses, so both sides compute the
// same function of the same input). The message is random test data, never
// key material; the key stays in the token.

// encrypter is the part of a PKCS#11 module the proof needs. It is not in
// PKCS11 so that the fakes of other tests need not grow it; a module
// without it cannot compute the proof, and says so.
type encrypter interface {
	EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
}

var errNoEncrypt = errors.New("this PKCS#11 module gives kmsbridge no C_Encrypt")

func (b boundedP11) EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	e, ok := b.p.(encrypter)
	if !ok {
		return errNoEncrypt
	}
	return b.do("C_EncryptInit", func() error { return e.EncryptInit(sh, m, o) })
}

func (b boundedP11) Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	e, ok := b.p.(encrypter)
	if !ok {
		return nil, errNoEncrypt
	}
	return bounded(b.w, b.d, "C_Encrypt", func() ([]byte, error) { return e.Encrypt(sh, message) })
}

// AESBlock is the AES block size, the length of a CBC IV.
const AESBlock = 16

// EncryptAESCBCPad encrypts msg under the AES key k with CKM_AES_CBC_PAD
// and iv inside the token. It needs a key the token lets encrypt
// (CKA_ENCRYPT); the error of one that may not is the token's
// CKR_KEY_FUNCTION_NOT_PERMITTED, as an *Error.
func (t *Token) EncryptAESCBCPad(k *Key, iv, msg []byte) ([]byte, error) {
	if len(iv) != AESBlock {
		return nil, fmt.Errorf("an AES-CBC IV is %d bytes, not %d", AESBlock, len(iv))
	}
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	e, ok := t.p.(encrypter)
	if !ok {
		return nil, errNoEncrypt
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_CBC_PAD, iv)}
	if err := e.EncryptInit(t.session, mech, k.Handle); err != nil {
		return nil, withMechanism(newError("C_EncryptInit", err), "CKM_AES_CBC_PAD")
	}
	out, err := e.Encrypt(t.session, msg)
	if err != nil {
		return nil, withMechanism(newError("C_Encrypt", err), "CKM_AES_CBC_PAD")
	}
	if len(out) != (len(msg)/AESBlock+1)*AESBlock {
		return nil, fmt.Errorf("the token's CKM_AES_CBC_PAD of %d bytes is %d bytes, not PKCS#7-padded CBC", len(msg), len(out))
	}
	return out, nil
}
