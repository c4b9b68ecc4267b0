// Package kwp is AES Key Wrap with Padding (RFC 5649, NIST SP 800-38F KWP)
// in Go, for the two places that must check what an HSM wrapped: the KMS
// emulator, which plays KMS, and kmsbridge's check of a token's own
// CKM_RSA_AES_KEY_WRAP on throwaway probe keys. kmsbridge never wraps real
// key material in Go: the HSM does.
package kwp

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// ICV is the RFC 5649 alternative initial value's constant half.
const ICV = 0xA65959A6

// ErrIntegrity is every unwrap failure; it reveals nothing more.
var ErrIntegrity = errors.New("AES key wrap with padding: integrity check failed")

// Unwrap undoes AES Key Wrap with Padding (RFC 5649, NIST SP 800-38F
// KWP) of ciphertext under kek, the second half of what PKCS#11
// CKM_RSA_AES_KEY_WRAP and KMS's RSA_AES_KEY_WRAP_SHA_* produce. It returns
// ErrIntegrity, revealing nothing else, unless the integrity value, the length
// indicator and the zero padding all check out.
func Unwrap(kek, ciphertext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < 16 || len(ciphertext)%8 != 0 {
		return nil, ErrIntegrity
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
	if binary.BigEndian.Uint32(a[:4]) != ICV {
		return nil, ErrIntegrity
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli <= 8*(n-1) || mli > 8*n {
		return nil, ErrIntegrity
	}
	pad := p[mli:]
	if subtle.ConstantTimeCompare(pad, make([]byte, len(pad))) != 1 {
		return nil, ErrIntegrity
	}
	return p[:mli], nil
}

// Wrap is RFC 5649 wrapping of plaintext under kek, the inverse of Unwrap.
// Tests and the emulator's own checks use it; kmsbridge wraps in the HSM.
func Wrap(kek, plaintext []byte) []byte {
	padded := make([]byte, (len(plaintext)+7)/8*8)
	copy(padded, plaintext)
	return wrapMLI(kek, padded, len(plaintext))
}

// wrapMLI wraps already padded data claiming a message length of mli,
// which lets tests forge inconsistent length indicators.
func wrapMLI(kek, padded []byte, mli int) []byte {
	block, err := aes.NewCipher(kek)
	if err != nil {
		panic(err)
	}
	padded = append([]byte(nil), padded...)
	var a [8]byte
	binary.BigEndian.PutUint32(a[:4], ICV)
	binary.BigEndian.PutUint32(a[4:], uint32(mli))
	n := len(padded) / 8
	if n == 1 {
		out := make([]byte, 16)
		copy(out, a[:])
		copy(out[8:], padded)
		block.Encrypt(out, out)
		return out
	}
	r := padded
	var b [16]byte
	for j := 0; j <= 5; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], a[:])
			copy(b[8:], r[8*(i-1):8*i])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(b[:8])^t)
			copy(r[8*(i-1):8*i], b[8:])
		}
	}
	return append(a[:], r...)
}
