package azkvemu

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// TestManagedHSMCBCPadAsRecorded replays the shape of the recorded
// Managed HSM exchange (TestEncryptDecryptSymmetric.json: A256CBCPAD, the
// caller's IV "0123456789ABCDEF", "plaintext" to one 16-byte block, alg
// and iv echoed) and checks the emulator computes real AES-CBC-PAD, for
// every key size, with a key the test knows.
func TestManagedHSMCBCPadAsRecorded(t *testing.T) {
	_, c := start(t, ManagedHSM)
	kek := createKEK(t, c, 2048)
	ctx := context.Background()
	iv := []byte("0123456789ABCDEF")
	for _, n := range []int{16, 24, 32} {
		key := make([]byte, n)
		rand.Read(key)
		name := "aes" + string(rune('0'+n/8))
		if _, err := importBYOK(c, name, azkeys.KeyTypeOctHSM, nil, byokFor(t, kek, key)); err != nil {
			t.Fatal(err)
		}
		alg := map[int]azkeys.EncryptionAlgorithm{16: azkeys.EncryptionAlgorithmA128CBCPAD, 24: azkeys.EncryptionAlgorithmA192CBCPAD, 32: azkeys.EncryptionAlgorithmA256CBCPAD}[n]
		enc, err := c.Encrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: []byte("plaintext"), IV: iv}, nil)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := aes.NewCipher(key)
		want := make([]byte, 16)
		cipher.NewCBCEncrypter(blk, iv).CryptBlocks(want, append([]byte("plaintext"), bytes.Repeat([]byte{7}, 7)...))
		if !bytes.Equal(enc.Result, want) || !bytes.Equal(enc.IV, iv) {
			t.Errorf("%s: %x (iv %x), want %x", alg, enc.Result, enc.IV, want)
		}
		dec, err := c.Decrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: enc.Result, IV: iv}, nil)
		if err != nil || string(dec.Result) != "plaintext" {
			t.Errorf("%s decrypt: %q %v", alg, dec.Result, err)
		}
		// The algorithm's size must be the key's; CBC needs the IV.
		wrong := azkeys.EncryptionAlgorithmA256CBCPAD
		if n == 32 {
			wrong = azkeys.EncryptionAlgorithmA128CBCPAD
		}
		if _, err := c.Encrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(wrong), Value: []byte("x"), IV: iv}, nil); err == nil {
			t.Errorf("%d-byte key encrypted with %s", n, wrong)
		}
		if _, err := c.Encrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: []byte("x")}, nil); err == nil {
			t.Errorf("%s without an IV", alg)
		}
	}
}

// secp256k1PKCS8 is a PKCS#8 secp256k1 key, as a token wraps it.
func secp256k1PKCS8(t *testing.T, priv *secp256k1.PrivateKey, embedPub []byte) []byte {
	t.Helper()
	inner, err := asn1.Marshal(ecPrivateKey{Version: 1, PrivateKey: priv.Serialize(), PublicKey: asn1.BitString{Bytes: embedPub, BitLength: 8 * len(embedPub)}})
	if err != nil {
		t.Fatal(err)
	}
	params, _ := asn1.Marshal(oidSecp256k1)
	der, err := asn1.Marshal(pkcs8{Algo: pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: params}}, PrivateKey: inner})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestImportP521AndP256K(t *testing.T) {
	_, c := start(t, KeyVault)
	kek := createKEK(t, c, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p8, _ := x509.MarshalPKCS8PrivateKey(ek)
	r, err := importBYOK(c, "p521", azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP521), byokFor(t, kek, p8))
	if err != nil || new(big.Int).SetBytes(r.Key.X).Cmp(ek.X) != 0 || len(r.Key.X) != 66 {
		t.Fatalf("P-521: %v", err)
	}
	k, _ := secp256k1.GeneratePrivateKey()
	pub := k.PubKey().SerializeUncompressed()
	r, err = importBYOK(c, "k1", azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP256K), byokFor(t, kek, secp256k1PKCS8(t, k, pub)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Key.X, pub[1:33]) || !bytes.Equal(r.Key.Y, pub[33:]) || *r.Key.Crv != azkeys.CurveNameP256K {
		t.Errorf("P-256K public key %x %x, want %x", r.Key.X, r.Key.Y, pub)
	}
	// A wrong embedded public key, trailing bytes, or P-256K material
	// named P-256 are refused.
	other, _ := secp256k1.GeneratePrivateKey()
	for name, m := range map[string][]byte{
		"embedded": secp256k1PKCS8(t, k, other.PubKey().SerializeUncompressed()),
		"trailing": append(secp256k1PKCS8(t, k, pub), 0),
	} {
		if _, err := importBYOK(c, "bad-"+name, azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP256K), byokFor(t, kek, m)); err == nil {
			t.Errorf("%s: imported", name)
		}
	}
	if _, err := importBYOK(c, "bad-crv", azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP256), byokFor(t, kek, secp256k1PKCS8(t, k, pub))); err == nil {
		t.Error("P-256K material imported as P-256")
	}
}
