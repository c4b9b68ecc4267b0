package hsm

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// PublicKeyDER returns the public half of the key pair k belongs to, as a
// DER SubjectPublicKeyInfo: the form KMS's GetPublicKey returns, so the two
// compare byte for byte. It reads only public attributes of the public key
// object with k's CKA_ID.
func (t *Token) PublicKeyDER(k *Key) ([]byte, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	pub, err := t.findKey(KeySelector{ID: k.ID}, pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return nil, fmt.Errorf("public half of HSM key %q: %w", k.Label, err)
	}
	switch k.KeyType {
	case pkcs11.CKK_RSA:
		attrs, err := t.p.GetAttributeValue(t.session, pub.Handle, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, newError("C_GetAttributeValue", err)
		}
		e := new(big.Int).SetBytes(attrs[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, fmt.Errorf("HSM key %q has an RSA public exponent too large to use", k.Label)
		}
		return x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(attrs[0].Value), E: int(e.Int64())})
	case pkcs11.CKK_EC:
		attrs, err := t.p.GetAttributeValue(t.session, pub.Handle, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, newError("C_GetAttributeValue", err)
		}
		c := curveOf(attrs[0].Value)
		if c == nil {
			return nil, fmt.Errorf("HSM key %q is on a curve kmsbridge does not know", k.Label)
		}
		point, err := ecPoint(attrs[1].Value, *c)
		if err != nil {
			return nil, fmt.Errorf("HSM key %q: %w", k.Label, err)
		}
		return ECPublicKeyDER(*c, point)
	}
	return nil, fmt.Errorf("HSM key %q is not an RSA or EC key: it has no public key", k.Label)
}

// ecPoint returns the uncompressed point from CKA_EC_POINT, which PKCS#11
// defines as a DER OCTET STRING around it (some tokens give it bare).
func ecPoint(v []byte, c Curve) ([]byte, error) {
	want := 1 + 2*c.Bytes
	var inner []byte
	if rest, err := asn1.Unmarshal(v, &inner); err == nil && len(rest) == 0 && len(inner) == want && inner[0] == 4 {
		return inner, nil
	}
	if len(v) == want && v[0] == 4 {
		return v, nil
	}
	return nil, errors.New("CKA_EC_POINT is not an uncompressed point on its curve")
}

// ECPublicKeyDER is the SubjectPublicKeyInfo of an EC public key with the
// named curve c (RFC 5480), built by hand because Go's x509 does not know
// secp256k1.
func ECPublicKeyDER(c Curve, point []byte) ([]byte, error) {
	params, err := asn1.Marshal(c.OID)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue
		}
		PublicKey asn1.BitString
	}{
		Algorithm: struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue
		}{asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}, asn1.RawValue{FullBytes: params}},
		PublicKey: asn1.BitString{Bytes: point, BitLength: 8 * len(point)},
	})
}
