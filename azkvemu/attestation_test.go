package azkvemu

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest"
)

// A Managed HSM's key attestation, read with azkeys, verifies with the
// project's verifier against the emulator's test root; a Key Vault has none.
func TestManagedHSMAttestsItsKeys(t *testing.T) {
	s, c := start(t, ManagedHSM)
	kek := createKEK(t, c, 2048)
	got, err := c.GetKeyAttestation(context.Background(), "kek", kek.Key.KID.Version(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := got.Attributes.Attestation
	if a == nil || a.Version == nil || *a.Version != "MRVL-1" || *got.Key.KID != *kek.Key.KID {
		t.Fatalf("attestation %+v", got.KeyBundle)
	}
	blk, _ := pem.Decode(s.AttestationRootPEM())
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(kek.Key.N), E: int(new(big.Int).SetBytes(kek.Key.E).Int64())}
	st := attest.Statement{Version: *a.Version, CertificatePEM: a.CertificatePEMFile, PrivateKeyAttestation: a.PrivateKeyAttestation, PublicKeyAttestation: a.PublicKeyAttestation}
	if _, err := attest.Verify(st, []*x509.Certificate{root}, pub, "/keys/kek/"+kek.Key.KID.Version(), time.Now()); err != nil {
		t.Fatal(err)
	}
	// The latest version without naming it, as the service documents.
	if _, err := c.GetKeyAttestation(context.Background(), "kek", "", nil); err != nil {
		t.Fatal(err)
	}
	_, kv := start(t, KeyVault)
	createKEK(t, kv, 2048)
	if _, err := kv.GetKeyAttestation(context.Background(), "kek", "", nil); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("a Key Vault's attestation: %v", err)
	}
}

// Two Managed HSMs under one manufacturer root, as two customers' are
// under Marvell's: each attests its keys from its own partition, both
// verify against the root, and only the partition pin tells them apart.
func TestTwoManagedHSMsAttestFromTwoPartitions(t *testing.T) {
	mine, c := start(t, ManagedHSM)
	theirs, c2 := start(t, ManagedHSM)
	other, err := mine.AttestationAuthority().OtherPartition(2, "their-hsm")
	if err != nil {
		t.Fatal(err)
	}
	theirs.UseAttestationAuthority(other)
	blk, _ := pem.Decode(mine.AttestationRootPEM())
	root, _ := x509.ParseCertificate(blk.Bytes)
	pin := mine.AttestationAuthority().PartitionKeySHA256()
	for _, v := range []struct {
		name string
		c    *azkeys.Client
		mine bool
	}{{"mine", c, true}, {"theirs", c2, false}} {
		kek := createKEK(t, v.c, 2048)
		got, err := v.c.GetKeyAttestation(context.Background(), "kek", kek.Key.KID.Version(), nil)
		if err != nil {
			t.Fatal(err)
		}
		a := got.Attributes.Attestation
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(kek.Key.N), E: int(new(big.Int).SetBytes(kek.Key.E).Int64())}
		st := attest.Statement{Version: *a.Version, CertificatePEM: a.CertificatePEMFile, PrivateKeyAttestation: a.PrivateKeyAttestation, PublicKeyAttestation: a.PublicKeyAttestation}
		path := "/keys/kek/" + kek.Key.KID.Version()
		if _, err := attest.Verify(st, []*x509.Certificate{root}, pub, path, time.Now()); err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		_, err = attest.VerifyPinned(st, []*x509.Certificate{root}, pub, path, time.Now(), []string{pin})
		if v.mine != (err == nil) {
			t.Fatalf("%s, pinned to mine: %v", v.name, err)
		}
	}
}
