package azure

import (
	"errors"
	"fmt"
	"math/big"

	"crypto/rsa"
	"crypto/x509"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// Which HSM keys go into which Azure key types (KV-BYOK and MHSM-BYOK,
// "Supported key types"; docs/azure-import.md).

// curves are Key Vault's names (JsonWebKeyCurveName) for the HSM's curves.
var curves = []struct {
	crv azkeys.CurveName
	hsm hsm.Curve
}{
	{azkeys.CurveNameP256, hsm.P256},
	{azkeys.CurveNameP384, hsm.P384},
	{azkeys.CurveNameP521, hsm.P521},
	{azkeys.CurveNameP256K, hsm.Secp256k1},
}

func crvOf(c hsm.Curve) (azkeys.CurveName, bool) {
	for _, k := range curves {
		if k.hsm.OID.Equal(c.OID) {
			return k.crv, true
		}
	}
	return "", false
}

func curveOfCrv(crv *azkeys.CurveName) (hsm.Curve, bool) {
	for _, k := range curves {
		if crv != nil && *crv == k.crv {
			return k.hsm, true
		}
	}
	return hsm.Curve{}, false
}

// ktyOf is Key Vault's key type for the material.
func (r *run) ktyOf() (azkeys.KeyType, *azkeys.CurveName) {
	switch r.params.KeyType {
	case pkcs11.CKK_EC:
		crv, _ := crvOf(r.params.Curve)
		return azkeys.KeyTypeECHSM, to.Ptr(crv)
	case pkcs11.CKK_AES:
		return azkeys.KeyTypeOctHSM, nil
	}
	return azkeys.KeyTypeRSAHSM, nil
}

// sameKind reports whether two key kinds are the same type and size.
func sameKind(a, b hsm.KeyParams) bool {
	return a.KeyType == b.KeyType && a.Bits == b.Bits && a.Bytes == b.Bytes && a.Curve.OID.Equal(b.Curve.OID)
}

// notManagedHSM refuses an AES key for a Key Vault: only Managed HSM
// imports oct-HSM keys.
func notManagedHSM(vault, what string) error {
	return invalid("%s is a Key Vault, which does not import AES (oct-HSM) keys: only Azure Key Vault Managed HSM does (%s would be refused); import it into a Managed HSM, --vault-url https://NAME.managedhsm.azure.net (with an endpoint of your own that is one, add --managed-hsm)", vault, what)
}

// paramsOfKey is the Azure-importable kind of an HSM key, or why it has
// none here.
func (r *run) paramsOfKey(k *hsm.Key) (hsm.KeyParams, error) {
	switch k.KeyType {
	case pkcs11.CKK_RSA:
		if b := k.ModulusBits; b == 2048 || b == 3072 || b == 4096 {
			return hsm.RSAKey(b), nil
		}
		return hsm.KeyParams{}, fmt.Errorf("%w: HSM key %q is RSA-%d: Key Vault imports RSA-HSM 2048, 3072 and 4096 only", hsm.ErrUnsuitableKey, k.Label, k.ModulusBits)
	case pkcs11.CKK_EC:
		if k.Curve != nil {
			if _, ok := crvOf(*k.Curve); ok {
				return hsm.ECKey(*k.Curve), nil
			}
		}
		return hsm.KeyParams{}, fmt.Errorf("%w: HSM key %q is on a curve Key Vault does not import: P-256, P-384, P-521 and P-256K (secp256k1) are imported", hsm.ErrUnsuitableKey, k.Label)
	case pkcs11.CKK_AES:
		if n := int(k.ValueLen); n != 16 && n != 24 && n != 32 {
			return hsm.KeyParams{}, fmt.Errorf("%w: HSM key %q is a %d-byte AES key: Managed HSM imports AES-128, AES-192 and AES-256", hsm.ErrUnsuitableKey, k.Label, k.ValueLen)
		}
		if !r.req.ManagedHSM {
			return hsm.KeyParams{}, notManagedHSM(r.req.Vault, fmt.Sprintf("HSM key %q (AES-%d)", k.Label, k.ValueLen*8))
		}
		return hsm.AESKey(int(k.ValueLen)), nil
	}
	return hsm.KeyParams{}, fmt.Errorf("%w: HSM key %q is not an RSA or EC private key, nor an AES key: Key Vault BYOK imports RSA and EC, Managed HSM also AES", hsm.ErrUnsuitableKey, k.Label)
}

// spkiOf is the SubjectPublicKeyInfo of a vault's RSA or EC key, built as
// hsm.Token.PublicKeyDER builds the HSM's, so the two compare byte for byte.
func spkiOf(k *azkeys.JSONWebKey) ([]byte, error) {
	if k == nil || k.Kty == nil {
		return nil, errors.New("the key has no JSON Web Key")
	}
	switch *k.Kty {
	case azkeys.KeyTypeRSA, azkeys.KeyTypeRSAHSM:
		if len(k.E) == 0 || len(k.E) > 4 {
			return nil, errors.New("the RSA key has no usable exponent")
		}
		return x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())})
	case azkeys.KeyTypeEC, azkeys.KeyTypeECHSM:
		c, ok := curveOfCrv(k.Crv)
		if !ok {
			return nil, fmt.Errorf("the EC key's curve %v is not P-256, P-384, P-521 or P-256K", deref(k.Crv))
		}
		if len(k.X) > c.Bytes || len(k.Y) > c.Bytes {
			return nil, fmt.Errorf("the EC key's coordinates are longer than %s's", c.Name)
		}
		point := make([]byte, 1+2*c.Bytes)
		point[0] = 4
		copy(point[1+c.Bytes-len(k.X):1+c.Bytes], k.X)
		copy(point[1+2*c.Bytes-len(k.Y):], k.Y)
		return hsm.ECPublicKeyDER(c, point)
	}
	return nil, fmt.Errorf("key type %s has no public key to compare", *k.Kty)
}

func deref[T any](p *T) any {
	if p == nil {
		return "(none)"
	}
	return *p
}
