package azure

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/kmsbridge/kmsbridge/internal/certchain"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/byok"
)

// What kmsbridge can and cannot say about the Key Exchange Key's origin
// (docs/azure-import.md, "KEK attestation", gives the evidence).
//
// Key Vault Premium publishes no key attestation. Managed HSM does
// (GET /keys/NAME/VERSION/attestation, version "MRVL-1"), in the format
// Microsoft's published validator defines; package attest verifies it
// against the Marvell root the operator gives (--azure-attestation-root),
// before anything is wrapped under the KEK. Without a root, nothing is
// claimed: the result and the record say exactly what was checked.

// Attestation statuses, the start of Result.Attestation.
const (
	AttestationVerified     = "verified"
	AttestationNotAvailable = "not available"
	AttestationNotVerified  = "not verified"
)

// kekChecked is what kmsbridge did check about every KEK (useKEK).
const kekChecked = "checked: the KEK is RSA-HSM 2048/3072/4096 with the single operation import, enabled and within its validity, and a version of --kek-name in this very vault"

// attestationNote says what was and was not checked about the KEK when
// its attestation was not verified.
func attestationNote(managedHSM bool) string {
	if managedHSM {
		return AttestationNotVerified + ": Managed HSM attests its keys (MRVL-1, Marvell LiquidSecurity) but no --azure-attestation-root was given, so that the KEK was generated in the HSM and never left it is NOT verified; " +
			kekChecked + "; to verify it, give --azure-attestation-root with Marvell's LiquidSecurity root certificate (docs/azure-import.md, \"KEK attestation\")"
	}
	return AttestationNotAvailable + ": Key Vault offers no key attestation, so that the KEK was generated in an HSM rests on Azure's word; " + kekChecked
}

// MaxRootFile bounds the manufacturer root file.
const MaxRootFile = 256 << 10

// LoadAttestationRoots reads the manufacturer root certificates (PEM) the
// operator gives with --azure-attestation-root.
func LoadAttestationRoots(path string) ([]*x509.Certificate, error) {
	data, err := safefile.Read("--azure-attestation-root", path, MaxRootFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", kmsimport.ErrInvalidInput, err)
	}
	out, err := certchain.ParseRoots(data)
	if err != nil {
		return nil, invalid("--azure-attestation-root %s %v: give Marvell's LiquidSecurity root certificate (docs/azure-import.md)", path, err)
	}
	return out, nil
}

// loadRoots reads the request's attestation roots and partition pins,
// once, in validate.
func (r *run) loadRoots() error {
	if r.roots != nil {
		return nil
	}
	return r.loadTrust(r.req.Vault, r.req.ManagedHSM, r.req.AttestationRoot, r.req.HSMPartitions)
}

// loadTrust reads what the operator trusts about a Managed HSM's KEK: the
// manufacturer root (--azure-attestation-root) and the partitions of the
// HSM meant (--azure-hsm-partition), the same way for import, prepare,
// the offline wrap and upload. A pin means something only over a chain
// verified to the manufacturer, so pins without a root are refused.
func (r *run) loadTrust(vault string, managedHSM bool, rootFile string, pins []string) error {
	if rootFile == "" {
		if len(pins) > 0 {
			return invalid("--azure-hsm-partition pins the partition the Managed HSM's attestation of the KEK names, which only its chain to the manufacturer proves: give --azure-attestation-root with Marvell's LiquidSecurity root too")
		}
		return nil
	}
	if !managedHSM {
		return invalid("--azure-attestation-root is for a Managed HSM: %s is a Key Vault, which attests no keys; drop it", vault)
	}
	r.pins = nil
	for _, p := range pins {
		pin, err := attest.ParsePartitionPin(p)
		if err != nil {
			return invalid("--azure-hsm-partition: %v", err)
		}
		r.pins = append(r.pins, pin)
	}
	roots, err := LoadAttestationRoots(rootFile)
	r.roots = roots
	return err
}

// verifyStatement is the one check of a KEK's attestation: st, for the
// KEK r.kekPub whose identifier is kid, against the roots and partition
// pins loadTrust read. A refusal is ErrVerification; nothing is wrapped
// (or imported) under the KEK.
func (r *run) verifyStatement(st attest.Statement, kid string) (*attest.Result, error) {
	_, name, version, err := byok.SplitKID(kid)
	if err != nil {
		return nil, err
	}
	res, err := attest.VerifyPinned(st, r.roots, r.kekPub, "/keys/"+name+"/"+version, r.im.now(), r.pins)
	if err != nil {
		nothing := "nothing was wrapped under it"
		if r.uploading {
			nothing = "nothing was imported; do not use the .byok wrapped under it"
		}
		return nil, fmt.Errorf("%w: Key Exchange Key %s: %v; %s", kmsimport.ErrVerification, kid, err, nothing)
	}
	if len(r.pins) == 0 {
		res.Checked = append(res.Checked, "no partition pinned (--azure-hsm-partition), so which Managed HSM holds the KEK is not proven by the attestation")
	}
	return res, nil
}

// attestKEK verifies the Managed HSM's attestation of the KEK useKEK
// accepted, when the operator gave the manufacturer root: before anything
// is wrapped under it. A refusal is ErrVerification.
func (r *run) attestKEK(ctx context.Context) error {
	if !r.req.ManagedHSM || (len(r.roots) == 0 && !r.carryAttestation) {
		return nil
	}
	kid := r.res.KEK.KID
	_, name, version, err := byok.SplitKID(kid)
	if err != nil {
		return err
	}
	got, err := r.im.KV.GetKeyAttestation(ctx, name, version, nil)
	if err != nil {
		if len(r.roots) == 0 {
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("the Managed HSM's attestation of Key Exchange Key %s could not be read (%v): the offline wrap cannot verify it", kid, err))
			return nil
		}
		return kvError("GetKeyAttestation", err)
	}
	a := got.Attributes
	if a == nil || a.Attestation == nil || a.Attestation.Version == nil {
		return fmt.Errorf("%w: the Managed HSM gave no attestation of Key Exchange Key %s; nothing was wrapped under it", kmsimport.ErrVerification, kid)
	}
	if got.Key == nil || got.Key.KID == nil || string(*got.Key.KID) != kid {
		return fmt.Errorf("%w: the Managed HSM answered the attestation of Key Exchange Key %s with another key; nothing was wrapped under it", kmsimport.ErrVerification, kid)
	}
	st := attest.Statement{Version: *a.Attestation.Version, CertificatePEM: a.Attestation.CertificatePEMFile,
		PrivateKeyAttestation: a.Attestation.PrivateKeyAttestation, PublicKeyAttestation: a.Attestation.PublicKeyAttestation}
	r.kekStatement = &st
	if len(r.roots) == 0 {
		return nil
	}
	res, err := r.verifyStatement(st, kid)
	if err != nil {
		return err
	}
	r.res.KEKAttestation = res
	r.res.Attestation = AttestationVerified + ": " + res.Summary() + "; " + kekChecked
	return nil
}

// verifyCarried verifies, on the offline host, the attestation prepare
// carried in the bundle, against the roots the officers give there.
func (r *run) verifyCarried(b *kmsimport.Bundle) error {
	a := b.Azure
	c := a.KEKAttestationStatement
	if c == nil {
		return fmt.Errorf("%w: the bundle carries no attestation of Key Exchange Key %s (prepare could not read it): nothing is wrapped; run prepare again, or wrap without --azure-attestation-root", kmsimport.ErrVerification, b.ImportToken)
	}
	st := attest.Statement{Version: c.Version, CertificatePEM: c.CertificatePEM, PrivateKeyAttestation: c.PrivateKeyAttestation, PublicKeyAttestation: c.PublicKeyAttestation}
	res, err := r.verifyStatement(st, string(b.ImportToken))
	if err != nil {
		return err
	}
	r.res.KEKAttestation = res
	r.res.Attestation = AttestationVerified + " on the offline host: " + res.Summary() + "; " + kekChecked
	a.KEKAttestation = r.res.Attestation
	return nil
}
