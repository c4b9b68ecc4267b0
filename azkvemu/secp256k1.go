package azkvemu

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Go's x509 knows no secp256k1, so the emulator reads a PKCS#8 EC private
// key on it (RFC 5208 around RFC 5915) itself, as strictly: no byte after
// the DER, the ecPublicKey algorithm with the secp256k1 OID, a 32-byte
// scalar in range, and an embedded public key, when present, that is the
// scalar's.

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

type pkcs8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
	Attributes asn1.RawValue `asn1:"optional,tag:0"`
}

type ecPrivateKey struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// parseSecp256k1PKCS8 returns the public key of a PKCS#8 secp256k1 key.
func parseSecp256k1PKCS8(der []byte) (*ecdsa.PublicKey, error) {
	var p pkcs8
	rest, err := asn1.Unmarshal(der, &p)
	if err != nil || len(rest) != 0 || p.Version != 0 {
		return nil, errors.New("not a PKCS#8 private key")
	}
	var curve asn1.ObjectIdentifier
	if !p.Algo.Algorithm.Equal(oidECPublicKey) {
		return nil, errors.New("not an EC key")
	}
	if rest, err := asn1.Unmarshal(p.Algo.Parameters.FullBytes, &curve); err != nil || len(rest) != 0 || !curve.Equal(oidSecp256k1) {
		return nil, errors.New("not on secp256k1")
	}
	var ec ecPrivateKey
	if rest, err := asn1.Unmarshal(p.PrivateKey, &ec); err != nil || len(rest) != 0 || ec.Version != 1 {
		return nil, errors.New("not an RFC 5915 EC private key")
	}
	if len(ec.Curve) > 0 && !ec.Curve.Equal(oidSecp256k1) {
		return nil, errors.New("the inner curve is not secp256k1")
	}
	if len(ec.PrivateKey) != 32 {
		return nil, errors.New("the scalar is not 32 bytes")
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(ec.PrivateKey); overflow || s.IsZero() {
		return nil, errors.New("the scalar is out of range")
	}
	priv := secp256k1.NewPrivateKey(&s)
	pub := priv.PubKey()
	if len(ec.PublicKey.Bytes) > 0 && !bytes.Equal(ec.PublicKey.Bytes, pub.SerializeUncompressed()) {
		return nil, errors.New("the embedded public key is not the scalar's")
	}
	priv.Zero()
	return pub.ToECDSA(), nil
}
