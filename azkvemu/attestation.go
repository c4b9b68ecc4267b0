package azkvemu

import (
	"crypto/rsa"
	"encoding/json"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest/attesttest"
)

// Key attestation, Managed HSM only: GET /keys/NAME[/VERSION]/attestation
// answers the key bundle with attributes.attestation {certificatePemFile,
// privateKeyAttestation, publicKeyAttestation, version "MRVL-1"}, all
// base64url, as the one real answer recorded (docs/azure-emulator.md).
// The real service's blobs come from its Marvell HSMs; the emulator's are
// signed by test roots it generates (package attesttest), whose
// manufacturer root AttestationRootPEM gives the tests.

// authority is the emulator's test attestation authority, made once.
func (s *Server) authority() (*attesttest.Authority, error) {
	s.attestMu.Lock()
	defer s.attestMu.Unlock()
	if s.attestAuth == nil {
		a, err := attesttest.New()
		if err != nil {
			return nil, err
		}
		s.attestAuth = a
	}
	return s.attestAuth, nil
}

// UseAttestationAuthority makes a the authority whose partition attests
// this vault's keys: two servers given a and a.OtherPartition are two
// Managed HSMs (two customers') under one manufacturer root, as real ones
// are under Marvell's. Call it before the first attestation.
func (s *Server) UseAttestationAuthority(a *attesttest.Authority) {
	s.attestMu.Lock()
	defer s.attestMu.Unlock()
	s.attestAuth = a
}

// AttestationAuthority is the authority attesting this vault's keys.
func (s *Server) AttestationAuthority() *attesttest.Authority {
	a, err := s.authority()
	if err != nil {
		panic(err)
	}
	return a
}

// AttestationRootPEM is the manufacturer root the emulator's key
// attestations chain to: the file an operator would give kmsbridge.
func (s *Server) AttestationRootPEM() []byte {
	a, err := s.authority()
	if err != nil {
		panic(err)
	}
	return a.RootPEM()
}

func (s *Server) attestation(name, id string) (any, *apiError) {
	if s.Flavor != ManagedHSM {
		// Not recorded: key attestation is documented for Managed HSM only.
		return nil, badParameter("Key attestation is not supported by this vault (Activity ID: %s)", activityID())
	}
	v, e := s.lookup(name, id)
	if e != nil {
		return nil, e
	}
	pub, ok := v.pub.(*rsa.PublicKey)
	if !ok {
		return nil, badParameter("this emulator attests RSA keys only")
	}
	a, err := s.authority()
	if err != nil {
		return nil, &apiError{status: 500, Code: "InternalError", Message: err.Error()}
	}
	path := "/keys/" + v.name + "/" + v.id
	priv := attesttest.KeyAttrs(3, pub, path)
	if v.rsa == nil {
		// Imported, not generated in the HSM: CKA_LOCAL and
		// CKA_NEVER_EXTRACTABLE false, as PKCS#11 defines them.
		for i := range priv {
			if priv[i].Type == 0x163 || priv[i].Type == 0x164 {
				priv[i].Value = []byte{0}
			}
		}
	}
	s.mu.Lock()
	b := s.bundleOf(v)
	s.mu.Unlock()
	raw, _ := json.Marshal(b)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	attrs, _ := out["attributes"].(map[string]any)
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["attestation"] = map[string]any{
		"certificatePemFile":    b64.EncodeToString(a.BundlePEM()),
		"privateKeyAttestation": b64.EncodeToString(a.Blob(priv)),
		"publicKeyAttestation":  b64.EncodeToString(a.Blob(attesttest.KeyAttrs(2, pub, path))),
		"version":               "MRVL-1",
	}
	out["attributes"] = attrs
	return out, nil
}
