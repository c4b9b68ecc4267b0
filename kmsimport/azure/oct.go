package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// An AES key in a Managed HSM (oct-HSM) has no public key to compare, so
// the import is proved by computing the same function of the same input on
// both sides: AES-CBC with PKCS#7 padding (Managed HSM's A128CBCPAD,
// A192CBCPAD, A256CBCPAD, whose IV the caller chooses) of a random
// message, under a random IV. The token encrypts inside itself; the
// Managed HSM encrypts the same message (its ciphertext must be the
// token's, byte for byte) and decrypts the token's ciphertext (to the
// message). Neither side's key ever leaves it; the message is test data.
//
// An HSM key the token does not let encrypt (an AES key kmsbridge made for
// AWS or Google, CKA_ENCRYPT false) is proved by its key check value
// instead, when the token gives one: CKA_CHECK_VALUE is the first 3 bytes
// of AES-ECB(key, 0^16), which is the first block of CBC of a zero block
// under a zero IV. That is 24 bits, recorded as such. With neither, the
// import could not be proved and is refused before any change.

// aesEncrypter is the token's half of the proof; *hsm.Token has it.
type aesEncrypter interface {
	EncryptAESCBCPad(k *hsm.Key, iv, msg []byte) ([]byte, error)
}

// octProof is the token's half, computed before the vault is asked.
type octProof struct {
	byCheckValue bool
	iv, msg, ct  []byte
}

// Proof methods, as the result names them.
const (
	ProofEncrypt    = "encrypt-decrypt"
	ProofCheckValue = "key-check-value"
	ProofPublicKey  = "public-key"
)

// octAlgorithm is Managed HSM's AES-CBC-PAD of a key of n bytes.
func octAlgorithm(n int) azkeys.EncryptionAlgorithm {
	switch n {
	case 16:
		return azkeys.EncryptionAlgorithmA128CBCPAD
	case 24:
		return azkeys.EncryptionAlgorithmA192CBCPAD
	}
	return azkeys.EncryptionAlgorithmA256CBCPAD
}

// octTokenHalf computes the token's half of the proof for r.key, once. A
// key the token will not encrypt with falls back to its check value; one
// with neither is refused (nothing has changed when check calls this).
func (r *run) octTokenHalf() error {
	if r.oct != nil {
		return nil
	}
	enc, ok := r.im.Token.(aesEncrypter)
	var encErr error
	if ok {
		iv, msg := make([]byte, hsm.AESBlock), make([]byte, 2*hsm.AESBlock)
		if _, err := rand.Read(iv); err != nil {
			return err
		}
		if _, err := rand.Read(msg); err != nil {
			return err
		}
		ct, err := enc.EncryptAESCBCPad(r.key, iv, msg)
		if err == nil {
			r.oct = &octProof{iv: iv, msg: msg, ct: ct}
			return nil
		}
		// The token's refusal (this key may not encrypt, or it has no
		// CKM_AES_CBC_PAD) leaves the check value; a failure of the call
		// itself (device, session, login) is returned as it is.
		var perr *hsm.Error
		if errors.As(err, &perr) && perr.Code != pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED && perr.Code != pkcs11.CKR_MECHANISM_INVALID &&
			perr.Code != pkcs11.CKR_KEY_TYPE_INCONSISTENT && perr.Code != pkcs11.CKR_FUNCTION_NOT_SUPPORTED && perr.Code != pkcs11.CKR_MECHANISM_PARAM_INVALID {
			return err
		}
		encErr = err
	} else {
		encErr = errors.New("this token gives kmsbridge no AES encryption")
	}
	if len(r.key.CheckValue) == 3 {
		r.oct = &octProof{byCheckValue: true, iv: make([]byte, hsm.AESBlock), msg: make([]byte, hsm.AESBlock)}
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("HSM key %q may not encrypt in the token (%v): the import is proved by its 24-bit key check value only; a key kmsbridge generates for Managed HSM may encrypt, and is proved in full", r.key.Label, encErr))
		return nil
	}
	return fmt.Errorf("%w: the import of HSM key %q could not be proved: the token will not encrypt with it (%v) and gives it no key check value (CKA_CHECK_VALUE), so nothing could show the Managed HSM holds the same AES key; generate a new key with --generate (kmsbridge lets it encrypt, for the proof) or use a token that gives AES keys a check value", hsm.ErrUnsuitableKey, r.key.Label, encErr)
}

// proveOct asks the Managed HSM for its half of the proof with the key
// version b names, and compares.
func (r *run) proveOct(ctx context.Context, b *azkeys.KeyBundle) (Proof, error) {
	if err := r.octTokenHalf(); err != nil {
		return Proof{}, err
	}
	name, version := r.req.KeyName, ""
	if b.Key != nil && b.Key.KID != nil {
		version = b.Key.KID.Version()
	}
	alg := octAlgorithm(int(r.key.ValueLen))
	kid := r.req.String()
	if b.Key != nil && b.Key.KID != nil {
		kid = string(*b.Key.KID)
	}
	got, err := r.im.KV.Encrypt(ctx, name, version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: r.oct.msg, IV: r.oct.iv}, nil)
	if err != nil {
		return Proof{}, r.octRefused("Encrypt", kid, err)
	}
	p := Proof{Method: ProofEncrypt, Algorithm: string(alg)}
	if r.oct.byCheckValue {
		p.Method = ProofCheckValue
		if len(got.Result) < 3 || !bytes.Equal(got.Result[:3], r.key.CheckValue) {
			return p, fmt.Errorf("%w: key %s's %s of a zero block under a zero IV does not begin with HSM key %q's check value %s: it is not the HSM's AES key; do not use it", kmsimport.ErrVerification, kid, alg, r.key.Label, r.key.CheckValueHex())
		}
		p.MaterialConfirmed = true
		p.Summary = fmt.Sprintf("the Managed HSM's %s of a zero block under a zero IV begins with the HSM key's check value %s (24 bits; the token may not encrypt with this key)", alg, r.key.CheckValueHex())
		return p, nil
	}
	if !bytes.Equal(got.Result, r.oct.ct) {
		return p, fmt.Errorf("%w: key %s's %s of a random message differs from the token's CKM_AES_CBC_PAD of it under the same IV: it is not the HSM's AES key; do not use it", kmsimport.ErrVerification, kid, alg)
	}
	back, err := r.im.KV.Decrypt(ctx, name, version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: r.oct.ct, IV: r.oct.iv}, nil)
	if err != nil {
		return p, r.octRefused("Decrypt", kid, err)
	}
	if !bytes.Equal(back.Result, r.oct.msg) {
		return p, fmt.Errorf("%w: key %s decrypts the token's ciphertext to something else than the message: it is not the HSM's AES key; do not use it", kmsimport.ErrVerification, kid)
	}
	p.MaterialConfirmed = true
	p.Summary = fmt.Sprintf("the Managed HSM's %s of a random %d-byte message equals the token's CKM_AES_CBC_PAD under the same IV (%s), and it decrypts the token's ciphertext to the message", alg, len(r.oct.msg), hex.EncodeToString(r.oct.iv))
	return p, nil
}

// octRefused is a refused proof operation as a KMS error.
func (r *run) octRefused(op, kid string, err error) error {
	return fmt.Errorf("key %s: the proof could not be computed: %w", kid, kvError(op, err))
}

// octPrecheck is check's part for an AES key, changing nothing: the key
// must be usable for the proof once imported, and the token's half is
// computed now for a key that exists.
func (r *run) octPrecheck() error {
	if err := r.octProvable(); err != nil {
		return err
	}
	if r.key == nil {
		// Generated with CKA_ENCRYPT: probe-wrapping checked the token
		// computes the proof on a throwaway key of the same template.
		return nil
	}
	return r.octTokenHalf()
}

// octProvable refuses the attributes under which a Managed HSM will not
// encrypt with the imported key, so that its import could not be proved.
// The split's prepare and wrap ask it too, before anything is made.
func (r *run) octProvable() error {
	if r.req.Disabled || (r.req.NotBefore != nil && r.req.NotBefore.After(r.im.now())) {
		return invalid("--disabled or a future --not-before with an AES key: a Managed HSM will not encrypt with a disabled or not-yet-valid key, so the import could not be proved; import it enabled, then disable it (az keyvault key set-attributes --hsm-name NAME --name %s --enabled false)", r.req.KeyName)
	}
	return nil
}

// octEvidence is the token's half of an AES key's proof as the split's
// wrapped file carries it to the upload: the token's CKM_AES_CBC_PAD of a
// random message, or, for a key the token will not encrypt with, its key
// check value.
func (r *run) octEvidence() (kmsimport.Evidence, string, error) {
	if err := r.octTokenHalf(); err != nil {
		return kmsimport.Evidence{}, "", err
	}
	if r.oct.byCheckValue {
		return kmsimport.Evidence{KeyCheckValue: r.key.CheckValueHex()},
			"the token will not encrypt with this key: the upload proves it by its key check value " + r.key.CheckValueHex() + " (24 bits)", nil
	}
	return kmsimport.Evidence{CipherIV: r.oct.iv, CipherMessage: r.oct.msg, Ciphertext: r.oct.ct},
		fmt.Sprintf("the token's CKM_AES_CBC_PAD of a random %d-byte message, for the upload's proof", len(r.oct.msg)), nil
}

// octFromEvidence takes the token's half of the proof from the wrapped
// file: the upload has no token.
func (r *run) octFromEvidence(ev kmsimport.Evidence) error {
	switch {
	case len(ev.Ciphertext) > 0:
		if len(ev.CipherIV) != hsm.AESBlock || len(ev.CipherMessage) == 0 || len(ev.Ciphertext)%hsm.AESBlock != 0 || len(ev.Ciphertext) <= len(ev.CipherMessage) {
			return invalid("the wrapped file's AES evidence (CipherIV, CipherMessage, Ciphertext) is not a CBC-PAD encryption: the file was altered; wrap again")
		}
		r.oct = &octProof{iv: ev.CipherIV, msg: ev.CipherMessage, ct: ev.Ciphertext}
	case ev.KeyCheckValue != "":
		cv, err := hex.DecodeString(ev.KeyCheckValue)
		if err != nil || len(cv) != 3 {
			return invalid("the wrapped file's KeyCheckValue %q is not 3 bytes of hex: the file was altered; wrap again", kmsimport.Excerpt(ev.KeyCheckValue))
		}
		r.key.CheckValue = cv
		// The wrap's warning, which the wrapped file carries, says so.
		r.oct = &octProof{byCheckValue: true, iv: make([]byte, hsm.AESBlock), msg: make([]byte, hsm.AESBlock)}
	default:
		return invalid("the wrapped file carries no evidence of the AES key (Ciphertext or KeyCheckValue): the upload could not prove the import; use the file kmsbridge wrap wrote, unedited")
	}
	return nil
}
