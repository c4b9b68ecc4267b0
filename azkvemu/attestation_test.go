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
