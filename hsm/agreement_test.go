package hsm_test

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// TestSoftHSMAgreementMACMatchesGoECDH derives, in SoftHSM2, the ECDH
// secret of a key-agreement key with a peer key made in Go, as a
// non-extractable session secret, and HMACs a challenge under it in the
// token: the result equals the HMAC under the peer's own ECDH with the
// HSM's public key, on every NIST curve.
func TestSoftHSMAgreementMACMatchesGoECDH(t *testing.T) {
	tk := openSoftHSM(t)
	for _, c := range []struct {
		curve hsm.Curve
		ecdh  ecdh.Curve
	}{{hsm.P256, ecdh.P256()}, {hsm.P384, ecdh.P384()}, {hsm.P521, ecdh.P521()}} {
		t.Run(c.curve.Name, func(t *testing.T) {
			p := hsm.ECKey(c.curve)
			p.Derive = true
			k, err := tk.Generate("ka-"+c.curve.Name, p, false)
			if err != nil {
				t.Fatal(err)
			}
			der, err := tk.PublicKeyDER(k)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := x509.ParsePKIXPublicKey(der)
			if err != nil {
				t.Fatal(err)
			}
			hsmPub, err := pub.(*ecdsa.PublicKey).ECDH()
			if err != nil {
				t.Fatal(err)
			}
			peer, _ := c.ecdh.GenerateKey(rand.Reader)
			challenge := []byte("a random challenge of the verification")
			got, err := tk.AgreementMAC(k, peer.PublicKey().Bytes(), challenge)
			if err != nil {
				t.Fatal(err)
			}
			z, _ := peer.ECDH(hsmPub)
			want := hmac.New(sha256.New, z)
			want.Write(challenge)
			if !hmac.Equal(got, want.Sum(nil)) {
				t.Error("the token's ECDH differs from the peer's ECDH with the HSM's public key")
			}
			// Another peer gives another secret.
			other, _ := c.ecdh.GenerateKey(rand.Reader)
			if again, err := tk.AgreementMAC(k, other.PublicKey().Bytes(), challenge); err != nil || hmac.Equal(again, got) {
				t.Errorf("another peer key: %v, same HMAC %t", err, hmac.Equal(again, got))
			}
			// The derived secrets were session objects, destroyed.
			inv, err := tk.Inventory()
			if err != nil {
				t.Fatal(err)
			}
			label := hex.EncodeToString([]byte("kmsbridge ECDH check (session)"))
			for _, o := range inv {
				if o.Attributes["CKA_LABEL"] == label {
					t.Errorf("a derived secret is left in the token: %v", o.Attributes)
				}
			}
			if len(inv) == 0 {
				t.Error("the inventory shows no object at all")
			}
		})
	}
}

// TestAgreementMACRefusesAKeyThatCannotDerive: a key generated without
// CKA_DERIVE (every key but a key-agreement key) is ErrNoAgreement, with
// the attribute named.
func TestAgreementMACRefusesAKeyThatCannotDerive(t *testing.T) {
	tk := openSoftHSM(t)
	k, err := tk.Generate("signer", hsm.ECKey(hsm.P256), false)
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	_, err = tk.AgreementMAC(k, peer.PublicKey().Bytes(), []byte("challenge"))
	if !errors.Is(err, hsm.ErrNoAgreement) || !strings.Contains(err.Error(), "CKA_DERIVE=false") {
		t.Errorf("AgreementMAC of a signing key: %v", err)
	}
	if _, err := tk.AgreementMAC(k, []byte{4, 1, 2}, []byte("challenge")); err == nil {
		t.Error("a malformed peer point was accepted")
	}
}

// TestNSSAgreementMACMatchesGoECDH: NSS softokn derives with
// CKM_ECDH1_DERIVE and HMACs under the derived secret as SoftHSM2 does.
func TestNSSAgreementMACMatchesGoECDH(t *testing.T) {
	tk := openNSS(t)
	p := hsm.ECKey(hsm.P384)
	p.Derive = true
	k, err := tk.Generate("ka", p, false)
	if err != nil {
		t.Fatal(err)
	}
	der, err := tk.PublicKeyDER(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.ParsePKIXPublicKey(der)
	hsmPub, _ := pub.(*ecdsa.PublicKey).ECDH()
	peer, _ := ecdh.P384().GenerateKey(rand.Reader)
	got, err := tk.AgreementMAC(k, peer.PublicKey().Bytes(), []byte("challenge"))
	if err != nil {
		t.Fatal(err)
	}
	z, _ := peer.ECDH(hsmPub)
	want := hmac.New(sha256.New, z)
	want.Write([]byte("challenge"))
	if !hmac.Equal(got, want.Sum(nil)) {
		t.Error("NSS's ECDH differs from the peer's ECDH with the HSM's public key")
	}
}

// TestSoftHSMProbeAgreementLeavesNothing: the probe behind doctor's
// key-agreement proof succeeds on SoftHSM2 on every NIST curve and leaves
// no object in the token.
func TestSoftHSMProbeAgreementLeavesNothing(t *testing.T) {
	tk := openSoftHSM(t)
	before, err := tk.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []hsm.Curve{hsm.P256, hsm.P384, hsm.P521} {
		if err := tk.ProbeAgreement(c); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	if err := tk.ProbeAgreement(hsm.Secp256k1); !errors.Is(err, hsm.ErrNoAgreement) {
		t.Errorf("secp256k1 (no key agreement in KMS): %v", err)
	}
	after, err := tk.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("the probe left objects: %d before, %d after", len(before), len(after))
	}
}
