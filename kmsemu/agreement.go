package kmsemu

import (
	"crypto/ecdsa"
	"crypto/x509"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

type deriveSharedSecretInput struct {
	KeyId                 *string
	KeyAgreementAlgorithm *string
	PublicKey             []byte
	GrantTokens           []string
	DryRun                *bool
	Recipient             any
}

type deriveSharedSecretOutput struct {
	KeyId                 string
	SharedSecret          []byte
	KeyAgreementAlgorithm string
	KeyOrigin             string
}

// maxPublicKey bounds DeriveSharedSecret's PublicKey [API DeriveSharedSecret].
const maxPublicKey = 8192

// deriveSharedSecret is ECDH between the private key of a KEY_AGREEMENT
// key (NIST curves) and the peer's public key, a DER SubjectPublicKeyInfo
// on the same curve; the answer is the raw shared secret (the x-coordinate)
// [API DeriveSharedSecret]. A wrong usage, algorithm or public key is
// answered in the recorded wording [Recorded].
func (s *Server) deriveSharedSecret(c *call, body []byte) (any, *apiError) {
	var in deriveSharedSecretInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.required("keyId", in.KeyId != nil)
	v.required("keyAgreementAlgorithm", in.KeyAgreementAlgorithm != nil)
	v.enum("keyAgreementAlgorithm", in.KeyAgreementAlgorithm, enumValues(types.KeyAgreementAlgorithmSpec("").Values()))
	if v.required("publicKey", in.PublicKey != nil) {
		v.blobLen("publicKey", in.PublicKey, 1, maxPublicKey)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.DryRun != nil && *in.DryRun || in.Recipient != nil {
		return nil, notImplemented("kms-emulator does not emulate DryRun or Recipient")
	}
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, anyKeyRef)
	if aerr != nil {
		return nil, aerr
	}
	if k.usage != usageKeyAgreement {
		return nil, wrongUsage(k, c.op)
	}
	if aerr := usable(k, c.op); aerr != nil {
		return nil, aerr
	}
	priv, ok := k.current().priv.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errorf("KMSInternalException", "%s holds no ECDH private key", k.arn)
	}
	mine, err := priv.ECDH()
	if err != nil {
		return nil, errorf("KMSInternalException", "%v", err)
	}
	pub, err := x509.ParsePKIXPublicKey(in.PublicKey)
	peer, isEC := pub.(*ecdsa.PublicKey)
	if err != nil || !isEC || peer.Curve != priv.Curve {
		return nil, errorf("ValidationException", "")
	}
	theirs, err := peer.ECDH()
	if err != nil {
		return nil, errorf("ValidationException", "")
	}
	secret, err := mine.ECDH(theirs)
	if err != nil {
		return nil, errorf("ValidationException", "")
	}
	return deriveSharedSecretOutput{KeyId: k.arn, SharedSecret: secret, KeyAgreementAlgorithm: *in.KeyAgreementAlgorithm, KeyOrigin: k.origin}, nil
}
