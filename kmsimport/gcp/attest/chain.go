package attest

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/certchain"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// chains is what verifyChains established: the key that signs statements.
type chains struct {
	partitionKey *rsa.PublicKey
}

// maxCertPEM bounds one certificate in a chain; real ones are under 2 KiB.
const maxCertPEM = 16 << 10

// verifyChains walks both chains by hand, as Google's sample does: the
// manufacturer's card cert carries no basicConstraints, so crypto/x509's
// chain builder would refuse genuine data. Each signature is checked with
// the issuer's key; every non-root certificate must be valid at at. The
// roots are pinned anchors (the operator chose the files), so their own
// validity period is reported, not enforced: Marvell's root expired on
// 2025-11-16 while the card certs it signed remain in service.
func verifyChains(st Statement, roots Roots, at time.Time, res *Result) (chains, error) {
	if len(st.CaviumCerts) != 2 || len(st.GoogleCardCerts) != 1 || len(st.GooglePartCerts) != 1 {
		return chains{}, refuse("the attestation has %d manufacturer, %d Google card and %d Google partition certificates; expected 2, 1 and 1", len(st.CaviumCerts), len(st.GoogleCardCerts), len(st.GooglePartCerts))
	}
	mfr, err := parseCerts("manufacturer (cavium_certs)", st.CaviumCerts)
	if err != nil {
		return chains{}, err
	}
	gCard, err := parseCert("Google card (google_card_certs)", st.GoogleCardCerts[0])
	if err != nil {
		return chains{}, err
	}
	gPart, err := parseCert("Google partition (google_partition_certs)", st.GooglePartCerts[0])
	if err != nil {
		return chains{}, err
	}
	// The manufacturer chain, in whichever order it came: the card cert
	// is the one a manufacturer root signed, the partition cert the one
	// the card cert signed.
	var card, part *x509.Certificate
	var mroot *x509.Certificate
	for i, c := range mfr {
		if r := signedByOne(c, roots.Manufacturer); r != nil {
			card, part, mroot = c, mfr[1-i], r
			break
		}
	}
	if card == nil {
		return chains{}, refuse("no manufacturer certificate in the attestation is signed by the manufacturer root given (%s): the HSM is not one its manufacturer certified, or the wrong root file was given", rootNames(roots.Manufacturer))
	}
	if !signedBy(part, card) {
		return chains{}, refuse("the manufacturer partition certificate %q is not signed by the card certificate %q", part.Subject, card.Subject)
	}
	oroot := signedByOne(gCard, roots.Owner)
	if oroot == nil || !signedBy(gPart, oroot) {
		return chains{}, refuse("the Google card and partition certificates are not both signed by the owner root given (%s): the HSM is not one Google certified, or the wrong root file was given", rootNames(roots.Owner))
	}
	if !bytes.Equal(gCard.RawSubjectPublicKeyInfo, card.RawSubjectPublicKeyInfo) {
		return chains{}, refuse("Google's card certificate certifies another key than the manufacturer's card certificate: the two chains are about different HSMs")
	}
	if !bytes.Equal(gPart.RawSubjectPublicKeyInfo, part.RawSubjectPublicKeyInfo) {
		return chains{}, refuse("Google's partition certificate certifies another key than the manufacturer's partition certificate: the two chains are about different partitions")
	}
	for _, c := range []*x509.Certificate{card, part, gCard, gPart} {
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			return chains{}, refuse("certificate %q is valid from %s to %s, not at %s", c.Subject, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		}
	}
	key, ok := part.PublicKey.(*rsa.PublicKey)
	if !ok {
		return chains{}, refuse("the partition certificate's key is not RSA, so it cannot have signed a CAVIUM_V2 statement")
	}
	for _, r := range []*x509.Certificate{mroot, oroot} {
		if at.After(r.NotAfter) {
			res.Notes = append(res.Notes, fmt.Sprintf("root %q expired on %s; accepted as a pinned anchor the operator supplied", r.Subject.CommonName, r.NotAfter.Format("2006-01-02")))
		}
	}
	res.HSM = part.Subject.CommonName
	res.ManufacturerRootSHA256 = Fingerprint(mroot)
	res.OwnerRootSHA256 = Fingerprint(oroot)
	res.PartitionCertSHA256 = Fingerprint(part)
	return chains{partitionKey: key}, nil
}

var (
	signedBy    = certchain.SignedBy
	signedByOne = certchain.SignedByOne
	rootNames   = certchain.Names
)

// Fingerprint is the SHA-256 of a certificate's DER, in hex.
func Fingerprint(c *x509.Certificate) string { return certchain.Fingerprint(c) }

func parseCerts(what string, pems []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range pems {
		c, err := parseCert(what, p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// parseCert reads exactly one PEM CERTIFICATE block.
func parseCert(what, s string) (*x509.Certificate, error) {
	if len(s) > maxCertPEM {
		return nil, refuse("a %s certificate is %d bytes, more than %d", what, len(s), maxCertPEM)
	}
	blk, rest := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, refuse("a %s certificate is not one PEM CERTIFICATE block", what)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, refuse("a %s certificate does not parse: %v", what, err)
	}
	return c, nil
}

// MaxRootFile bounds a trust-root file.
const MaxRootFile = 256 << 10

// ParseRoots reads PEM certificates (one or more) from data.
func ParseRoots(name string, data []byte) ([]*x509.Certificate, error) {
	out, err := certchain.ParseRoots(data)
	if errors.Is(err, certchain.ErrNoCertificate) {
		return nil, fmt.Errorf("%w: trust root file %s holds no PEM certificate: give the PEM file of the root (see docs/gcp-import.md)", ErrAttestation, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: trust root file %s: %v", ErrAttestation, name, err)
	}
	return out, nil
}

// LoadRoots reads the manufacturer and owner roots from the operator's
// files, each bounded by MaxRootFile.
func LoadRoots(manufacturerFile, ownerFile string) (Roots, error) {
	var r Roots
	var err error
	if r.Manufacturer, err = readRoots(manufacturerFile); err != nil {
		return r, err
	}
	r.Owner, err = readRoots(ownerFile)
	return r, err
}

func readRoots(path string) ([]*x509.Certificate, error) {
	data, err := safefile.Read("trust root file", path, MaxRootFile)
	if err != nil {
		return nil, err
	}
	return ParseRoots(path, data)
}
