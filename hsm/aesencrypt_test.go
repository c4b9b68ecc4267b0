package hsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// An AES key generated to encrypt (Encrypts) computes AES-CBC-PAD in the
// token; one generated without it, as every other master copy is, is
// refused by the token: the proof never gives a key a use it lacks.
func TestEncryptAESCBCPadOnlyWithAnEncryptingKey(t *testing.T) {
	tok := openSoftHSM(t)
	p := hsm.AESKey(16)
	p.Encrypts = true
	k, err := tok.Generate("may-encrypt", p, false)
	if err != nil {
		t.Fatal(err)
	}
	iv := bytes.Repeat([]byte{1}, hsm.AESBlock)
	a, err := tok.EncryptAESCBCPad(k, iv, []byte("sixteen byte msg"))
	if err != nil || len(a) != 32 {
		t.Fatalf("encrypt: %x %v", a, err)
	}
	b, _ := tok.EncryptAESCBCPad(k, iv, []byte("sixteen byte msg"))
	c, _ := tok.EncryptAESCBCPad(k, make([]byte, hsm.AESBlock), []byte("sixteen byte msg"))
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("CBC-PAD is not a function of key, IV and message")
	}
	if _, err := tok.EncryptAESCBCPad(k, iv[:8], []byte("x")); err == nil {
		t.Error("an 8-byte IV was taken")
	}
	plain, err := tok.Generate("may-not", hsm.AESKey(32), false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tok.EncryptAESCBCPad(plain, iv, []byte("x"))
	var perr *hsm.Error
	if !errors.As(err, &perr) || perr.Code != pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED {
		t.Errorf("a key without CKA_ENCRYPT: %v", err)
	}
}
