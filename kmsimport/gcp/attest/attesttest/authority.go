// Package attesttest makes Cloud HSM attestations signed by test roots it
// generates, shaped as the real ones are (a manufacturer root, a card cert
// without basicConstraints, a partition cert; Google's card and partition
// certs over the same keys, signed by an owner root). The Cloud KMS
// emulator and the tests use it; nothing it signs is trusted unless its
// roots are given as trust roots.
package attesttest

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest"
)

// Authority is a test manufacturer and owner with one HSM partition.
type Authority struct {
	ManufacturerRoot, OwnerRoot       *x509.Certificate
	ManufacturerRootPEM, OwnerRootPEM []byte
	// Chains as an ImportJob carries them, leaf first.
	CaviumCerts     []string
	GoogleCardCerts []string
	GooglePartCerts []string
	partKey         *rsa.PrivateKey
}

// New makes the roots and one partition's certificates, valid from now
// minus a day for ten years, over four fresh RSA-2048 key pairs.
func New(now time.Time) (*Authority, error) {
	return NewWithKeys(now, func(bits int) (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, bits) })
}

// NewWithKeys is New with the four RSA-2048 key pairs (manufacturer root,
// card, partition, owner root, in that order) taken from keys: the
// emulator's test key cache, so that a test suite does not generate them
// for every emulator it starts. Two authorities over the same pairs
// verify each other's attestations.
func NewWithKeys(now time.Time, keys func(bits int) (*rsa.PrivateKey, error)) (*Authority, error) {
	pairs := make([]*rsa.PrivateKey, 4)
	for i := range pairs {
		k, err := keys(2048)
		if err != nil {
			return nil, err
		}
		pairs[i] = k
	}
	mRootKey, cardKey, partKey, oRootKey := pairs[0], pairs[1], pairs[2], pairs[3]
	from, to := now.Add(-24*time.Hour), now.Add(10*365*24*time.Hour)
	name := func(cn string) pkix.Name {
		return pkix.Name{Country: []string{"US"}, Organization: []string{"kmsbridge test"}, CommonName: cn}
	}
	mk := func(serial int64, subject pkix.Name, pub *rsa.PublicKey, parent *x509.Certificate, signer *rsa.PrivateKey, ca bool) (*x509.Certificate, error) {
		t := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subject, NotBefore: from, NotAfter: to}
		if ca {
			t.BasicConstraintsValid, t.IsCA = true, true
			t.KeyUsage = x509.KeyUsageCertSign
		}
		if parent == nil {
			parent = t
		}
		der, err := x509.CreateCertificate(rand.Reader, t, parent, pub, signer)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	a := &Authority{partKey: partKey}
	var err error
	if a.ManufacturerRoot, err = mk(1, name("test manufacturer root (kmsbridge emulator)"), &mRootKey.PublicKey, nil, mRootKey, true); err != nil {
		return nil, err
	}
	if a.OwnerRoot, err = mk(2, name("test owner root (kmsbridge emulator)"), &oRootKey.PublicKey, nil, oRootKey, true); err != nil {
		return nil, err
	}
	// As in real data, the manufacturer's card cert has no basicConstraints.
	card, err := mk(3, name("HSM:TEST-0001, for FIPS mode"), &cardKey.PublicKey, a.ManufacturerRoot, mRootKey, false)
	if err != nil {
		return nil, err
	}
	part, err := mk(4, name("HSM:TEST-0001:PARTN:1, for FIPS mode"), &partKey.PublicKey, card, cardKey, false)
	if err != nil {
		return nil, err
	}
	gCard, err := mk(5, name("HSM:TEST-0001, for FIPS mode"), &cardKey.PublicKey, a.OwnerRoot, oRootKey, false)
	if err != nil {
		return nil, err
	}
	gPart, err := mk(6, name("HSM:TEST-0001:PARTN:1, for FIPS mode"), &partKey.PublicKey, a.OwnerRoot, oRootKey, false)
	if err != nil {
		return nil, err
	}
	a.ManufacturerRootPEM, a.OwnerRootPEM = PEM(a.ManufacturerRoot), PEM(a.OwnerRoot)
	a.CaviumCerts = []string{string(PEM(part)), string(PEM(card))}
	a.GoogleCardCerts = []string{string(PEM(gCard))}
	a.GooglePartCerts = []string{string(PEM(gPart))}
	return a, nil
}

// PEM encodes c.
func PEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Roots are the authority's roots, as an operator would load them.
func (a *Authority) Roots() attest.Roots {
	return attest.Roots{Manufacturer: []*x509.Certificate{a.ManufacturerRoot}, Owner: []*x509.Certificate{a.OwnerRoot}}
}

// KeyPair returns the two objects a Cloud HSM attests for an RSA key pair
// generated inside it: the public half extractable, the private half not.
func KeyPair(pub *rsa.PublicKey) []attest.Object {
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	ekcv := sha256.Sum256(spki)
	kcv := sha1.Sum(spki)
	bits := make([]byte, 4)
	binary.BigEndian.PutUint32(bits, uint32(pub.N.BitLen()))
	e := big.NewInt(int64(pub.E)).Bytes()
	obj := func(handle uint32, class byte, priv bool) attest.Object {
		b := func(v bool) []byte {
			if v {
				return []byte{1}
			}
			return []byte{0}
		}
		return attest.Object{Handle: handle, Attrs: map[uint32][]byte{
			attest.AttrClass: {class}, attest.AttrToken: {2}, attest.AttrKeyType: {0},
			attest.AttrModulus: pub.N.Bytes(), attest.AttrModulusBits: bits, attest.AttrPublicExponent: e,
			attest.AttrSensitive: b(priv), attest.AttrExtractable: b(!priv), attest.AttrLocal: {1},
			attest.AttrNeverExtractable: b(priv), attest.AttrAlwaysSensitive: b(priv),
			attest.AttrDecrypt: b(priv), attest.AttrUnwrap: b(priv),
			attest.AttrKCV: kcv[:3], attest.AttrVendorEKCV: ekcv[:],
		}}
	}
	return []attest.Object{obj(0x14d4, 2, false), obj(0x2088, 3, true)}
}

// Sign returns the statement for objs, signed by the partition key.
func (a *Authority) Sign(objs []attest.Object) attest.Statement {
	body := attest.Marshal(objs, a.partKey.Size())
	return a.Statement(a.SignBody(body))
}

// SignBody appends the partition key's signature to body.
func (a *Authority) SignBody(body []byte) []byte {
	h := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.partKey, crypto.SHA256, h[:])
	if err != nil {
		panic(err)
	}
	return append(append([]byte{}, body...), sig...)
}

// Statement wraps a signed blob (body and signature) with the chains.
func (a *Authority) Statement(blob []byte) attest.Statement {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(blob)
	_ = zw.Close()
	return attest.Statement{Format: attest.FormatCaviumV2Compressed, Content: z.Bytes(),
		CaviumCerts:     append([]string{}, a.CaviumCerts...),
		GoogleCardCerts: append([]string{}, a.GoogleCardCerts...),
		GooglePartCerts: append([]string{}, a.GooglePartCerts...)}
}

// Attest is the statement for an RSA key pair generated in the HSM.
func (a *Authority) Attest(pub *rsa.PublicKey) attest.Statement {
	return a.Sign(KeyPair(pub))
}
