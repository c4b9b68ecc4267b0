package kmsemu

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// maxLenientPadding is how many zero bytes after a PKCS#8 DER
// Options.LenientPKCS8Padding tolerates: SoftHSM2 2.6.1 pads to a multiple
// of 8, so at most 7.
const maxLenientPadding = 7

// keyMaterial is key material checked against its key spec.
type keyMaterial struct {
	// canonical is what the same-material rule compares and KeyMaterialId is
	// derived from: the raw bytes of a SYMMETRIC_DEFAULT or HMAC key, and an
	// encoding of the private key itself (not of its PKCS#8 wrapping) for key
	// pairs, so that two encodings of one key count as the same material.
	canonical []byte
	// priv is the private key of a key pair: *rsa.PrivateKey,
	// *ecdsa.PrivateKey (NIST curves) or *secp256k1.PrivateKey; nil for
	// secret keys, whose material is canonical.
	priv any
	// padding counts the trailing zero bytes that LenientPKCS8Padding let
	// through.
	padding int
}

// article is "a" or "an" for a key spec name, for messages.
func article(spec string) string {
	if strings.HasPrefix(spec, "RSA") || strings.HasPrefix(spec, "ECC") || strings.HasPrefix(spec, "HMAC") {
		return "an"
	}
	return "a"
}

func incorrectMaterial(format string, args ...any) *apiError {
	return errorf("IncorrectKeyMaterialException", format, args...)
}

// parseMaterial checks unwrapped key material against the key spec it is
// imported into, the way KMS refuses material that does not fit
// (IncorrectKeyMaterialException): exact length for secret keys; for key
// pairs, exactly one DER PKCS#8 PrivateKeyInfo of the spec's key type, curve
// or modulus size. lenient tolerates 1 to 7 zero bytes after the DER (see
// Options.LenientPKCS8Padding).
func parseMaterial(ks *keySpec, raw []byte, lenient bool) (*keyMaterial, *apiError) {
	switch ks.kind {
	case kindSymmetric, kindHMAC:
		if len(raw) != ks.secretLen {
			return nil, incorrectMaterial("Key material for %s %s key must be %d bytes, got %d", article(ks.name), ks.name, ks.secretLen, len(raw))
		}
		return &keyMaterial{canonical: bytes.Clone(raw)}, nil
	}

	var outer asn1.RawValue
	rest, err := asn1.Unmarshal(raw, &outer)
	if err != nil || outer.Class != asn1.ClassUniversal || outer.Tag != asn1.TagSequence || !outer.IsCompound {
		return nil, notPKCS8(ks, err)
	}
	der := raw[:len(raw)-len(rest)]
	padding := 0
	if len(rest) > 0 {
		zeros := allZero(rest)
		if !lenient || !zeros || len(rest) > maxLenientPadding {
			msg := fmt.Sprintf("The key material has %s after its %d-byte PKCS#8 DER: %s %s key needs exactly one DER-encoded PKCS#8 PrivateKeyInfo", plural(len(rest), "byte"), len(der), article(ks.name), ks.name)
			switch {
			case lenient:
				msg += fmt.Sprintf(" (the lenient PKCS#8 padding switch tolerates at most %d zero bytes)", maxLenientPadding)
			case zeros && len(rest) <= maxLenientPadding:
				msg += " (SoftHSM2 2.6.1 zero-pads PKCS#8 to a multiple of 8 bytes before wrapping it; kms-emulator accepts that only with --lenient-pkcs8-padding)"
			}
			return nil, incorrectMaterial("%s", msg)
		}
		padding = len(rest)
	}

	info, err := parsePrivateKeyInfo(der)
	if err != nil {
		return nil, notPKCS8(ks, err)
	}
	m, aerr := parsePrivateKey(ks, info)
	if aerr != nil {
		return nil, aerr
	}
	m.padding = padding
	return m, nil
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func notPKCS8(ks *keySpec, err error) *apiError {
	if err == nil {
		err = errors.New("not a DER SEQUENCE")
	}
	return incorrectMaterial("Key material for %s %s key must be a DER-encoded PKCS#8 PrivateKeyInfo: %v", article(ks.name), ks.name, err)
}

// privateKeyInfo is a parsed PKCS#8 PrivateKeyInfo (RFC 5208) or
// OneAsymmetricKey (RFC 5958).
type privateKeyInfo struct {
	alg        asn1.ObjectIdentifier
	params     []byte // the AlgorithmIdentifier parameters, DER, or nil
	privateKey []byte // the content of the privateKey OCTET STRING
}

// derElements splits the content of a constructed DER value into its
// elements.
func derElements(b []byte) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

func isUniversal(v asn1.RawValue, tag int, compound bool) bool {
	return v.Class == asn1.ClassUniversal && v.Tag == tag && v.IsCompound == compound
}

func isContext(v asn1.RawValue, tag int) bool {
	return v.Class == asn1.ClassContextSpecific && v.Tag == tag
}

// parsePrivateKeyInfo parses exactly one PrivateKeyInfo, element by element:
// version 0 (or 1 with a publicKey), algorithm, privateKey, then only the
// optional [0] attributes and [1] publicKey.
func parsePrivateKeyInfo(der []byte) (*privateKeyInfo, error) {
	var outer asn1.RawValue
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		return nil, err
	}
	els, err := derElements(outer.Bytes)
	if err != nil {
		return nil, err
	}
	if len(els) < 3 {
		return nil, fmt.Errorf("PrivateKeyInfo has %d elements, want version, privateKeyAlgorithm and privateKey", len(els))
	}
	var version int
	if !isUniversal(els[0], asn1.TagInteger, false) {
		return nil, errors.New("PrivateKeyInfo version is not an INTEGER")
	}
	if _, err := asn1.Unmarshal(els[0].FullBytes, &version); err != nil {
		return nil, fmt.Errorf("PrivateKeyInfo version: %w", err)
	}
	if version != 0 && version != 1 {
		return nil, fmt.Errorf("PrivateKeyInfo version %d, want 0 (or 1 for OneAsymmetricKey)", version)
	}
	if !isUniversal(els[1], asn1.TagSequence, true) {
		return nil, errors.New("privateKeyAlgorithm is not a SEQUENCE")
	}
	algEls, err := derElements(els[1].Bytes)
	if err != nil {
		return nil, fmt.Errorf("privateKeyAlgorithm: %w", err)
	}
	if len(algEls) < 1 || len(algEls) > 2 || !isUniversal(algEls[0], asn1.TagOID, false) {
		return nil, errors.New("privateKeyAlgorithm is not an AlgorithmIdentifier")
	}
	info := &privateKeyInfo{}
	if _, err := asn1.Unmarshal(algEls[0].FullBytes, &info.alg); err != nil {
		return nil, fmt.Errorf("privateKeyAlgorithm: %w", err)
	}
	if len(algEls) == 2 {
		info.params = algEls[1].FullBytes
	}
	if !isUniversal(els[2], asn1.TagOctetString, false) {
		return nil, errors.New("privateKey is not an OCTET STRING")
	}
	info.privateKey = els[2].Bytes
	next := 3
	if next < len(els) && isContext(els[next], 0) && els[next].IsCompound {
		next++ // attributes: ignored, as KMS gives them no meaning
	}
	if next < len(els) && isContext(els[next], 1) && version == 1 {
		next++ // OneAsymmetricKey publicKey: the private key determines it
	}
	if next < len(els) {
		return nil, fmt.Errorf("PrivateKeyInfo has an unexpected element %d (class %d tag %d)", next+1, els[next].Class, els[next].Tag)
	}
	return info, nil
}

var (
	oidRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECPublic = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	// keyTypeNames names the other key types a PKCS#8 may hold, for messages.
	keyTypeNames = map[string]string{
		"1.2.840.113549.1.1.10":   "RSASSA-PSS",
		"1.2.840.10040.4.1":       "DSA",
		"1.3.101.110":             "X25519",
		"1.3.101.111":             "X448",
		"1.3.101.112":             "Ed25519",
		"1.3.101.113":             "Ed448",
		"2.16.840.1.101.3.4.3.17": "ML-DSA-44",
		"2.16.840.1.101.3.4.3.18": "ML-DSA-65",
		"2.16.840.1.101.3.4.3.19": "ML-DSA-87",
	}
	// otherCurveNames names EC curves no ECC_* spec uses, for messages.
	otherCurveNames = map[string]string{
		"1.3.132.0.33":          "P-224 (secp224r1)",
		"1.2.156.10197.1.301":   "SM2",
		"1.3.36.3.3.2.8.1.1.7":  "brainpoolP256r1",
		"1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
		"1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
	}
)

// wantKey says what key a spec needs, for messages.
func wantKey(ks *keySpec) string {
	if ks.kind == kindRSA {
		return fmt.Sprintf("a %d-bit RSA private key", ks.rsaBits)
	}
	return "an EC " + ks.curve.name + " private key"
}

func wrongKey(ks *keySpec, got string) *apiError {
	return incorrectMaterial("The key material is a PKCS#8 %s private key, but %s %s key needs %s", got, article(ks.name), ks.name, wantKey(ks))
}

// parsePrivateKey checks that info holds the key type, curve or size ks
// needs and parses the key.
func parsePrivateKey(ks *keySpec, info *privateKeyInfo) (*keyMaterial, *apiError) {
	switch {
	case info.alg.Equal(oidRSA):
		if ks.kind != kindRSA {
			return nil, wrongKey(ks, "RSA")
		}
		priv, err := x509.ParsePKCS1PrivateKey(info.privateKey)
		if err != nil {
			return nil, incorrectMaterial("The PKCS#8 RSA private key for %s %s key cannot be parsed: %v", article(ks.name), ks.name, err)
		}
		if n := priv.N.BitLen(); n != ks.rsaBits {
			return nil, wrongKey(ks, fmt.Sprintf("RSA %d-bit", n))
		}
		return rsaMaterial(priv), nil

	case info.alg.Equal(oidECPublic):
		var curveOID asn1.ObjectIdentifier
		if rest, err := asn1.Unmarshal(info.params, &curveOID); err != nil || len(rest) > 0 {
			return nil, incorrectMaterial("The PKCS#8 EC private key for %s %s key does not name its curve (namedCurve OID): KMS supports named curves only", article(ks.name), ks.name)
		}
		var curve *ecCurve
		for _, c := range ecCurves {
			if c.oid.Equal(curveOID) {
				curve = c
			}
		}
		if curve == nil || ks.kind != kindEC || curve != ks.curve {
			name := "curve " + curveOID.String()
			if curve != nil {
				name = curve.name
			} else if n, ok := otherCurveNames[curveOID.String()]; ok {
				name = n
			}
			return nil, wrongKey(ks, "EC "+name)
		}
		m, err := parseECPrivateKey(curve, info.privateKey)
		if err != nil {
			return nil, incorrectMaterial("The PKCS#8 EC %s private key for %s %s key is not valid: %v", curve.name, article(ks.name), ks.name, err)
		}
		return m, nil

	default:
		name, ok := keyTypeNames[info.alg.String()]
		if !ok {
			name = "algorithm " + info.alg.String()
		}
		return nil, wrongKey(ks, name)
	}
}

// parseECPrivateKey parses the RFC 5915 ECPrivateKey inside a PKCS#8 of the
// given curve: version 1, the private scalar, then only the optional [0]
// parameters (which must name the same curve) and [1] public key (which must
// be the private key's).
func parseECPrivateKey(curve *ecCurve, der []byte) (*keyMaterial, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return nil, fmt.Errorf("ECPrivateKey: %w", err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%d bytes follow the ECPrivateKey inside the privateKey OCTET STRING", len(rest))
	}
	if !isUniversal(seq, asn1.TagSequence, true) {
		return nil, errors.New("ECPrivateKey is not a SEQUENCE")
	}
	els, err := derElements(seq.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ECPrivateKey: %w", err)
	}
	if len(els) < 2 || !isUniversal(els[0], asn1.TagInteger, false) || !isUniversal(els[1], asn1.TagOctetString, false) {
		return nil, errors.New("ECPrivateKey does not start with version and privateKey")
	}
	var version int
	if _, err := asn1.Unmarshal(els[0].FullBytes, &version); err != nil || version != 1 {
		return nil, fmt.Errorf("ECPrivateKey version is not 1")
	}
	scalar := els[1].Bytes
	var pub []byte
	next := 2
	if next < len(els) && isContext(els[next], 0) && els[next].IsCompound {
		var oid asn1.ObjectIdentifier
		if r, err := asn1.Unmarshal(els[next].Bytes, &oid); err != nil || len(r) > 0 {
			return nil, errors.New("ECPrivateKey parameters are not a namedCurve OID")
		}
		if !oid.Equal(curve.oid) {
			return nil, fmt.Errorf("ECPrivateKey names curve %s but its PKCS#8 names %s", oid, curve.oid)
		}
		next++
	}
	if next < len(els) && isContext(els[next], 1) && els[next].IsCompound {
		var bs asn1.BitString
		if r, err := asn1.Unmarshal(els[next].Bytes, &bs); err != nil || len(r) > 0 || bs.BitLength%8 != 0 {
			return nil, errors.New("ECPrivateKey publicKey is not a BIT STRING of whole bytes")
		}
		pub = bs.Bytes
		next++
	}
	if next < len(els) {
		return nil, fmt.Errorf("ECPrivateKey has an unexpected element %d", next+1)
	}

	// RFC 5915 wants the scalar at the curve's size; like crypto/x509,
	// accept it with leading zeros stripped or added.
	for len(scalar) > curve.size && scalar[0] == 0 {
		scalar = scalar[1:]
	}
	if len(scalar) > curve.size {
		return nil, fmt.Errorf("private scalar is %d bytes, longer than the curve's %d", len(scalar), curve.size)
	}
	scalar = append(make([]byte, curve.size-len(scalar)), scalar...)

	var m *keyMaterial
	var uncompressed []byte
	if curve.nist != nil {
		priv, err := ecdsa.ParseRawPrivateKey(curve.nist, scalar)
		if err != nil {
			return nil, fmt.Errorf("private scalar: %w", err)
		}
		if uncompressed, err = priv.PublicKey.Bytes(); err != nil {
			return nil, err
		}
		m = ecMaterial(curve, scalar, priv)
	} else {
		var s secp256k1.ModNScalar
		if overflow := s.SetByteSlice(scalar); overflow || s.IsZero() {
			return nil, errors.New("private scalar is not in [1, n-1]")
		}
		priv := secp256k1.NewPrivateKey(&s)
		uncompressed = priv.PubKey().SerializeUncompressed()
		m = ecMaterial(curve, scalar, priv)
	}
	if pub != nil && !bytes.Equal(pub, uncompressed) && !bytes.Equal(pub, compressPoint(uncompressed)) {
		return nil, errors.New("the public key inside the ECPrivateKey is not the private key's")
	}
	return m, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// compressPoint turns an uncompressed SEC 1 point into its compressed form.
func compressPoint(p []byte) []byte {
	n := (len(p) - 1) / 2
	out := append([]byte{2 | p[len(p)-1]&1}, p[1:1+n]...)
	return out
}

func rsaMaterial(priv *rsa.PrivateKey) *keyMaterial {
	c, err := asn1.Marshal(struct {
		Kind    string
		N, E, D *big.Int
	}{"RSA", priv.N, big.NewInt(int64(priv.E)), priv.D})
	if err != nil {
		panic("kmsemu: encode RSA key: " + err.Error())
	}
	return &keyMaterial{canonical: c, priv: priv}
}

func ecMaterial(curve *ecCurve, scalar []byte, priv any) *keyMaterial {
	c, err := asn1.Marshal(struct {
		Curve  asn1.ObjectIdentifier
		Scalar []byte
	}{curve.oid, scalar})
	if err != nil {
		panic("kmsemu: encode EC key: " + err.Error())
	}
	return &keyMaterial{canonical: c, priv: priv}
}

// generateMaterial makes fresh material for an AWS_KMS key of spec ks.
// RSA-4096 can take seconds: call it without holding the Server's lock.
func generateMaterial(ks *keySpec) (*keyMaterial, error) {
	switch ks.kind {
	case kindSymmetric, kindHMAC:
		b := make([]byte, ks.secretLen)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return &keyMaterial{canonical: b}, nil
	case kindRSA:
		priv, err := rsa.GenerateKey(rand.Reader, ks.rsaBits)
		if err != nil {
			return nil, err
		}
		return rsaMaterial(priv), nil
	default:
		if ks.curve.nist == nil {
			priv, err := secp256k1.GeneratePrivateKey()
			if err != nil {
				return nil, err
			}
			return ecMaterial(ks.curve, priv.Serialize(), priv), nil
		}
		priv, err := ecdsa.GenerateKey(ks.curve.nist, rand.Reader)
		if err != nil {
			return nil, err
		}
		scalar, err := priv.Bytes()
		if err != nil {
			return nil, err
		}
		return ecMaterial(ks.curve, scalar, priv), nil
	}
}

// publicKeyDER is the DER SubjectPublicKeyInfo of a key pair's public half,
// as GetPublicKey returns it.
func publicKeyDER(priv any) ([]byte, error) {
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		return x509.MarshalPKIXPublicKey(&p.PublicKey)
	case *ecdsa.PrivateKey:
		return x509.MarshalPKIXPublicKey(&p.PublicKey)
	case *secp256k1.PrivateKey:
		// crypto/x509 does not know secp256k1: RFC 5480 by hand.
		curve, err := asn1.Marshal(oidSecp256k1)
		if err != nil {
			return nil, err
		}
		point := p.PubKey().SerializeUncompressed()
		return asn1.Marshal(struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}{
			pkix.AlgorithmIdentifier{Algorithm: oidECPublic, Parameters: asn1.RawValue{FullBytes: curve}},
			asn1.BitString{Bytes: point, BitLength: 8 * len(point)},
		})
	default:
		return nil, fmt.Errorf("no public key in %T", priv)
	}
}
