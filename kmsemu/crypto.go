package kmsemu

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Ciphertext blob layout. Like a KMS ciphertext it is opaque to clients but
// names its key, so Decrypt needs no KeyId:
//
//	version(1) | key UUID or mrk- hex (16) | KeyMaterialId(32) | GCM nonce(12) | AES-256-GCM ciphertext+tag
//
// The header and the encryption context are the GCM additional data.
const (
	blobVersion = 0x01
	// blobVersionMRK marks a ciphertext of a multi-Region key.
	blobVersionMRK = 0x02
	blobKeyOff     = 1
	blobMatOff     = blobKeyOff + 16
	blobNonceOff   = blobMatOff + 32
	blobHeaderLen  = blobNonceOff + 12
	maxPlaintext   = 4096
)

type encryptInput struct {
	KeyId               *string
	Plaintext           []byte
	EncryptionContext   map[string]string
	GrantTokens         []string
	EncryptionAlgorithm *string
	DryRun              *bool
}

type encryptOutput struct {
	CiphertextBlob      []byte
	KeyId               string
	EncryptionAlgorithm string
}

type decryptInput struct {
	CiphertextBlob      []byte
	EncryptionContext   map[string]string
	GrantTokens         []string
	KeyId               *string
	EncryptionAlgorithm *string
	Recipient           *struct{}
	DryRun              *bool
}

type decryptOutput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionAlgorithm string
	KeyMaterialId       string `json:",omitempty"` // symmetric keys only
}

// usable checks that k can encrypt or decrypt now, with KMS's exceptions:
// DisabledException when disabled, KMSInvalidStateException when pending
// import or deletion.
func usable(k *key, op string) *apiError {
	switch k.state() {
	case stateEnabled:
		return nil
	case stateDisabled:
		return errorf("DisabledException", "%s is disabled.", k.arn)
	default:
		return invalidState(k, op)
	}
}

// checkCryptoRequest applies what Encrypt and Decrypt share: the algorithm
// (only SYMMETRIC_DEFAULT for these keys) and DryRun, which is not emulated.
func checkCryptoRequest(alg *string, dryRun *bool) *apiError {
	var v validator
	v.enum("encryptionAlgorithm", alg, enumValues(types.EncryptionAlgorithmSpec("").Values()))
	if err := v.err(); err != nil {
		return err
	}
	if dryRun != nil && *dryRun {
		return notImplemented("kms-emulator does not emulate DryRun")
	}
	return nil
}

func (s *Server) encrypt(c *call, body []byte) (any, *apiError) {
	var in encryptInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.required("keyId", in.KeyId != nil)
	if v.required("plaintext", in.Plaintext != nil) {
		v.blobLen("plaintext", in.Plaintext, 1, maxPlaintext)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if aerr := checkCryptoRequest(in.EncryptionAlgorithm, in.DryRun); aerr != nil {
		return nil, aerr
	}
	k, aerr := s.usageKey(c, in.KeyId, usageEncDec)
	if aerr != nil {
		return nil, aerr
	}
	if k.ks().kind == kindRSA {
		return s.encryptRSA(c, k, &in)
	}
	if in.EncryptionAlgorithm != nil && *in.EncryptionAlgorithm != algSymmetric {
		return nil, errorf("InvalidKeyUsageException", "%s is a %s key: it does not support encryption algorithm %s", k.arn, k.spec, *in.EncryptionAlgorithm)
	}
	if aerr := usable(k, c.op); aerr != nil {
		return nil, aerr
	}
	version, idBytes := blobKeyID(k.id)
	cur := k.current()
	matID, _ := hex.DecodeString(cur.id)
	header := make([]byte, blobHeaderLen)
	header[0] = version
	copy(header[blobKeyOff:], idBytes)
	copy(header[blobMatOff:], matID)
	if _, err := rand.Read(header[blobNonceOff:]); err != nil {
		return nil, errorf("KMSInternalException", "crypto/rand failed: %v", err)
	}
	gcm := newGCM(cur.secret)
	blob := gcm.Seal(header, header[blobNonceOff:], in.Plaintext, additionalData(header, in.EncryptionContext))
	return encryptOutput{CiphertextBlob: blob, KeyId: k.arn, EncryptionAlgorithm: algSymmetric}, nil
}

func (s *Server) decrypt(c *call, body []byte) (any, *apiError) {
	var in decryptInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	if v.required("ciphertextBlob", in.CiphertextBlob != nil) {
		v.blobLen("ciphertextBlob", in.CiphertextBlob, 1, maxCiphertext)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if aerr := checkCryptoRequest(in.EncryptionAlgorithm, in.DryRun); aerr != nil {
		return nil, aerr
	}
	if in.Recipient != nil {
		return nil, notImplemented("kms-emulator does not emulate Recipient (Nitro Enclaves attestation)")
	}
	if in.KeyId != nil {
		named, aerr := s.resolveKey(c, "keyId", in.KeyId, anyKeyRef)
		if aerr != nil {
			return nil, aerr
		}
		if named.spec != specSymmetric {
			// A symmetric ciphertext names its key: another key type
			// cannot decrypt it (recorded: IncorrectKeyException).
			if other := s.blobKey(c, in.CiphertextBlob); other != nil {
				return nil, errorf("IncorrectKeyException", "The ciphertext was encrypted under %s, not under %s (%s %s key)", other.arn, named.arn, article(named.spec), named.spec)
			}
			return s.decryptWithKey(c, named, &in)
		}
	}
	blob := in.CiphertextBlob
	if len(blob) < blobHeaderLen+16 || (blob[0] != blobVersion && blob[0] != blobVersionMRK) {
		return nil, errorf("InvalidCiphertextException", "The ciphertext is not one this KMS issued")
	}
	id := formatUUID(blob[blobKeyOff:blobMatOff])
	if blob[0] == blobVersionMRK {
		// A multi-Region key: any related key, in any Region, decrypts.
		id = "mrk-" + hex.EncodeToString(blob[blobKeyOff:blobMatOff])
	}
	k, ok := c.reg.keys[id]
	if !ok {
		c.keyID = id
		return nil, errorf("NotFoundException", "The ciphertext refers to a KMS key that does not exist, does not exist in this region, or you are not allowed to access: %s", c.reg.keyARN(id))
	}
	if in.KeyId != nil {
		named, aerr := s.resolveKey(c, "keyId", in.KeyId, anyKeyRef)
		if aerr != nil {
			return nil, aerr
		}
		if named != k {
			return nil, errorf("IncorrectKeyException", "The key ID in the request (%s) does not identify the KMS key that encrypted the ciphertext", *in.KeyId)
		}
	}
	c.keyID = k.id
	if in.EncryptionAlgorithm != nil && *in.EncryptionAlgorithm != algSymmetric {
		return nil, errorf("IncorrectKeyException", "The ciphertext was not encrypted with encryption algorithm %s", *in.EncryptionAlgorithm)
	}
	if aerr := usable(k, c.op); aerr != nil {
		return nil, aerr
	}
	// Any material associated with the key decrypts: the current one and
	// those rotated out (NON_CURRENT).
	m := k.matByID(hex.EncodeToString(blob[blobMatOff:blobNonceOff]))
	if m == nil || !m.associated() {
		return nil, errorf("InvalidCiphertextException", "The ciphertext was encrypted under key material that %s does not hold", k.arn)
	}
	header := blob[:blobHeaderLen]
	plain, err := newGCM(m.secret).Open(nil, header[blobNonceOff:], blob[blobHeaderLen:], additionalData(header, in.EncryptionContext))
	if err != nil {
		return nil, errorf("InvalidCiphertextException", "The ciphertext or its encryption context is not valid for %s", k.arn)
	}
	return decryptOutput{KeyId: k.arn, Plaintext: plain, EncryptionAlgorithm: algSymmetric, KeyMaterialId: m.id}, nil
}

func newGCM(material []byte) cipher.AEAD {
	block, err := aes.NewCipher(material)
	if err != nil {
		panic("kmsemu: key material is not an AES key: " + err.Error())
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic("kmsemu: " + err.Error())
	}
	return gcm
}

// additionalData binds a ciphertext to its header and to the encryption
// context, encoded unambiguously (sorted pairs, each string length-prefixed)
// so that only the same context, in any order, decrypts.
func additionalData(header []byte, ctx map[string]string) []byte {
	ad := append([]byte(nil), header...)
	put := func(s string) {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s)))
		ad = append(ad, s...)
	}
	for _, k := range slices.Sorted(maps.Keys(ctx)) {
		put(k)
		put(ctx[k])
	}
	return ad
}

// blobKey returns the key of this Region that a symmetric ciphertext of the
// emulator's format names, or nil if blob is not one.
func (s *Server) blobKey(c *call, blob []byte) *key {
	if len(blob) < blobHeaderLen+16 {
		return nil
	}
	var id string
	switch blob[0] {
	case blobVersion:
		id = formatUUID(blob[blobKeyOff:blobMatOff])
	case blobVersionMRK:
		id = "mrk-" + hex.EncodeToString(blob[blobKeyOff:blobMatOff])
	default:
		return nil
	}
	return c.reg.keys[id]
}

// blobKeyID is the version byte and the 16 bytes that name key id in a
// ciphertext: the UUID, or the 32 hex digits after mrk- with version
// blobVersionMRK.
func blobKeyID(id string) (byte, []byte) {
	if rest, ok := strings.CutPrefix(id, "mrk-"); ok {
		b, _ := hex.DecodeString(rest)
		return blobVersionMRK, b
	}
	b, _ := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	return blobVersion, b
}

func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type keyCheckValueOutput struct {
	KeyId         string
	KeyCheckValue string
	KeyMaterialId string
}

// getKeyCheckValue implements the emulator-only KmsBridgeGetKeyCheckValue:
// the check value an HSM reports for the same AES key, never the key.
func (s *Server) getKeyCheckValue(c *call, body []byte) (any, *apiError) {
	var in struct {
		KeyId         *string
		KeyMaterialId *string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, anyKeyRef)
	if aerr != nil {
		return nil, aerr
	}
	if k.spec != specSymmetric {
		other := "check it with GenerateMac"
		if k.ks().asymmetric() {
			other = "check it with GetPublicKey and Sign"
		}
		return nil, errorf("UnsupportedOperationException", "KmsBridgeGetKeyCheckValue works only on SYMMETRIC_DEFAULT (AES-256) keys; %s is %s %s key: %s", k.arn, article(k.spec), k.spec, other)
	}
	m := k.current()
	if in.KeyMaterialId != nil {
		if m = k.matByID(*in.KeyMaterialId); m == nil {
			return nil, errorf("NotFoundException", "KeyMaterialId %s is not key material of %s", *in.KeyMaterialId, k.arn)
		}
	}
	if m == nil || !m.imported {
		return nil, errorf("KMSInvalidStateException", "%s has no usable key material (state %s), so it has no key check value", k.arn, k.state())
	}
	return keyCheckValueOutput{KeyId: k.arn, KeyCheckValue: keyCheckValue(m.secret), KeyMaterialId: m.id}, nil
}

// keyCheckValue is the first 3 bytes of AES-ECB(key, 0^16), uppercase hex.
func keyCheckValue(material []byte) string {
	block, err := aes.NewCipher(material)
	if err != nil {
		panic("kmsemu: key material is not an AES key: " + err.Error())
	}
	var out [16]byte
	block.Encrypt(out[:], make([]byte, 16))
	return strings.ToUpper(hex.EncodeToString(out[:3]))
}
