// Package certchain holds what the HSM attestation verifiers of every
// cloud (kmsimport/gcp/attest, kmsimport/azure/attest) do alike with the
// manufacturers' certificates: signatures checked one link at a time (the
// manufacturers' chains are not marked up as CA chains), roots named by
// fingerprint, and the operator's root files read.
package certchain

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// SignedBy checks only child's signature under parent's key.
func SignedBy(child, parent *x509.Certificate) bool {
	return parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
}

// SignedByOne is the root that signed child, or nil.
func SignedByOne(child *x509.Certificate, roots []*x509.Certificate) *x509.Certificate {
	for _, r := range roots {
		if SignedBy(child, r) {
			return r
		}
	}
	return nil
}

// Names names roots for a message: common name and fingerprint.
func Names(rs []*x509.Certificate) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%q SHA-256 %s", r.Subject.CommonName, Fingerprint(r)))
	}
	return strings.Join(s, ", ")
}

// Fingerprint is the SHA-256 of a certificate's DER, in hex.
func Fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// ErrNoCertificate is a root file without a PEM certificate.
var ErrNoCertificate = errors.New("holds no PEM certificate")

// ParseRoots reads the PEM certificates of a root file, skipping other
// PEM blocks; none is ErrNoCertificate.
func ParseRoots(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("a certificate does not parse: %v", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, ErrNoCertificate
	}
	return out, nil
}
