package aws

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Wrapping is a KMS wrapping algorithm kmsbridge can perform inside a token.
type Wrapping struct {
	Algorithm types.AlgorithmSpec
	// OAEP is the hash the token's RSA-OAEP uses for digest and MGF1.
	OAEP hsm.OAEPHash
	// RSAAES is true for RSA_AES_KEY_WRAP_*: an ephemeral AES key wraps the
	// material with RFC 5649 and RSA-OAEP wraps the AES key.
	RSAAES bool
}

// Wrappings lists the wrapping algorithms kmsbridge offers, strongest
// first: SHA-256 before SHA-1, and for each hash plain RSA-OAEP (one
// mechanism, when the material fits) before RSA-AES. With no algorithm
// asked for, the first that KMS accepts for the key spec and the token can
// do is used.
var Wrappings = []Wrapping{
	{types.AlgorithmSpecRsaesOaepSha256, hsm.OAEPSHA256, false},
	{types.AlgorithmSpecRsaAesKeyWrapSha256, hsm.OAEPSHA256, true},
	{types.AlgorithmSpecRsaesOaepSha1, hsm.OAEPSHA1, false},
	{types.AlgorithmSpecRsaAesKeyWrapSha1, hsm.OAEPSHA1, true},
}

// ParseWrappingAlgorithm returns the wrapping named s, or an error that says
// why it cannot be used and what to use instead.
func ParseWrappingAlgorithm(s string) (Wrapping, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	for _, w := range Wrappings {
		if string(w.Algorithm) == name {
			return w, nil
		}
	}
	switch types.AlgorithmSpec(name) {
	case types.AlgorithmSpecRsaesPkcs1V15:
		return Wrapping{}, invalid("wrapping algorithm RSAES_PKCS1_V1_5 is refused: KMS stopped accepting PKCS#1 v1.5 wrapped key material on 2023-10-10 because it is open to padding-oracle attacks; use one of %s", joinWrappings(Wrappings))
	case types.AlgorithmSpecSm2pke:
		return Wrapping{}, invalid("wrapping algorithm SM2PKE is offered only in AWS China Regions and is not supported by kmsbridge; use one of %s", joinWrappings(Wrappings))
	}
	return Wrapping{}, invalid("unknown wrapping algorithm %q: choose one of %s", kmsimport.Excerpt(s), joinWrappings(Wrappings))
}

// WrappingKeySpecRSA4096 is the largest wrapping key KMS offers, the one
// to use unless there is a reason for less.
const WrappingKeySpecRSA4096 = types.WrappingKeySpecRsa4096

// ParseWrappingKeySpec returns the KMS wrapping key spec named s.
func ParseWrappingKeySpec(s string) (types.WrappingKeySpec, error) {
	spec, err := kmsimport.ParseWrappingKeySpec(s)
	return types.WrappingKeySpec(spec), err
}

// WrappingKeyBits is the RSA modulus size a wrapping key spec promises.
func WrappingKeyBits(spec types.WrappingKeySpec) int {
	return kmsimport.WrappingKeySpec(spec).Bits()
}
