package kmsemu

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// kwpICV is the RFC 5649 alternative initial value's constant half.
const kwpICV = 0xA65959A6

var errKWP = errors.New("AES key wrap with padding: integrity check failed")

// kwpUnwrap undoes AES Key Wrap with Padding (RFC 5649, NIST SP 800-38F
// KWP) of ciphertext under kek, the second half of what PKCS#11
// CKM_RSA_AES_KEY_WRAP and KMS's RSA_AES_KEY_WRAP_SHA_* produce. It returns
// errKWP, revealing nothing else, unless the integrity value, the length
// indicator and the zero padding all check out.
func kwpUnwrap(kek, ciphertext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < 16 || len(ciphertext)%8 != 0 {
		return nil, errKWP
	}
	n := len(ciphertext)/8 - 1 // number of 64-bit plaintext blocks
	var a [8]byte
	p := make([]byte, 8*n)
	if n == 1 {
		// RFC 5649 section 4.2: a single block is one AES decryption.
		var buf [16]byte
		block.Decrypt(buf[:], ciphertext)
		copy(a[:], buf[:8])
		copy(p, buf[8:])
	} else {
		// RFC 3394 section 2.2.2, index-based unwrap.
		copy(a[:], ciphertext[:8])
		copy(p, ciphertext[8:])
		var b [16]byte
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(b[8:], p[8*(i-1):8*i])
				block.Decrypt(b[:], b[:])
				copy(a[:], b[:8])
				copy(p[8*(i-1):8*i], b[8:])
			}
		}
	}
	// RFC 5649 section 3: check the AIV and the message length indicator,
	// then that the padding is zeros.
	if binary.BigEndian.Uint32(a[:4]) != kwpICV {
		return nil, errKWP
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli <= 8*(n-1) || mli > 8*n {
		return nil, errKWP
	}
	pad := p[mli:]
	if subtle.ConstantTimeCompare(pad, make([]byte, len(pad))) != 1 {
		return nil, errKWP
	}
	return p[:mli], nil
}
