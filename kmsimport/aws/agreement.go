package aws

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// sharedSecretDeriver is the part of the KMS client that key-agreement
// keys need; *kms.Client has it.
type sharedSecretDeriver interface {
	DeriveSharedSecret(context.Context, *kms.DeriveSharedSecretInput, ...func(*kms.Options)) (*kms.DeriveSharedSecretOutput, error)
}

// agreementToken is the part of a token that can derive an ECDH secret
// inside it; *hsm.Token has it.
type agreementToken interface {
	AgreementMAC(k *hsm.Key, peerPoint, challenge []byte) ([]byte, error)
}

// forUsage is spec for a key of usage: a key-agreement key's private key
// may derive in the token (hsm.KeyParams.Derive), and its evidence
// includes the HSM's own ECDH.
func forUsage(spec KeySpec, usage types.KeyUsageType) KeySpec {
	spec.HSM.Derive = usage == types.KeyUsageTypeKeyAgreement
	return spec
}

// gatherAgreement asks the token for its own ECDH of the key-agreement key
// k with a throwaway peer key (see AgreementEvidence). A token that cannot
// derive is not an error: the evidence says why, and verification falls
// back to the public-key ECDH.
func gatherAgreement(tok kmsimport.Token, k *hsm.Key, pubDER []byte) (*kmsimport.AgreementEvidence, error) {
	theirs, err := ecdhPublic(pubDER)
	if err != nil {
		return nil, err
	}
	at, ok := tok.(agreementToken)
	if !ok {
		return &kmsimport.AgreementEvidence{Unavailable: "this token handle cannot derive"}, nil
	}
	peer, err := theirs.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	peerDER, err := x509.MarshalPKIXPublicKey(peer.PublicKey())
	if err != nil {
		return nil, err
	}
	ev := &kmsimport.AgreementEvidence{PeerPublicKey: peerDER, Challenge: make([]byte, 32)}
	if _, err := rand.Read(ev.Challenge); err != nil {
		return nil, err
	}
	mac, err := at.AgreementMAC(k, peer.PublicKey().Bytes(), ev.Challenge)
	if errors.Is(err, hsm.ErrNoAgreement) {
		return &kmsimport.AgreementEvidence{Unavailable: err.Error()}, nil
	}
	if err != nil {
		return nil, err
	}
	ev.Mac = mac
	return ev, nil
}

// ecdhPublic is the ECDH public key of a DER SubjectPublicKeyInfo of an EC
// key on a NIST curve.
func ecdhPublic(der []byte) (*ecdh.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	ecPub, isEC := pub.(*ecdsa.PublicKey)
	if err != nil || !isEC {
		return nil, errors.New("not an EC key on a NIST curve, so it cannot be a key-agreement key")
	}
	return ecPub.ECDH()
}

// verifyAgreement proves that KMS key keyID, a KEY_AGREEMENT key whose
// public key already equals the HSM's (hsmPub, DER), holds the HSM's
// private key, two ways:
//
//   - against the public key: KMS derives the ECDH secret with a
//     throwaway peer key made here, and the peer derives the same secret
//     from its own private key and the HSM's public key;
//   - against the HSM's own ECDH (ev, when the token could derive): KMS
//     derives the secret with the peer key of the evidence, and the HMAC
//     of the evidence's challenge under it equals the HMAC the token
//     computed under the secret it derived itself from its private key.
//
// ECDH is symmetric, so each agrees only if KMS's private key is the one
// behind the HSM's public key; the second also shows the HSM's private key
// is that one, by the HSM's own arithmetic. Nothing of the HSM key is
// read: the peer keys and secrets are ephemeral, made for this check, and
// secrets are compared in constant time and then cleared.
func verifyAgreement(ctx context.Context, api API, keyID string, hsmPub []byte, ev *kmsimport.AgreementEvidence, label string, v *Verification) error {
	d, ok := api.(sharedSecretDeriver)
	if !ok {
		v.MaterialConfirmed = true
		v.Note = "this KMS client cannot call DeriveSharedSecret; the public keys match"
		v.Summary = "KMS GetPublicKey equals the HSM's public key"
		return nil
	}
	theirs, err := ecdhPublic(hsmPub)
	if err != nil {
		return fmt.Errorf("%w: the HSM key %q is %v", kmsimport.ErrVerification, label, err)
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
		return fmt.Errorf("%w: KMS DeriveSharedSecret with a fresh peer key differs from the peer's ECDH with the HSM key %q's public key: KMS does not hold this HSM key's private key", kmsimport.ErrVerification, label)
	}
	v.SharedSecretMatches, v.MaterialConfirmed = true, true
	const pubOnly = "KMS GetPublicKey equals the HSM's public key, and KMS DeriveSharedSecret (ECDH) with a fresh peer key equals the peer's own ECDH with it: KMS holds the HSM key pair"
	switch {
	case ev == nil:
		v.Note = "compared with the public-key ECDH only: no ECDH by the HSM itself was asked for (a key not generated for KEY_AGREEMENT, or a wrapped file from an earlier kmsbridge)"
		v.Summary = pubOnly
		return nil
	case ev.Unavailable != "":
		v.Note = "compared with the public-key ECDH only: " + ev.Unavailable
		v.Summary = pubOnly
		return nil
	}
	return verifyHSMAgreement(ctx, d, keyID, ev, label, v)
}

// verifyHSMAgreement compares KMS's ECDH with the evidence's peer key with
// the HSM's own ECDH, by the HMAC of the evidence's challenge.
func verifyHSMAgreement(ctx context.Context, d sharedSecretDeriver, keyID string, ev *kmsimport.AgreementEvidence, label string, v *Verification) error {
	if len(ev.PeerPublicKey) == 0 || len(ev.Challenge) < 16 || len(ev.Mac) != sha256.Size {
		return fmt.Errorf("%w: the HSM's ECDH evidence is incomplete (peer key, challenge or HMAC missing or of the wrong size): the file was altered or damaged; wrap again", kmsimport.ErrVerification)
	}
	if _, err := ecdhPublic(ev.PeerPublicKey); err != nil {
		return fmt.Errorf("%w: the peer key of the HSM's ECDH evidence is %v: the file was altered or damaged; wrap again", kmsimport.ErrVerification, err)
	}
	out, err := d.DeriveSharedSecret(ctx, &kms.DeriveSharedSecretInput{KeyId: aws.String(keyID), KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: ev.PeerPublicKey})
	if err != nil {
		return explain("DeriveSharedSecret", err)
	}
	defer clear(out.SharedSecret)
	m := hmac.New(sha256.New, out.SharedSecret)
	m.Write(ev.Challenge)
	if !hmac.Equal(m.Sum(nil), ev.Mac) {
		return fmt.Errorf("%w: KMS DeriveSharedSecret with the peer key the HSM used differs from the HSM's own ECDH (CKM_ECDH1_DERIVE) with HSM key %q (compared by HMAC-SHA-256 of a random challenge under each): KMS does not hold this HSM key's private key", kmsimport.ErrVerification, label)
	}
	v.HSMAgreementMatches = true
	v.Summary = "KMS GetPublicKey equals the HSM's public key; KMS DeriveSharedSecret (ECDH) equals a fresh peer's ECDH with that public key, and equals the HSM's own ECDH (CKM_ECDH1_DERIVE, compared by HMAC inside the token) with another fresh peer key: KMS holds the HSM key pair"
	return nil
}

// agreementProbe is the part of a token that checks its own ECDH on a
// throwaway key; *hsm.Token has it.
type agreementProbe interface {
	ProbeAgreement(hsm.Curve) error
}

// withAgreementProof adds to doctor's proof of spec (proof) how a
// KEY_AGREEMENT key of spec is proved on tok, from a probe on a throwaway
// key pair; a spec without key agreement, or one with no proof at all, is
// left as it is. Only a token that stopped answering is an error.
func withAgreementProof(tok agreementProbe, spec KeySpec, proof string) (string, error) {
	if !slices.Contains(spec.Usages, types.KeyUsageTypeKeyAgreement) || strings.HasPrefix(proof, "none") {
		return proof, nil
	}
	err := tok.ProbeAgreement(spec.HSM.Curve)
	switch {
	case err == nil:
		return proof + "; as KEY_AGREEMENT: KMS DeriveSharedSecret equals a peer's ECDH with the token's public key and the token's own ECDH (CKM_ECDH1_DERIVE, checked on a throwaway key)", nil
	case errors.Is(err, hsm.ErrNoAgreement):
		return proof + "; as KEY_AGREEMENT: KMS DeriveSharedSecret compared with the public-key ECDH only: " + err.Error(), nil
	}
	return "", err
}
