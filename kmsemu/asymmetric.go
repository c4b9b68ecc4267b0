package kmsemu

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"hash"
	"math/big"
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

type getPublicKeyOutput struct {
	KeyId                  string
	PublicKey              []byte
	CustomerMasterKeySpec  string
	KeySpec                string
	KeyUsage               string
	EncryptionAlgorithms   []string `json:",omitempty"`
	SigningAlgorithms      []string `json:",omitempty"`
	KeyAgreementAlgorithms []string `json:",omitempty"`
}

// getPublicKey answers UnsupportedOperationException for keys that have no
// public key (SYMMETRIC_DEFAULT, HMAC).
func (s *Server) getPublicKey(c *call, body []byte) (any, *apiError) {
	k, aerr := s.keyFromBody(c, body, anyKeyRef)
	if aerr != nil {
		return nil, aerr
	}
	if !k.ks().asymmetric() {
		return nil, errorf("UnsupportedOperationException", "%s is %s %s key, which has no public key: GetPublicKey works only on asymmetric KMS keys", k.arn, article(k.spec), k.spec)
	}
	if aerr := usable(k, c.op); aerr != nil {
		return nil, aerr
	}
	der, err := publicKeyDER(k.current().priv)
	if err != nil {
		return nil, errorf("KMSInternalException", "cannot encode the public key: %v", err)
	}
	return getPublicKeyOutput{
		KeyId:                  k.arn,
		PublicKey:              der,
		CustomerMasterKeySpec:  k.spec,
		KeySpec:                k.spec,
		KeyUsage:               k.usage,
		EncryptionAlgorithms:   k.encryptionAlgorithms(),
		SigningAlgorithms:      k.signingAlgorithms(),
		KeyAgreementAlgorithms: k.keyAgreementAlgorithms(),
	}, nil
}

type signInput struct {
	KeyId            *string
	Message          []byte
	MessageType      *string
	SigningAlgorithm *string
	Signature        []byte // Verify only
	GrantTokens      []string
	DryRun           *bool
}

type signOutput struct {
	KeyId            string
	Signature        []byte
	SigningAlgorithm string
}

type verifyOutput struct {
	KeyId            string
	SignatureValid   bool
	SigningAlgorithm string
}

// signRequest checks what Sign and Verify share and returns the digest to
// sign or verify: the message hashed with the algorithm's hash (MessageType
// RAW, the default), or the message itself (DIGEST), which must then be as
// long as that hash (ValidationException otherwise).
func (s *Server) signRequest(c *call, body []byte, verify bool) (*key, *signInput, signingAlg, []byte, *apiError) {
	var in signInput
	if err := decode(body, &in); err != nil {
		return nil, nil, signingAlg{}, nil, err
	}
	var v validator
	v.required("keyId", in.KeyId != nil)
	if v.required("message", in.Message != nil) {
		v.blobLen("message", in.Message, 1, maxMessage)
	}
	if verify && v.required("signature", in.Signature != nil) {
		v.blobLen("signature", in.Signature, 1, maxCiphertext)
	}
	v.required("signingAlgorithm", in.SigningAlgorithm != nil)
	v.enum("signingAlgorithm", in.SigningAlgorithm, enumValues(types.SigningAlgorithmSpec("").Values()))
	v.enum("messageType", in.MessageType, enumValues(types.MessageType("").Values()))
	if err := v.err(); err != nil {
		return nil, nil, signingAlg{}, nil, err
	}
	if in.DryRun != nil && *in.DryRun {
		return nil, nil, signingAlg{}, nil, notImplemented("kms-emulator does not emulate DryRun")
	}
	k, aerr := s.usageKey(c, in.KeyId, usageSignVerify)
	if aerr != nil {
		return nil, nil, signingAlg{}, nil, aerr
	}
	algName := *in.SigningAlgorithm
	if !slices.Contains(k.signingAlgorithms(), algName) {
		return nil, nil, signingAlg{}, nil, errorf("InvalidKeyUsageException", "%s is %s %s key: it supports signing algorithms %v, not %s", k.arn, article(k.spec), k.spec, k.signingAlgorithms(), algName)
	}
	alg := signingAlgs[algName]
	msgType := string(types.MessageTypeRaw)
	if in.MessageType != nil {
		msgType = *in.MessageType
	}
	var digest []byte
	switch msgType {
	case string(types.MessageTypeRaw):
		h := alg.hash.New()
		h.Write(in.Message)
		digest = h.Sum(nil)
	case string(types.MessageTypeDigest):
		if len(in.Message) != alg.hash.Size() {
			return nil, nil, signingAlg{}, nil, errorf("ValidationException", "Digest is invalid length for algorithm %s: got %d bytes, want %d", algName, len(in.Message), alg.hash.Size())
		}
		digest = in.Message
	default:
		return nil, nil, signingAlg{}, nil, errorf("ValidationException", "MessageType %s is valid only with ML_DSA keys, not with %s %s key", msgType, article(k.spec), k.spec)
	}
	if aerr := usable(k, c.op); aerr != nil {
		return nil, nil, signingAlg{}, nil, aerr
	}
	return k, &in, alg, digest, nil
}

func (s *Server) sign(c *call, body []byte) (any, *apiError) {
	k, in, alg, digest, aerr := s.signRequest(c, body, false)
	if aerr != nil {
		return nil, aerr
	}
	sig, err := signDigest(k.current().priv, alg, digest)
	if err != nil {
		return nil, errorf("KMSInternalException", "cannot sign: %v", err)
	}
	return signOutput{KeyId: k.arn, Signature: sig, SigningAlgorithm: *in.SigningAlgorithm}, nil
}

// verify answers KMSInvalidSignatureException, not SignatureValid false,
// for a signature that does not verify, as KMS does.
func (s *Server) verify(c *call, body []byte) (any, *apiError) {
	k, in, alg, digest, aerr := s.signRequest(c, body, true)
	if aerr != nil {
		return nil, aerr
	}
	if !verifyDigest(k.current().priv, alg, digest, in.Signature) {
		return nil, errorf("KMSInvalidSignatureException", "The signature is not valid for this message under %s with %s", k.arn, *in.SigningAlgorithm)
	}
	return verifyOutput{KeyId: k.arn, SignatureValid: true, SigningAlgorithm: *in.SigningAlgorithm}, nil
}

// pssOptions is how KMS signs with RSASSA-PSS: the salt is as long as the
// digest (and MGF1 uses the same hash).
var pssOptions = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}

// signDigest signs a digest with a key pair's private key. ECDSA signatures
// are DER (ANSI X9.62 / RFC 3279), as KMS returns them.
func signDigest(priv any, alg signingAlg, digest []byte) ([]byte, error) {
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		if alg.pss {
			return rsa.SignPSS(rand.Reader, p, alg.hash, digest, pssOptions)
		}
		return rsa.SignPKCS1v15(nil, p, alg.hash, digest)
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, p, digest)
	case *secp256k1.PrivateKey:
		return k1ecdsa.Sign(p, digest).Serialize(), nil
	default:
		return nil, errors.New("the key has no private key")
	}
}

// verifyDigest checks a signature of a digest with a key pair's public key.
func verifyDigest(priv any, alg signingAlg, digest, sig []byte) bool {
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		if alg.pss {
			return rsa.VerifyPSS(&p.PublicKey, alg.hash, digest, sig, pssOptions) == nil
		}
		return rsa.VerifyPKCS1v15(&p.PublicKey, alg.hash, digest, sig) == nil
	case *ecdsa.PrivateKey:
		return ecdsa.VerifyASN1(&p.PublicKey, digest, sig)
	case *secp256k1.PrivateKey:
		var rs struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(sig, &rs)
		if err != nil || len(rest) > 0 {
			return false
		}
		var r, s secp256k1.ModNScalar
		for _, x := range []struct {
			n *big.Int
			m *secp256k1.ModNScalar
		}{{rs.R, &r}, {rs.S, &s}} {
			if x.n.Sign() <= 0 || x.n.BitLen() > 256 {
				return false
			}
			if overflow := x.m.SetByteSlice(x.n.Bytes()); overflow || x.m.IsZero() {
				return false
			}
		}
		return k1ecdsa.NewSignature(&r, &s).Verify(digest, p.PubKey())
	default:
		return false
	}
}

// oaepHash is the hash (for both OAEP and MGF1) of an RSAES_OAEP_* algorithm.
func oaepHash(alg string) (hash.Hash, bool) {
	switch alg {
	case string(types.EncryptionAlgorithmSpecRsaesOaepSha1):
		return sha1.New(), true
	case string(types.EncryptionAlgorithmSpecRsaesOaepSha256):
		return sha256.New(), true
	}
	return nil, false
}

// asymmetricAlgorithm checks the EncryptionAlgorithm and EncryptionContext of
// an Encrypt or Decrypt with an RSA ENCRYPT_DECRYPT key.
func asymmetricAlgorithm(k *key, alg *string, ec map[string]string) (hash.Hash, *apiError) {
	name := algSymmetric
	if alg != nil {
		name = *alg
	}
	h, ok := oaepHash(name)
	if !ok {
		return nil, errorf("InvalidKeyUsageException", "%s is an %s key: specify EncryptionAlgorithm RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256, not %s", k.arn, k.spec, name)
	}
	if len(ec) > 0 {
		return nil, errorf("ValidationException", "EncryptionContext is not supported with asymmetric KMS keys (%s is an %s key)", k.arn, k.spec)
	}
	return h, nil
}

// rsaOAEPKey checks the algorithm and context of an RSA Encrypt or Decrypt
// and that the key is usable now, and returns the OAEP hash and the key.
func rsaOAEPKey(c *call, k *key, alg *string, ec map[string]string) (hash.Hash, *rsa.PrivateKey, *apiError) {
	h, aerr := asymmetricAlgorithm(k, alg, ec)
	if aerr != nil {
		return nil, nil, aerr
	}
	if aerr := usable(k, c.op); aerr != nil {
		return nil, nil, aerr
	}
	return h, k.current().priv.(*rsa.PrivateKey), nil
}

// encryptRSA is Encrypt with an RSA ENCRYPT_DECRYPT key: plain RSAES-OAEP
// with an empty label, so the ciphertext also decrypts outside KMS.
func (s *Server) encryptRSA(c *call, k *key, in *encryptInput) (any, *apiError) {
	h, priv, aerr := rsaOAEPKey(c, k, in.EncryptionAlgorithm, in.EncryptionContext)
	if aerr != nil {
		return nil, aerr
	}
	if limit := priv.Size() - 2*h.Size() - 2; len(in.Plaintext) > limit {
		return nil, errorf("ValidationException", "Plaintext of %d bytes is too long for %s with %s %s key: at most %d bytes", len(in.Plaintext), *in.EncryptionAlgorithm, article(k.spec), k.spec, limit)
	}
	ct, err := rsa.EncryptOAEP(h, rand.Reader, &priv.PublicKey, in.Plaintext, nil)
	if err != nil {
		return nil, errorf("KMSInternalException", "RSA-OAEP encryption failed: %v", err)
	}
	return encryptOutput{CiphertextBlob: ct, KeyId: k.arn, EncryptionAlgorithm: *in.EncryptionAlgorithm}, nil
}

// decryptWithKey is Decrypt naming a key that is not SYMMETRIC_DEFAULT: only
// RSA ENCRYPT_DECRYPT keys decrypt, and the ciphertext is plain RSAES-OAEP.
func (s *Server) decryptWithKey(c *call, k *key, in *decryptInput) (any, *apiError) {
	if k.usage != usageEncDec {
		return nil, wrongUsage(k, c.op)
	}
	h, priv, aerr := rsaOAEPKey(c, k, in.EncryptionAlgorithm, in.EncryptionContext)
	if aerr != nil {
		return nil, aerr
	}
	plain, err := rsa.DecryptOAEP(h, nil, priv, in.CiphertextBlob, nil)
	if err != nil {
		return nil, errorf("InvalidCiphertextException", "The ciphertext cannot be decrypted with %s using %s", k.arn, *in.EncryptionAlgorithm)
	}
	return decryptOutput{KeyId: k.arn, Plaintext: plain, EncryptionAlgorithm: *in.EncryptionAlgorithm}, nil
}
