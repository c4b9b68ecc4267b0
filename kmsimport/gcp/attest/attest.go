// Package attest verifies a Google Cloud HSM key attestation: the
// statement a Cloud KMS ImportJob of protection level HSM publishes about
// its wrapping key. It is pure (no network, no clock but the one given) so
// the same check runs online before a wrap and offline on an air-gapped
// host.
//
// Verify accepts a statement only when all of these hold (docs/gcp-import.md
// gives the sources):
//   - its format is CAVIUM_V2_COMPRESSED, the one whose layout is known;
//   - the manufacturer chain (partition cert <- card cert <- a manufacturer
//     root the operator supplied) and the Google chain (card and partition
//     certs, each signed by an owner root the operator supplied, carrying the
//     same keys as the manufacturer's card and partition certs) hold, with
//     no certificate left over;
//   - the statement is signed (RSA PKCS#1 v1.5, SHA-256) by the partition
//     key both chains certify;
//   - it describes exactly one key pair whose public key is the job's
//     wrapping key, and whose private half is not extractable, never was,
//     and was generated inside the HSM.
package attest

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ErrAttestation means the attestation does not prove what it must; the
// wrap must not happen.
var ErrAttestation = errors.New("attestation refused")

// Format is Cloud KMS's AttestationFormat, by its enum value.
type Format int32

// Formats Cloud KMS defines; only FormatCaviumV2Compressed is verified.
const (
	FormatUnspecified        Format = 0
	FormatCaviumV1Compressed Format = 3
	FormatCaviumV2Compressed Format = 4
	FormatCaviumV209         Format = 5
)

func (f Format) String() string {
	switch f {
	case FormatCaviumV1Compressed:
		return "CAVIUM_V1_COMPRESSED"
	case FormatCaviumV2Compressed:
		return "CAVIUM_V2_COMPRESSED"
	case FormatCaviumV209:
		return "CAVIUM_V209"
	case FormatUnspecified:
		return "ATTESTATION_FORMAT_UNSPECIFIED"
	}
	return fmt.Sprintf("AttestationFormat(%d)", int32(f))
}

// Statement is a KeyOperationAttestation as Cloud KMS returns it: the
// compressed statement and the three certificate chains, each a list of
// PEM certificates.
type Statement struct {
	Format          Format
	Content         []byte
	CaviumCerts     []string
	GoogleCardCerts []string
	GooglePartCerts []string
}

// Roots are the trust anchors: the HSM manufacturer's (Marvell, formerly
// Cavium, LiquidSecurity) and the owner's (Google's "Hawksbill Root").
// They are pinned by their keys: a certificate is trusted only if one of
// these keys signed it, whatever its names say.
type Roots struct {
	Manufacturer []*x509.Certificate
	Owner        []*x509.Certificate
}

// Result is what a verified statement established, by digest.
type Result struct {
	Format string
	// PublicKeySHA256 is the SHA-256 of the attested key's
	// SubjectPublicKeyInfo DER (equal to the job's wrapping key's).
	PublicKeySHA256 string
	// HSM names the HSM card and partition, from the partition cert.
	HSM string
	// ManufacturerRootSHA256 and OwnerRootSHA256 identify the roots used.
	ManufacturerRootSHA256 string
	OwnerRootSHA256        string
	// PartitionCertSHA256 identifies the key that signed the statement.
	PartitionCertSHA256 string
	// Attributes says what the private object's attributes were.
	Attributes string
	// Notes are facts a reader should know (an expired root, accepted as a
	// pinned anchor).
	Notes []string
}

// MaxContent bounds the compressed and decompressed statement; real ones
// are under 4 KiB.
const MaxContent = 64 << 10

// Verify checks st against roots and wrapping, the job's wrapping public
// key, at time at (the job's generate time, or now): see the package
// comment. Any failure is ErrAttestation with what failed and what to do.
func Verify(st Statement, roots Roots, wrapping *rsa.PublicKey, at time.Time) (*Result, error) {
	if len(roots.Manufacturer) == 0 || len(roots.Owner) == 0 {
		return nil, refuse("no trust roots: give the HSM manufacturer's root and Google's owner root as files (see docs/gcp-import.md for where to get them and their fingerprints)")
	}
	if wrapping == nil {
		return nil, refuse("the import job has no wrapping public key to compare the attestation with")
	}
	if st.Format != FormatCaviumV2Compressed {
		return nil, refuse("attestation format %s is not one kmsbridge can verify (only CAVIUM_V2_COMPRESSED is): do not wrap under this job; create another import job", st.Format)
	}
	res := &Result{Format: st.Format.String()}
	ch, err := verifyChains(st, roots, at, res)
	if err != nil {
		return nil, err
	}
	blob, err := gunzip(st.Content)
	if err != nil {
		return nil, err
	}
	body, err := checkSignature(blob, ch.partitionKey)
	if err != nil {
		return nil, err
	}
	objs, err := Parse(body)
	if err != nil {
		return nil, err
	}
	if err := checkKey(objs, wrapping, res); err != nil {
		return nil, err
	}
	return res, nil
}

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAttestation, fmt.Sprintf(format, args...))
}

// checkSignature splits the statement into the signed bytes and the
// signature (the last bytes, as long as the partition key's modulus) and
// verifies it.
func checkSignature(blob []byte, key *rsa.PublicKey) ([]byte, error) {
	n := key.Size()
	if len(blob) <= n+headerLen {
		return nil, refuse("the attestation statement is %d bytes, too short to hold a header and a %d-byte signature", len(blob), n)
	}
	if total := binary.BigEndian.Uint32(blob[8:]); uint64(total) != uint64(len(blob)) {
		return nil, refuse("the attestation statement says it is %d bytes long but is %d", total, len(blob))
	}
	body, sig := blob[:len(blob)-n], blob[len(blob)-n:]
	h := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(key, cryptoSHA256, h[:], sig); err != nil {
		return nil, refuse("the attestation statement's signature does not verify under the partition key both chains certify: it was altered or signed by another HSM; do not wrap under this job")
	}
	return body, nil
}

// checkKey requires exactly one key pair (or one private key) whose public
// key is wrapping and whose private object is non-extractable and local.
func checkKey(objs []Object, wrapping *rsa.PublicKey, res *Result) error {
	spki, err := x509.MarshalPKIXPublicKey(wrapping)
	if err != nil {
		return refuse("the job's wrapping key cannot be encoded: %v", err)
	}
	sum := sha256.Sum256(spki)
	var priv *Object
	for i := range objs {
		o := &objs[i]
		class, ok := o.Uint(AttrClass)
		if !ok {
			return refuse("attested object %#x has no CKA_CLASS", o.Handle)
		}
		if class != ClassPublicKey && class != ClassPrivateKey {
			return refuse("attested object %#x is of class %d, not a key pair's half", o.Handle, class)
		}
		if err := sameKey(o, wrapping, sum[:]); err != nil {
			return err
		}
		if class == ClassPrivateKey {
			if priv != nil {
				return refuse("the statement attests two private keys; expected one key pair")
			}
			priv = o
		}
	}
	if priv == nil {
		return refuse("the statement attests no private key: it says nothing about where the wrapping key's private half lives")
	}
	for _, want := range []struct {
		attr  uint32
		name  string
		value bool
		means string
	}{
		{AttrExtractable, "CKA_EXTRACTABLE", false, "the HSM would let the wrapping private key out"},
		{AttrNeverExtractable, "CKA_NEVER_EXTRACTABLE", true, "the wrapping private key was extractable at some time"},
		{AttrLocal, "CKA_LOCAL", true, "the wrapping private key was not generated inside the HSM"},
		{AttrSensitive, "CKA_SENSITIVE", true, "the wrapping private key's value is not protected"},
		{AttrAlwaysSensitive, "CKA_ALWAYS_SENSITIVE", true, "the wrapping private key was readable at some time"},
	} {
		got, ok, err := priv.Bool(want.attr)
		if err != nil {
			return refuse("attested private key: %s: %v", want.name, err)
		}
		if !ok {
			return refuse("attested private key has no %s attribute, so the statement does not show it is kept in the HSM", want.name)
		}
		if got != want.value {
			return refuse("attested private key has %s=%t: %s; do not wrap under this job", want.name, got, want.means)
		}
	}
	res.PublicKeySHA256 = hex.EncodeToString(sum[:])
	res.Attributes = "private key: CKA_EXTRACTABLE=false, CKA_NEVER_EXTRACTABLE=true, CKA_LOCAL=true, CKA_SENSITIVE=true, CKA_ALWAYS_SENSITIVE=true"
	return nil
}

// sameKey requires object o to describe wrapping: an RSA key with its
// modulus and exponent, and, where present, the key check values Cloud
// HSM derives from the SubjectPublicKeyInfo (EKCV the SHA-256 of it, KCV
// the first 3 bytes of its SHA-1).
func sameKey(o *Object, wrapping *rsa.PublicKey, spkiSHA256 []byte) error {
	kt, ok := o.Uint(AttrKeyType)
	if !ok || kt != KeyTypeRSA {
		return refuse("attested object %#x is not an RSA key, but the job's wrapping key is RSA: the statement is about another key", o.Handle)
	}
	mod, ok := o.Attrs[AttrModulus]
	if !ok || !bytes.Equal(trimZeros(mod), wrapping.N.Bytes()) {
		return refuse("the attested key's modulus is not the job's wrapping public key: the statement is about another key, or the job's public key was substituted; do not wrap under this job")
	}
	e, ok := o.Attrs[AttrPublicExponent]
	if ok && !bytes.Equal(trimZeros(e), bigEndian(uint64(wrapping.E))) {
		return refuse("the attested key's public exponent is not the job's wrapping public key's")
	}
	if ekcv, ok := o.Attrs[AttrVendorEKCV]; ok && !bytes.Equal(ekcv, spkiSHA256) {
		return refuse("the attested key's check value (SHA-256 of its public key) is not the job's wrapping public key's")
	}
	return nil
}

func trimZeros(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

func bigEndian(v uint64) []byte {
	var b []byte
	for v > 0 {
		b = append([]byte{byte(v)}, b...)
		v >>= 8
	}
	return b
}
