package kmsimport

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// sharedSecretDeriver is the part of the KMS client that key-agreement
// keys need; *kms.Client has it.
type sharedSecretDeriver interface {
	DeriveSharedSecret(context.Context, *kms.DeriveSharedSecretInput, ...func(*kms.Options)) (*kms.DeriveSharedSecretOutput, error)
}

// verifyAgreement proves that KMS key keyID, a KEY_AGREEMENT key whose
// public key already equals the HSM's (hsmPub, DER), holds the HSM's
// private key: KMS derives the ECDH secret with a throwaway peer key made
// here, and the peer derives the same secret from its own private key and
// the HSM's public key. ECDH is symmetric, so the two agree only if KMS's
// private key is the one behind the HSM's public key. Nothing of the HSM
// key is read: the peer's key and the secret are ephemeral, made for this
// check, and the secret is compared in constant time and then cleared.
func verifyAgreement(ctx context.Context, api API, keyID string, hsmPub []byte, label string, v *Verification) error {
	d, ok := api.(sharedSecretDeriver)
	if !ok {
		v.MaterialConfirmed = true
		v.Note = "this KMS client cannot call DeriveSharedSecret; the public keys match"
		v.Summary = "KMS GetPublicKey equals the HSM's public key"
		return nil
	}
	pub, err := x509.ParsePKIXPublicKey(hsmPub)
	ecPub, isEC := pub.(*ecdsa.PublicKey)
	if err != nil || !isEC {
		return fmt.Errorf("%w: the HSM key %q is not an EC key on a NIST curve, so it cannot be a key-agreement key", ErrVerification, label)
	}
	theirs, err := ecPub.ECDH()
	if err != nil {
		return fmt.Errorf("%w: the HSM key %q: %v", ErrVerification, label, err)
	}
	peer, err := theirs.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	peerDER, err := x509.MarshalPKIXPublicKey(peer.PublicKey())
	if err != nil {
		return err
	}
	out, err := d.DeriveSharedSecret(ctx, &kms.DeriveSharedSecretInput{KeyId: aws.String(keyID), KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: peerDER})
	if err != nil {
		return explain("DeriveSharedSecret", err)
	}
	want, err := peer.ECDH(theirs)
	if err != nil {
		return err
	}
	defer clear(want)
	defer clear(out.SharedSecret)
	if subtle.ConstantTimeCompare(out.SharedSecret, want) != 1 {
		return fmt.Errorf("%w: KMS DeriveSharedSecret with a fresh peer key differs from the peer's ECDH with the HSM key %q's public key: KMS does not hold this HSM key's private key", ErrVerification, label)
	}
	v.SharedSecretMatches, v.MaterialConfirmed = true, true
	v.Summary = "KMS GetPublicKey equals the HSM's public key, and KMS DeriveSharedSecret (ECDH) with a fresh peer key equals the peer's own ECDH with it: KMS holds the HSM key pair"
	return nil
}
