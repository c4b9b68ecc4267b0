package kmsemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// This file makes key material the way an HSM would export it, with Go's
// own crypto and, for secp256k1 (which crypto/x509 and crypto/ecdsa lack),
// by hand with math/big and encoding/asn1: nothing here uses the emulator's
// parsing or signing code, so the tests check it against an independent
// implementation.

// rsaTestKey loads testdata/rsa-NAME.pem: fixed RSA keys, so that a test run
// does not spend seconds generating RSA-3072 and RSA-4096 keys.
func rsaTestKey(t *testing.T, name string) *rsa.PrivateKey {
	t.Helper()
	rsaKeysMu.Lock()
	defer rsaKeysMu.Unlock()
	if k, ok := rsaKeys[name]; ok {
		return k
	}
	data, err := os.ReadFile(filepath.Join("testdata", "rsa-"+name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("testdata/rsa-%s.pem holds no PKCS#8 PEM block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaKeys[name] = k.(*rsa.PrivateKey)
	return rsaKeys[name]
}

var (
	rsaKeysMu sync.Mutex
	rsaKeys   = map[string]*rsa.PrivateKey{}
)

func pkcs8(t *testing.T, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func newECKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// secp256k1 by hand: SEC 2 section 2.4.1 domain parameters and affine point
// arithmetic in math/big. Slow but independent of the emulator's library.
var (
	k1P, _  = new(big.Int).SetString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F", 16)
	k1N, _  = new(big.Int).SetString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)
	k1Gx, _ = new(big.Int).SetString("79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798", 16)
	k1Gy, _ = new(big.Int).SetString("483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8", 16)
	k1G     = k1Point{k1Gx, k1Gy}
)

// k1Point is an affine point; x == nil is the point at infinity.
type k1Point struct{ x, y *big.Int }

func k1Add(a, b k1Point) k1Point {
	if a.x == nil {
		return b
	}
	if b.x == nil {
		return a
	}
	p := k1P
	var l *big.Int
	if a.x.Cmp(b.x) == 0 {
		if new(big.Int).Mod(new(big.Int).Add(a.y, b.y), p).Sign() == 0 {
			return k1Point{}
		}
		// l = 3x^2 / 2y (a = 0 on secp256k1)
		num := new(big.Int).Mul(big.NewInt(3), new(big.Int).Mul(a.x, a.x))
		den := new(big.Int).ModInverse(new(big.Int).Lsh(a.y, 1), p)
		l = num.Mul(num, den)
	} else {
		num := new(big.Int).Sub(b.y, a.y)
		den := new(big.Int).ModInverse(new(big.Int).Mod(new(big.Int).Sub(b.x, a.x), p), p)
		l = num.Mul(num, den)
	}
	l.Mod(l, p)
	x := new(big.Int).Mul(l, l)
	x.Sub(x, a.x).Sub(x, b.x).Mod(x, p)
	y := new(big.Int).Sub(a.x, x)
	y.Mul(y, l).Sub(y, a.y).Mod(y, p)
	return k1Point{x, y}
}

func k1Mul(k *big.Int, pt k1Point) k1Point {
	var r k1Point
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = k1Add(r, r)
		if k.Bit(i) == 1 {
			r = k1Add(r, pt)
		}
	}
	return r
}

// k1Key is a secp256k1 key pair made in the test.
type k1Key struct {
	d   *big.Int
	pub k1Point
}

func newK1Key(t *testing.T) *k1Key {
	t.Helper()
	d, err := rand.Int(rand.Reader, new(big.Int).Sub(k1N, big.NewInt(1)))
	if err != nil {
		t.Fatal(err)
	}
	d.Add(d, big.NewInt(1))
	return &k1Key{d: d, pub: k1Mul(d, k1G)}
}

func (k *k1Key) uncompressed() []byte {
	out := []byte{4}
	out = append(out, k.pub.x.FillBytes(make([]byte, 32))...)
	return append(out, k.pub.y.FillBytes(make([]byte, 32))...)
}

var (
	testOIDECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	testOIDSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

type testECPrivateKey struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

type testPKCS8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
}

// k1PKCS8 encodes a secp256k1 private key as PKCS#8 by hand (RFC 5208 and
// RFC 5915), with the public key inside as NSS writes it, or without as
// SoftHSM2 does. scalar overrides the private scalar bytes when not nil.
func k1PKCS8(t *testing.T, k *k1Key, withPublic bool, scalar []byte) []byte {
	t.Helper()
	if scalar == nil {
		scalar = k.d.FillBytes(make([]byte, 32))
	}
	ec := testECPrivateKey{Version: 1, PrivateKey: scalar}
	if withPublic {
		ec.PublicKey = asn1.BitString{Bytes: k.uncompressed(), BitLength: 8 * 65}
	}
	inner, err := asn1.Marshal(ec)
	if err != nil {
		t.Fatal(err)
	}
	curve, err := asn1.Marshal(testOIDSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(testPKCS8{
		Algo:       pkix.AlgorithmIdentifier{Algorithm: testOIDECPublicKey, Parameters: asn1.RawValue{FullBytes: curve}},
		PrivateKey: inner,
	})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// k1Verify is ECDSA verification (SEC 1 section 4.1.4) on secp256k1 of a DER
// signature over digest.
func k1Verify(pub k1Point, digest, sig []byte) bool {
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) > 0 {
		return false
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.Cmp(k1N) >= 0 || rs.S.Cmp(k1N) >= 0 {
		return false
	}
	e := new(big.Int).SetBytes(digest) // 32-byte digests: no truncation
	w := new(big.Int).ModInverse(rs.S, k1N)
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, k1N)
	u2 := new(big.Int).Mul(rs.R, w)
	u2.Mod(u2, k1N)
	x := k1Add(k1Mul(u1, k1G), k1Mul(u2, pub))
	if x.x == nil {
		return false
	}
	return new(big.Int).Mod(x.x, k1N).Cmp(rs.R) == 0
}

// k1Sign is ECDSA signing on secp256k1 with a random nonce and no low-S
// normalization, as a generic signer (OpenSSL, an HSM) produces.
func k1Sign(t *testing.T, k *k1Key, digest []byte) []byte {
	t.Helper()
	e := new(big.Int).SetBytes(digest)
	for {
		n, err := rand.Int(rand.Reader, k1N)
		if err != nil {
			t.Fatal(err)
		}
		if n.Sign() == 0 {
			continue
		}
		r := new(big.Int).Mod(k1Mul(n, k1G).x, k1N)
		s := new(big.Int).Mul(r, k.d)
		s.Add(s, e).Mul(s, new(big.Int).ModInverse(n, k1N)).Mod(s, k1N)
		if r.Sign() == 0 || s.Sign() == 0 {
			continue
		}
		der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
}

// createSpecKey creates a key of spec and usage with the given origin.
func (e *env) createSpecKey(t *testing.T, origin types.OriginType, spec types.KeySpec, usage types.KeyUsageType) string {
	t.Helper()
	out, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: origin, KeySpec: spec, KeyUsage: usage})
	if err != nil {
		t.Fatalf("CreateKey %s %s %s: %v", origin, spec, usage, err)
	}
	return aws.ToString(out.KeyMetadata.KeyId)
}

// importSpecInput is a valid ImportKeyMaterial request for material
// wrapped with alg under fresh wrapKey parameters, not expiring.
func (e *env) importSpecInput(t *testing.T, keyID string, alg types.AlgorithmSpec, wrapKey types.WrappingKeySpec, material []byte) *kms.ImportKeyMaterialInput {
	t.Helper()
	p := e.params(t, keyID, alg, wrapKey)
	return &kms.ImportKeyMaterialInput{
		KeyId:                aws.String(keyID),
		ImportToken:          p.ImportToken,
		EncryptedKeyMaterial: wrap(t, p.PublicKey, alg, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	}
}

// importSpec imports material into keyID with alg under an RSA_2048
// wrapping key and returns the KeyMaterialId, or the error.
func (e *env) importSpec(t *testing.T, keyID string, alg types.AlgorithmSpec, material []byte) (string, error) {
	t.Helper()
	out, err := e.kms.ImportKeyMaterial(ctx, e.importSpecInput(t, keyID, alg, types.WrappingKeySpecRsa2048, material))
	if err != nil {
		return "", err
	}
	return aws.ToString(out.KeyMaterialId), nil
}

func (e *env) importSpecOK(t *testing.T, keyID string, alg types.AlgorithmSpec, material []byte) string {
	t.Helper()
	id, err := e.importSpec(t, keyID, alg, material)
	if err != nil {
		t.Fatalf("ImportKeyMaterial: %v", err)
	}
	return id
}

// externalSpecKey creates an EXTERNAL key of spec and usage and imports
// material into it.
func (e *env) externalSpecKey(t *testing.T, spec types.KeySpec, usage types.KeyUsageType, alg types.AlgorithmSpec, material []byte) string {
	t.Helper()
	keyID := e.createSpecKey(t, types.OriginTypeExternal, spec, usage)
	e.importSpecOK(t, keyID, alg, material)
	return keyID
}

func (e *env) deleteMaterial(t *testing.T, keyID string) {
	t.Helper()
	if _, err := e.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("DeleteImportedKeyMaterial: %v", err)
	}
}

func zeros(n int) []byte { return make([]byte, n) }

func appendBytes(a []byte, b ...[]byte) []byte {
	out := append([]byte(nil), a...)
	for _, x := range b {
		out = append(out, x...)
	}
	return out
}
