package kmsemu

import (
	"crypto/hmac"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const maxMessage = 4096 // Message of GenerateMac, VerifyMac, Sign and Verify

// usageKey resolves the key of a cryptographic operation, by any reference,
// and checks that its KeyUsage is the one the operation needs
// (InvalidKeyUsageException otherwise, as KMS answers).
// wrongUsage is InvalidKeyUsageException in KMS's recorded wording.
func wrongUsage(k *key, op string) *apiError {
	return errorf("InvalidKeyUsageException", "%s key usage is %s which is not valid for %s.", k.arn, k.usage, op)
}

func (s *Server) usageKey(c *call, id *string, usage string) (*key, *apiError) {
	k, aerr := s.resolveKey(c, "keyId", id, anyKeyRef)
	if aerr != nil {
		return nil, aerr
	}
	if k.usage != usage {
		return nil, wrongUsage(k, c.op)
	}
	return k, nil
}

type macInput struct {
	KeyId        *string
	MacAlgorithm *string
	Message      []byte
	Mac          []byte // VerifyMac only
	GrantTokens  []string
	DryRun       *bool
}

type generateMacOutput struct {
	KeyId        string
	Mac          []byte
	MacAlgorithm string
}

type verifyMacOutput struct {
	KeyId        string
	MacValid     bool
	MacAlgorithm string
}

// macRequest checks what GenerateMac and VerifyMac share and computes the
// HMAC of the message with the key.
func (s *Server) macRequest(c *call, body []byte, verify bool) (*key, *macInput, []byte, *apiError) {
	var in macInput
	if err := decode(body, &in); err != nil {
		return nil, nil, nil, err
	}
	var v validator
	v.required("keyId", in.KeyId != nil)
	if v.required("message", in.Message != nil) {
		v.blobLen("message", in.Message, 1, maxMessage)
	}
	if verify && v.required("mac", in.Mac != nil) {
		v.blobLen("mac", in.Mac, 1, maxCiphertext)
	}
	v.required("macAlgorithm", in.MacAlgorithm != nil)
	v.enum("macAlgorithm", in.MacAlgorithm, enumValues(types.MacAlgorithmSpec("").Values()))
	if err := v.err(); err != nil {
		return nil, nil, nil, err
	}
	if in.DryRun != nil && *in.DryRun {
		return nil, nil, nil, notImplemented("kms-emulator does not emulate DryRun")
	}
	k, aerr := s.usageKey(c, in.KeyId, usageMAC)
	if aerr != nil {
		return nil, nil, nil, aerr
	}
	if *in.MacAlgorithm != k.ks().mac {
		return nil, nil, nil, errorf("InvalidKeyUsageException", "%s is %s %s key: it supports MacAlgorithm %s only, not %s", k.arn, article(k.spec), k.spec, k.ks().mac, *in.MacAlgorithm)
	}
	if aerr := usable(k, c.op); aerr != nil {
		return nil, nil, nil, aerr
	}
	m := hmac.New(k.ks().macHash, k.current().secret)
	m.Write(in.Message)
	return k, &in, m.Sum(nil), nil
}

func (s *Server) generateMac(c *call, body []byte) (any, *apiError) {
	k, in, mac, aerr := s.macRequest(c, body, false)
	if aerr != nil {
		return nil, aerr
	}
	return generateMacOutput{KeyId: k.arn, Mac: mac, MacAlgorithm: *in.MacAlgorithm}, nil
}

// verifyMac answers KMSInvalidMacException, not MacValid false, for a MAC
// that does not match, as KMS does.
func (s *Server) verifyMac(c *call, body []byte) (any, *apiError) {
	k, in, mac, aerr := s.macRequest(c, body, true)
	if aerr != nil {
		return nil, aerr
	}
	if !hmac.Equal(mac, in.Mac) {
		return nil, errorf("KMSInvalidMacException", "The MAC is not valid for this message under %s with %s", k.arn, *in.MacAlgorithm)
	}
	return verifyMacOutput{KeyId: k.arn, MacValid: true, MacAlgorithm: *in.MacAlgorithm}, nil
}
