// Package attesttest makes Managed HSM key attestations (MRVL-1) signed by
// test roots it generates, in the layout package attest verifies: for the
// key vault emulator and for tests. Nothing here is trusted by kmsbridge
// unless an operator gives its root.
package attesttest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest"
)

// Authority is a test manufacturer root, one card and partition under it,
// and a pool CA certifying the same partition key.
type Authority struct {
	Root, Card, Partition, Pool, PoolPartition *x509.Certificate
	partitionKey                               *rsa.PrivateKey
	rootKey, cardKey                           *rsa.PrivateKey
}

// New generates an authority whose certificates are valid for ten years
// from an hour ago.
func New() (*Authority, error) {
	key := func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }
	rootKey, err := key()
	if err != nil {
		return nil, err
	}
	cardKey, err := key()
	if err != nil {
		return nil, err
	}
	partKey, err := key()
	if err != nil {
		return nil, err
	}
	poolKey, err := key()
	if err != nil {
		return nil, err
	}
	a := &Authority{partitionKey: partKey, rootKey: rootKey, cardKey: cardKey}
	if a.Root, err = cert("test manufacturer root (kmsbridge attesttest)", nil, nil, &rootKey.PublicKey, rootKey, true); err != nil {
		return nil, err
	}
	if a.Card, err = cert("HSM:TEST-CARD, for tests", a.Root, rootKey, &cardKey.PublicKey, nil, false); err != nil {
		return nil, err
	}
	return a, a.partition(1, "test pool CA (kmsbridge attesttest)", partKey, poolKey)
}

// partition certifies partKey as partition n of the card, and, by a new
// self-signed pool CA named pool, again.
func (a *Authority) partition(n int, pool string, partKey, poolKey *rsa.PrivateKey) error {
	cn := fmt.Sprintf("HSM:TEST-CARD:PARTN:%d, for tests", n)
	var err error
	if a.Partition, err = cert(cn, a.Card, a.cardKey, &partKey.PublicKey, nil, false); err != nil {
		return err
	}
	if a.Pool, err = cert(pool, nil, nil, &poolKey.PublicKey, poolKey, true); err != nil {
		return err
	}
	a.PoolPartition, err = cert(cn, a.Pool, poolKey, &partKey.PublicKey, nil, false)
	return err
}

// OtherPartition is another partition n of the same card under the same
// manufacturer root, with a pool CA of its own named pool: another
// customer's Managed HSM. Its attestations verify against the same root
// as a's; only a partition pin tells them apart.
func (a *Authority) OtherPartition(n int, pool string) (*Authority, error) {
	partKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	poolKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	o := &Authority{Root: a.Root, Card: a.Card, partitionKey: partKey, rootKey: a.rootKey, cardKey: a.cardKey}
	return o, o.partition(n, pool, partKey, poolKey)
}

// PartitionKeySHA256 is the SHA-256 of the partition key's
// SubjectPublicKeyInfo, in hex: what an operator pins.
func (a *Authority) PartitionKeySHA256() string {
	sum := sha256.Sum256(a.Partition.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

var serial atomic.Int64

func cert(cn string, parent *x509.Certificate, parentKey *rsa.PrivateKey, pub *rsa.PublicKey, self *rsa.PrivateKey, ca bool) (*x509.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn, Organization: []string{"kmsbridge tests"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour), BasicConstraintsValid: ca, IsCA: ca,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	if parent == nil {
		parent, parentKey = tmpl, self
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// RootPEM is the manufacturer root, as an operator would give it.
func (a *Authority) RootPEM() []byte { return pemOf(a.Root) }

// BundlePEM is the certificate bundle of every attestation.
func (a *Authority) BundlePEM() []byte {
	var out []byte
	for _, c := range []*x509.Certificate{a.Card, a.Partition, a.Pool, a.PoolPartition} {
		out = append(out, pemOf(c)...)
	}
	return out
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Attr is one attribute of a blob.
type Attr struct {
	Type  uint32
	Value []byte
}

// KeyAttrs are the attributes of an RSA key made in the HSM: class 3
// (private) or 2 (public), the modulus and the identifier path
// /keys/NAME/VERSION, as Managed HSM's sample has them.
func KeyAttrs(class byte, pub *rsa.PublicKey, keyPath string) []Attr {
	id := make([]byte, 128)
	copy(id, keyPath)
	label := make([]byte, 128)
	copy(label, "customer_key")
	attrs := []Attr{{attest.AttrClass, []byte{class}}, {attest.AttrKeyType, []byte{0}}, {0x3, label}, {attest.AttrID, id},
		{attest.AttrModulus, pub.N.FillBytes(make([]byte, pub.Size()))}, {0x122, big.NewInt(int64(pub.E)).Bytes()}}
	if class == 3 {
		attrs = append(attrs, Attr{attest.AttrSensitive, []byte{1}}, Attr{attest.AttrExtractable, []byte{0}},
			Attr{attest.AttrLocal, []byte{1}}, Attr{attest.AttrNeverExtractable, []byte{1}})
	}
	return attrs
}

// Blob lays attrs out and signs them with the partition key.
func (a *Authority) Blob(attrs []Attr) []byte {
	var body []byte
	for _, at := range attrs {
		body = binary.BigEndian.AppendUint32(body, at.Type)
		body = binary.BigEndian.AppendUint32(body, uint32(len(at.Value)))
		body = append(body, at.Value...)
	}
	data := make([]byte, 16)
	data = binary.BigEndian.AppendUint32(data, uint32(12+len(body)))
	data = binary.BigEndian.AppendUint32(data, 14)
	data = binary.BigEndian.AppendUint32(data, uint32(len(attrs)))
	data = binary.BigEndian.AppendUint32(data, uint32(len(body)))
	data = append(data, body...)
	h := sha256.Sum256(data)
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.partitionKey, crypto.SHA256, h[:])
	if err != nil {
		panic(err)
	}
	return append(data, sig...)
}

// Attest is the attestation of the RSA key pub at keyPath, as Managed
// HSM serves it.
func (a *Authority) Attest(pub *rsa.PublicKey, keyPath string) attest.Statement {
	return attest.Statement{Version: attest.Version, CertificatePEM: a.BundlePEM(),
		PrivateKeyAttestation: a.Blob(KeyAttrs(3, pub, keyPath)), PublicKeyAttestation: a.Blob(KeyAttrs(2, pub, keyPath))}
}
