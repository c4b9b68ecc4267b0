// Package attest verifies a Managed HSM key attestation (version MRVL-1)
// of the Key Exchange Key, before anything is wrapped under it: the
// format and checks of Microsoft's published validator (repository
// Azure/azure-managed-hsm-key-attestation, docs/azure-import.md "KEK
// attestation" gives the evidence), held strictly:
//
//  1. The certificate bundle holds a card certificate signed by a
//     manufacturer root the operator gives (Marvell LiquidSecurity) and a
//     partition certificate signed by that card certificate; and the
//     pool's own self-signed CA with a certificate of the same partition
//     key. Card and partition certificates are valid at the time given.
//  2. Each attestation blob ends with a 256-byte RSA PKCS#1 v1.5
//     SHA-256 signature, by that partition key, of everything before it.
//  3. The signed attributes (PKCS#1 attribute types, TLV) say the key is
//     the KEK: an RSA key whose modulus and exponent are the KEK's, whose identifier is
//     the KEK's /keys/NAME/VERSION, and, for the private key, local (made
//     in the HSM), sensitive, never extractable and not extractable.
//
// Pure: no network, no files. Any failure is ErrAttestation naming what
// failed.
package attest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/certchain"
)

// ErrAttestation is every refusal of an attestation.
var ErrAttestation = errors.New("Managed HSM key attestation refused")

// Version is the one attestation version Microsoft's validator knows.
const Version = "MRVL-1"

// Limits: the real bundle is 5 KiB of PEM with 4 certificates, the blobs
// 1.5 KiB each.
const (
	MaxPEM       = 64 << 10
	MaxBlob      = 16 << 10
	maxCerts     = 8
	SignatureLen = 256
	// attrOffset is where the attribute header starts: three big-endian
	// 32-bit words (the second is the number of attributes), then the
	// attributes as type (32 bits), length (32 bits), value.
	attrOffset = 20
	maxAttrs   = 512
)

// Attribute types the checks read (PKCS#11 v2.40 CKA_ values).
const (
	AttrClass            = 0x000
	AttrKeyType          = 0x100
	AttrID               = 0x102
	AttrSensitive        = 0x103
	AttrModulus          = 0x120
	AttrPublicExponent   = 0x122
	AttrExtractable      = 0x162
	AttrLocal            = 0x163
	AttrNeverExtractable = 0x164
)

// Statement is attributes.attestation of GET /keys/NAME/VERSION/attestation,
// base64url already decoded (azkeys.KeyAttestation).
type Statement struct {
	Version               string
	CertificatePEM        []byte
	PrivateKeyAttestation []byte
	PublicKeyAttestation  []byte
}

// Result is what was verified.
type Result struct {
	ManufacturerRoot   string `json:"ManufacturerRoot"`
	Card               string `json:"Card"`
	Partition          string `json:"Partition"`
	PartitionKeySHA256 string `json:"PartitionKeySha256"`
	PoolCA             string `json:"PoolCa"`
	KeyPath            string `json:"KeyPath"`
	// PinnedPartition: the partition key is one the operator pinned
	// (VerifyPinned), so the KEK is that HSM's.
	PinnedPartition bool     `json:"PinnedPartition"`
	Checked         []string `json:"Checked"`
}

// Summary is the result in one line, for the record.
func (r *Result) Summary() string { return strings.Join(r.Checked, "; ") }

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAttestation, fmt.Sprintf(format, args...))
}

// ErrOtherHSM is the refusal of an attestation that verifies but comes
// from a partition the operator did not pin: a genuine key of another
// HSM (someone's own Managed HSM), not of the one the operator means.
var ErrOtherHSM = fmt.Errorf("%w: the KEK was attested by another HSM than the one pinned", ErrAttestation)

// Verify checks st for the KEK kek, whose identifier path is keyPath
// (/keys/NAME/VERSION), against the manufacturer roots, at time at. It
// pins no partition: VerifyPinned with none.
func Verify(st Statement, roots []*x509.Certificate, kek *rsa.PublicKey, keyPath string, at time.Time) (*Result, error) {
	return VerifyPinned(st, roots, kek, keyPath, at, nil)
}

// ParsePartitionPin checks one pin, the SHA-256 (64 hex digits) of a
// partition key's SubjectPublicKeyInfo, as Result.PartitionKeySHA256
// gives it, and returns it in lower case.
func ParsePartitionPin(s string) (string, error) {
	t := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if len(t) != 2*sha256.Size {
		return "", fmt.Errorf("partition pin %q is not a SHA-256 (64 hex digits; colons allowed): give the PartitionKeySha256 of a verified attestation of your Managed HSM", excerpt(s))
	}
	if _, err := hex.DecodeString(t); err != nil {
		return "", fmt.Errorf("partition pin %q is not hex: give the PartitionKeySha256 of a verified attestation of your Managed HSM", excerpt(s))
	}
	return t, nil
}

// VerifyPinned is Verify, and then, when partitions is not empty, the
// partition key both chains certify (and which signed the blobs) must be
// one of partitions (SHA-256 of its SubjectPublicKeyInfo, lower-case hex,
// ParsePartitionPin). The attestation names no vault (docs/azure-import.md,
// "Which HSM"): the partition is what Marvell's chain binds, so a pin is
// what makes a genuine attestation of someone else's Managed HSM fail.
func VerifyPinned(st Statement, roots []*x509.Certificate, kek *rsa.PublicKey, keyPath string, at time.Time, partitions []string) (*Result, error) {
	if len(roots) == 0 {
		return nil, refuse("no manufacturer root: give Marvell's LiquidSecurity root certificate as a PEM file (docs/azure-import.md says where to get it and its fingerprint)")
	}
	if kek == nil || keyPath == "" {
		return nil, refuse("no Key Exchange Key to compare the attestation with")
	}
	if st.Version != Version {
		return nil, refuse("attestation version %q is not %s, the one kmsbridge (and Microsoft's validator) can verify: do not wrap under this KEK", st.Version, Version)
	}
	if len(st.PrivateKeyAttestation) == 0 {
		return nil, refuse("the attestation has no private key attestation")
	}
	res := &Result{KeyPath: keyPath}
	partition, err := verifyChains(st.CertificatePEM, roots, at, res)
	if err != nil {
		return nil, err
	}
	if len(partitions) > 0 {
		if err := checkPin(res, partitions); err != nil {
			return nil, err
		}
	}
	blobs := []struct {
		name  string
		blob  []byte
		class byte
	}{{"private key attestation", st.PrivateKeyAttestation, 3}}
	if len(st.PublicKeyAttestation) > 0 {
		blobs = append(blobs, struct {
			name  string
			blob  []byte
			class byte
		}{"public key attestation", st.PublicKeyAttestation, 2})
	}
	for _, b := range blobs {
		attrs, err := verifyBlob(b.name, b.blob, partition)
		if err != nil {
			return nil, err
		}
		if err := checkKey(b.name, attrs, b.class, kek, keyPath); err != nil {
			return nil, err
		}
		res.Checked = append(res.Checked, b.name+" signed by the partition key and naming the KEK")
	}
	res.Checked = append(res.Checked, "the KEK is an RSA key whose modulus and exponent are the vault's, generated in the HSM (CKA_LOCAL), sensitive, never extractable")
	return res, nil
}

// checkPin holds the certified partition to the operator's pins.
func checkPin(res *Result, partitions []string) error {
	for _, p := range partitions {
		if p == res.PartitionKeySHA256 {
			res.PinnedPartition = true
			res.Checked = append(res.Checked, fmt.Sprintf("partition key SHA-256 %s is one the operator pinned (--azure-hsm-partition): the KEK was generated in that partition", res.PartitionKeySHA256))
			return nil
		}
	}
	return fmt.Errorf("%w: partition %q (partition key SHA-256 %s, pool CA %q) is not one pinned with --azure-hsm-partition (%s): the KEK is a genuine Managed HSM key, but of another HSM than yours; do not wrap under it (if your Managed HSM's partitions changed, pin the PartitionKeySha256 of a verified attestation read from your own vault)",
		ErrOtherHSM, res.Partition, res.PartitionKeySHA256, res.PoolCA, strings.Join(partitions, ", "))
}

// verifyChains finds the manufacturer's and the pool's chains to one
// partition key and returns it.
func verifyChains(bundle []byte, roots []*x509.Certificate, at time.Time, res *Result) (*rsa.PublicKey, error) {
	if len(bundle) > MaxPEM {
		return nil, refuse("the certificate bundle is %d bytes, more than %d", len(bundle), MaxPEM)
	}
	var certs []*x509.Certificate
	for rest := bundle; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, refuse("the certificate bundle holds something that is not PEM")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, refuse("the certificate bundle holds a PEM block %q, not a certificate", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, refuse("a certificate of the bundle does not parse: %v", err)
		}
		if certs = append(certs, c); len(certs) > maxCerts {
			return nil, refuse("the certificate bundle holds more than %d certificates", maxCerts)
		}
	}
	valid := func(c *x509.Certificate) error {
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			return refuse("certificate %q is valid from %s to %s, not at %s", c.Subject.CommonName, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), at.Format(time.RFC3339))
		}
		return nil
	}
	var card, partition *x509.Certificate
	for _, c := range certs {
		if r := signedByOne(c, roots); r != nil && !selfSigned(c) {
			card, res.ManufacturerRoot = c, fmt.Sprintf("%q SHA-256 %s", r.Subject.CommonName, Fingerprint(r))
			break
		}
	}
	if card == nil {
		return nil, refuse("no certificate of the bundle is signed by the manufacturer root given (%s): the HSM is not one of that manufacturer's, or the wrong root was given", rootNames(roots))
	}
	for _, c := range certs {
		if c != card && signedBy(c, card) {
			partition = c
			break
		}
	}
	if partition == nil {
		return nil, refuse("no partition certificate of the bundle is signed by the card certificate %q", card.Subject.CommonName)
	}
	for _, c := range []*x509.Certificate{card, partition} {
		if err := valid(c); err != nil {
			return nil, err
		}
	}
	pk, ok := partition.PublicKey.(*rsa.PublicKey)
	if !ok || pk.Size() != SignatureLen {
		return nil, refuse("the partition key is not RSA-2048, whose 256-byte signature ends each attestation blob")
	}
	// The pool's own CA certifies the same partition key.
	var pool, poolPartition *x509.Certificate
	for _, c := range certs {
		if selfSigned(c) && signedByOne(c, roots) == nil {
			pool = c
			break
		}
	}
	if pool != nil {
		for _, c := range certs {
			if c != pool && signedBy(c, pool) {
				poolPartition = c
				break
			}
		}
	}
	if pool == nil || poolPartition == nil {
		return nil, refuse("the certificate bundle has no Managed HSM pool CA certifying a partition key")
	}
	if pp, ok := poolPartition.PublicKey.(*rsa.PublicKey); !ok || !pp.Equal(pk) {
		return nil, refuse("the pool CA %q certifies another partition key than the manufacturer's chain: the attestation was assembled from two HSMs", pool.Subject.CommonName)
	}
	res.Card, res.Partition, res.PoolCA = card.Subject.CommonName, partition.Subject.CommonName, pool.Subject.CommonName
	der, _ := x509.MarshalPKIXPublicKey(pk)
	sum := sha256.Sum256(der)
	res.PartitionKeySHA256 = hex.EncodeToString(sum[:])
	res.Checked = append(res.Checked, fmt.Sprintf("partition %q certified by card %q under manufacturer root %s, and by the pool's CA %q", partition.Subject.CommonName, card.Subject.CommonName, res.ManufacturerRoot, pool.Subject.CommonName))
	return pk, nil
}

// verifyBlob checks the blob's signature and returns its attributes.
func verifyBlob(name string, blob []byte, partition *rsa.PublicKey) (Attributes, error) {
	if len(blob) > MaxBlob {
		return nil, refuse("the %s is %d bytes, more than %d", name, len(blob), MaxBlob)
	}
	if len(blob) <= SignatureLen+attrOffset+12 {
		return nil, refuse("the %s is %d bytes, too short for attributes and a %d-byte signature", name, len(blob), SignatureLen)
	}
	data, sig := blob[:len(blob)-SignatureLen], blob[len(blob)-SignatureLen:]
	h := sha256.Sum256(data)
	if err := rsa.VerifyPKCS1v15(partition, crypto.SHA256, h[:], sig); err != nil {
		return nil, refuse("the %s's signature does not verify under the partition key both chains certify: it was altered, made by another HSM, or is in a form kmsbridge does not verify (docs/azure-import.md); do not wrap under this KEK", name)
	}
	attrs, err := ParseAttributes(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, name)
	}
	return attrs, nil
}

// Attributes are a blob's attributes by type.
type Attributes map[uint32][]byte

// ParseAttributes reads the attributes of the signed part of a blob,
// refusing any that overrun it or come twice.
func ParseAttributes(data []byte) (Attributes, error) {
	if len(data) < attrOffset+12 {
		return nil, refuse("the attestation is too short for its attribute header")
	}
	count := binary.BigEndian.Uint32(data[attrOffset+4:])
	if count == 0 || count > maxAttrs {
		return nil, refuse("the attestation says it has %d attributes", count)
	}
	attrs := Attributes{}
	off := attrOffset + 12
	for i := uint32(0); i < count; i++ {
		if len(data)-off < 8 {
			return nil, refuse("attribute %d of %d overruns the attestation", i+1, count)
		}
		t, n := binary.BigEndian.Uint32(data[off:]), binary.BigEndian.Uint32(data[off+4:])
		off += 8
		if uint64(n) > uint64(len(data)-off) {
			return nil, refuse("attribute %#x says it is %d bytes, more than the attestation holds", t, n)
		}
		if _, dup := attrs[t]; dup {
			return nil, refuse("attribute %#x appears twice", t)
		}
		attrs[t] = data[off : off+int(n)]
		off += int(n)
	}
	return attrs, nil
}

// checkKey holds the attributes to the KEK.
func checkKey(name string, a Attributes, class byte, kek *rsa.PublicKey, keyPath string) error {
	is := func(t uint32, want byte, what string) error {
		v, ok := a[t]
		if !ok || len(v) != 1 || v[0] != want {
			return refuse("the %s does not say %s (attribute %#x is %x)", name, what, t, v)
		}
		return nil
	}
	if err := is(AttrClass, class, map[byte]string{2: "a public key", 3: "a private key"}[class]); err != nil {
		return err
	}
	if err := is(AttrKeyType, 0, "an RSA key"); err != nil {
		return err
	}
	if !bytes.Equal(bytes.TrimLeft(a[AttrModulus], "\x00"), kek.N.Bytes()) {
		return refuse("the %s attests another key: its modulus is not the KEK's", name)
	}
	// The exponent too: the modulus alone does not bind the key the HSM
	// wraps under (with the attested modulus and e=1, RSA-OAEP hides
	// nothing).
	if e, ok := a[AttrPublicExponent]; !ok || new(big.Int).SetBytes(e).Cmp(big.NewInt(int64(kek.E))) != 0 {
		return refuse("the %s attests another key: its public exponent (%x) is not the KEK's (%d)", name, e, kek.E)
	}
	if id := string(bytes.TrimRight(a[AttrID], "\x00")); !strings.EqualFold(id, keyPath) {
		return refuse("the %s names key %q, not the KEK %s", name, excerpt(id), keyPath)
	}
	if class != 3 {
		return nil
	}
	for _, c := range []struct {
		t    uint32
		want byte
		what string
	}{{AttrLocal, 1, "the key was generated in the HSM (CKA_LOCAL)"}, {AttrSensitive, 1, "the key is sensitive"},
		{AttrNeverExtractable, 1, "the key was never extractable"}, {AttrExtractable, 0, "the key is not extractable"}} {
		if err := is(c.t, c.want, c.what); err != nil {
			return err
		}
	}
	return nil
}

func excerpt(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && signedBy(c, c)
}

// signedBy checks child's issuer name and signature under parent's key.
func signedBy(child, parent *x509.Certificate) bool {
	return bytes.Equal(child.RawIssuer, parent.RawSubject) && certchain.SignedBy(child, parent)
}

func signedByOne(c *x509.Certificate, roots []*x509.Certificate) *x509.Certificate {
	for _, r := range roots {
		if signedBy(c, r) {
			return r
		}
	}
	return nil
}

var rootNames = certchain.Names

// Fingerprint is the SHA-256 of a certificate's DER, in hex.
func Fingerprint(c *x509.Certificate) string { return certchain.Fingerprint(c) }
