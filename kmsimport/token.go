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
	FindKey(hsm.KeySelector, hsm.KeyParams) (*hsm.Key, error)
	// FindByLabel is FindKey by label and LabelInUse in one search.
	FindByLabel(label string, p hsm.KeyParams) (*hsm.Key, bool, error)
	LabelInUse(label string) (bool, error)
	// GenerateWithID generates a key with CKA_ID id (journaled before the
	// call) under a label the flow has just found free itself; see
	// hsm.Token.GenerateWithID.
	GenerateWithID(label string, id []byte, p hsm.KeyParams, wrapWithTrusted bool) (*hsm.Key, error)
	// DestroyInterrupted destroys what a generation stopped inside the
	// token left under label with CKA_ID id: hsm.Token.DestroyInterrupted.
	DestroyInterrupted(label string, id []byte) (int, error)
	// Incomplete says whether k lacks its material: hsm.Token.Incomplete.
	Incomplete(k *hsm.Key) bool
	// OnlyPublicHalf says whether what carries label is a pair's public
	// half with CKA_ID id and nothing else: hsm.Token.OnlyPublicHalf.
	OnlyPublicHalf(label string, id []byte) (bool, error)
	// Check answers, from the token's capability probes and before any
	// change, whether it can import a key as asked; see hsm.Token.Check.
	Check(hsm.Ask) ([]string, error)
	WrapOAEP(key *hsm.Key, pub *rsa.PublicKey, h hsm.OAEPHash) ([]byte, error)
	WrapRSAAES(key *hsm.Key, pub *rsa.PublicKey, h hsm.OAEPHash) ([]byte, error)
	// Approval is the Security Officer's approval of pub, or nil.
	Approval(pub *rsa.PublicKey) (*hsm.Approval, error)
	// EndApproval destroys the approval of pub, if any.
	EndApproval(pub *rsa.PublicKey) (bool, error)
	HMAC(key *hsm.Key, h crypto.Hash, msg []byte) ([]byte, error)
	PublicKeyDER(key *hsm.Key) ([]byte, error)
}

var _ Token = (*hsm.Token)(nil)
