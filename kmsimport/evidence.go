package kmsimport

import "errors"

// AgreementEvidence is the HSM's own ECDH with a throwaway peer key: the
// peer's public key, a random challenge, and the HMAC-SHA-256 of the
// challenge under the secret the token derived (CKM_ECDH1_DERIVE, no KDF)
// from the HSM private key and the peer's public key, computed in the
// token. The secret itself never leaves the token, and the peer's private
// key was discarded at once: none of this is secret, and it travels in the
// wrapped-material file for the split's upload. Unavailable, when set,
// says why the token could not derive (the agreement is then compared
// with the public key only).
type AgreementEvidence struct {
	PeerPublicKey []byte `json:"PeerPublicKey,omitempty"`
	Challenge     []byte `json:"Challenge,omitempty"`
	Mac           []byte `json:"Mac,omitempty"`
	Unavailable   string `json:"Unavailable,omitempty"`
}

// ErrVerification means KMS accepted the import but the key does not work
// as the imported copy of the HSM key should: a MAC, public key or
// signature disagrees with the HSM.
var ErrVerification = errors.New("verification failed")

// Evidence is what the HSM says about its key, gathered inside the token,
// against which KMS's answers are checked: the key check value of an AES
// key, the public key of a pair, the HMAC of a fresh random message for an
// HMAC key. None of it is secret. It travels in the wrapped-material file,
// so the online upload can prove the import without the HSM.
type Evidence struct {
	KeyCheckValue string `json:"KeyCheckValue,omitempty"`
	// PublicKey is the DER SubjectPublicKeyInfo of an RSA or EC pair.
	PublicKey []byte `json:"PublicKey,omitempty"`
	// MacMessage is a random message and Mac its HMAC by the HSM key.
	MacMessage []byte `json:"MacMessage,omitempty"`
	Mac        []byte `json:"Mac,omitempty"`
	// Agreement is the HSM's own ECDH of a key-agreement key.
	Agreement *AgreementEvidence `json:"Agreement,omitempty"`
	// Ciphertext is the HSM key's CKM_AES_CBC_PAD encryption of the random
	// CipherMessage under the random CipherIV, computed in the token: what
	// a cloud's AES-CBC-PAD of the same message under the same IV must
	// equal, for an AES key the cloud shows no check value of.
	CipherIV      []byte `json:"CipherIV,omitempty"`
	CipherMessage []byte `json:"CipherMessage,omitempty"`
	Ciphertext    []byte `json:"Ciphertext,omitempty"`
}
