package hsm

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"math/big"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/internal/kwp"
)

// nativeToken fakes a token that lists CKM_RSA_AES_KEY_WRAP and does it in
// software, with OAEP under useHash whatever it is asked: SoftHSM2 2.7's
// bug when useHash is SHA-1 and SHA-256 is asked.
type nativeToken struct {
	fakeP11
	useHash  func() hash.Hash
	values   map[pkcs11.ObjectHandle][]byte
	pubs     map[pkcs11.ObjectHandle]*rsa.PublicKey
	next     pkcs11.ObjectHandle
	mechUsed []uint
}

func (n *nativeToken) GetMechanismList(uint) ([]*pkcs11.Mechanism, error) {
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(CKM_RSA_AES_KEY_WRAP, nil), pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, nil)}, nil
}

func (n *nativeToken) CreateObject(_ pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	n.next++
	var mod, val []byte
	for _, a := range tmpl {
		switch a.Type {
		case pkcs11.CKA_MODULUS:
			mod = a.Value
		case pkcs11.CKA_VALUE:
			val = a.Value
		}
	}
	if mod != nil {
		n.pubs[n.next] = &rsa.PublicKey{N: new(big.Int).SetBytes(mod), E: 65537}
	}
	n.values[n.next] = val
	return n.next, nil
}

func (n *nativeToken) DestroyObject(pkcs11.SessionHandle, pkcs11.ObjectHandle) error { return nil }

func (n *nativeToken) WrapKey(_ pkcs11.SessionHandle, m []*pkcs11.Mechanism, wk, key pkcs11.ObjectHandle) ([]byte, error) {
	n.mechUsed = append(n.mechUsed, m[0].Mechanism)
	value := n.values[key]
	if value == nil {
		value = make([]byte, 32) // the real key: sensitive, its value unknown here
	}
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	oaep, err := rsa.EncryptOAEP(n.useHash(), rand.Reader, n.pubs[wk], aesKey, nil)
	if err != nil {
		return nil, err
	}
	return append(oaep, kwp.Wrap(aesKey, value)...), nil
}

func newNativeToken(h func() hash.Hash) (*nativeToken, *Token) {
	n := &nativeToken{useHash: h, values: map[pkcs11.ObjectHandle][]byte{}, pubs: map[pkcs11.ObjectHandle]*rsa.PublicKey{}}
	return n, &Token{p: n, session: 1, id: TokenIdentity{Label: "native", Manufacturer: "Example HSM"}}
}

func TestNativeRSAAESIsUsedWhenItChecksOut(t *testing.T) {
	n, tk := newNativeToken(sha256.New)
	ok, why := tk.NativeRSAAES(OAEPSHA256)
	if !ok {
		t.Fatalf("a correct native CKM_RSA_AES_KEY_WRAP was refused: %s", why)
	}
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub := &priv.PublicKey
	n.mechUsed = nil
	if _, err := tk.WrapRSAAES(&Key{Handle: 99, Label: "real"}, pub, OAEPSHA256); err != nil {
		t.Fatal(err)
	}
	if len(n.mechUsed) != 1 || n.mechUsed[0] != CKM_RSA_AES_KEY_WRAP {
		t.Errorf("wrap used mechanisms %#x, want one CKM_RSA_AES_KEY_WRAP", n.mechUsed)
	}
}

func TestNativeRSAAESThatIgnoresTheHashIsNotUsed(t *testing.T) {
	_, tk := newNativeToken(sha1.New)
	ok, why := tk.NativeRSAAES(OAEPSHA256)
	if ok {
		t.Fatal("a native wrap that uses SHA-1 when asked for SHA-256 was trusted")
	}
	if !strings.Contains(why, "not RSA-OAEP with SHA-256") || !strings.Contains(why, "composed") {
		t.Errorf("reason: %q", why)
	}
	// The same token is right for SHA-1, which it was asked for there.
	if ok, why := tk.NativeRSAAES(OAEPSHA1); !ok {
		t.Errorf("SHA-1 native wrap refused: %s", why)
	}
}
