package kmsimport

import (
	"crypto"
	"crypto/rsa"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// Token is what the import flow needs from an HSM token. *hsm.Token
// satisfies it; every method runs inside the token and none returns key
// material in the clear.
type Token interface {
	Identity() hsm.TokenIdentity
	Quirks() hsm.Quirks
	FindKey(hsm.KeySelector, hsm.KeyParams) (*hsm.Key, error)
	Generate(label string, p hsm.KeyParams, wrapWithTrusted bool) (*hsm.Key, error)
	LabelInUse(label string) (bool, error)
	ProbeOAEP(hsm.OAEPHash) error
	ProbeRSAAES(hsm.OAEPHash) error
	WrapOAEP(key *hsm.Key, pub *rsa.PublicKey, h hsm.OAEPHash) ([]byte, error)
	WrapRSAAES(key *hsm.Key, pub *rsa.PublicKey, h hsm.OAEPHash) ([]byte, error)
	NativeRSAAES(h hsm.OAEPHash) (bool, string)
	IsApproved(pub *rsa.PublicKey) (bool, error)
	HMAC(key *hsm.Key, h crypto.Hash, msg []byte) ([]byte, error)
	PublicKeyDER(key *hsm.Key) ([]byte, error)
}

var _ Token = (*hsm.Token)(nil)
