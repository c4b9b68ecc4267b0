package aws

import (
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// agreementKMS answers DeriveSharedSecret with the ECDH of its key; from
// call number lieFrom on, with another key's.
type agreementKMS struct {
	*fakeKMS
	key, other *ecdh.PrivateKey
	n, lieFrom int
}

func (a *agreementKMS) DeriveSharedSecret(_ context.Context, in *kms.DeriveSharedSecretInput, _ ...func(*kms.Options)) (*kms.DeriveSharedSecretOutput, error) {
	a.n++
	peer, err := ecdhPublic(in.PublicKey)
	if err != nil {
		return nil, err
	}
	k := a.key
	if a.lieFrom > 0 && a.n >= a.lieFrom {
		k = a.other
	}
	z, err := k.ECDH(peer)
	return &kms.DeriveSharedSecretOutput{SharedSecret: z}, err
}

// hsmEvidence is what a token holding key gives for a fresh peer key.
func hsmEvidence(t *testing.T, key *ecdh.PrivateKey) *kmsimport.AgreementEvidence {
	t.Helper()
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
	z, _ := key.ECDH(peer.PublicKey())
	m := hmac.New(sha256.New, z)
	challenge := []byte("a challenge of thirty-two bytes.")
	m.Write(challenge)
	return &kmsimport.AgreementEvidence{PeerPublicKey: der, Challenge: challenge, Mac: m.Sum(nil)}
}

func TestVerifyAgreementComparesWithTheHSMsOwnECDH(t *testing.T) {
	key, _ := ecdh.P256().GenerateKey(rand.Reader)
	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	hsmPub, _ := x509.MarshalPKIXPublicKey(key.PublicKey())
	verify := func(api *agreementKMS, ev *kmsimport.AgreementEvidence) (Verification, error) {
		var v Verification
		err := verifyAgreement(context.Background(), api, "k", hsmPub, ev, "ka", &v)
		return v, err
	}
	t.Run("the HSM's ECDH agrees", func(t *testing.T) {
		v, err := verify(&agreementKMS{fakeKMS: &fakeKMS{}, key: key}, hsmEvidence(t, key))
		if err != nil || !v.SharedSecretMatches || !v.HSMAgreementMatches || !v.MaterialConfirmed || !strings.Contains(v.Summary, "CKM_ECDH1_DERIVE") {
			t.Errorf("%+v %v", v, err)
		}
	})
	t.Run("KMS agrees with the public key but not with the HSM's own ECDH", func(t *testing.T) {
		_, err := verify(&agreementKMS{fakeKMS: &fakeKMS{}, key: key, other: other, lieFrom: 2}, hsmEvidence(t, key))
		if !errors.Is(err, kmsimport.ErrVerification) || !strings.Contains(err.Error(), "CKM_ECDH1_DERIVE") {
			t.Errorf("%v", err)
		}
	})
	t.Run("an HSM whose ECDH is of another key", func(t *testing.T) {
		_, err := verify(&agreementKMS{fakeKMS: &fakeKMS{}, key: key}, hsmEvidence(t, other))
		if !errors.Is(err, kmsimport.ErrVerification) {
			t.Errorf("%v", err)
		}
	})
	t.Run("damaged evidence", func(t *testing.T) {
		ev := hsmEvidence(t, key)
		ev.Mac = ev.Mac[:8]
		_, err := verify(&agreementKMS{fakeKMS: &fakeKMS{}, key: key}, ev)
		if !errors.Is(err, kmsimport.ErrVerification) || !strings.Contains(err.Error(), "incomplete") {
			t.Errorf("%v", err)
		}
	})
	t.Run("a token that cannot derive: the public-key ECDH only, said so", func(t *testing.T) {
		v, err := verify(&agreementKMS{fakeKMS: &fakeKMS{}, key: key}, &kmsimport.AgreementEvidence{Unavailable: "token \"t\" does not list CKM_ECDH1_DERIVE"})
		if err != nil || v.HSMAgreementMatches || !v.SharedSecretMatches || !strings.Contains(v.Note, "compared with the public-key ECDH only: token \"t\" does not list CKM_ECDH1_DERIVE") {
			t.Errorf("%+v %v", v, err)
		}
	})
	t.Run("no HSM ECDH asked for", func(t *testing.T) {
		v, err := verify(&agreementKMS{fakeKMS: &fakeKMS{}, key: key}, nil)
		if err != nil || v.HSMAgreementMatches || !strings.Contains(v.Note, "compared with the public-key ECDH only") {
			t.Errorf("%+v %v", v, err)
		}
	})
	t.Run("KMS holds another key", func(t *testing.T) {
		_, err := verify(&agreementKMS{fakeKMS: &fakeKMS{}, key: other}, hsmEvidence(t, key))
		if !errors.Is(err, kmsimport.ErrVerification) || !strings.Contains(err.Error(), "public key") {
			t.Errorf("%v", err)
		}
	})
}

func TestGatherAgreementWithATokenThatCannotDerive(t *testing.T) {
	key, _ := ecdh.P256().GenerateKey(rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(key.PublicKey())
	ev, err := gatherAgreement(&fakeToken{}, nil, pub)
	if err != nil || ev.Unavailable == "" || len(ev.Mac) != 0 {
		t.Errorf("%+v %v", ev, err)
	}
}
