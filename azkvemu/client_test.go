package azkvemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/internal/kwp"
)

type fakeCred struct{ token string }

func (c fakeCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func start(t *testing.T, f Flavor) (*Server, *azkeys.Client) {
	t.Helper()
	s := New(f)
	if err := s.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, client(t, s, Token)
}

func client(t *testing.T, s *Server, token string) *azkeys.Client {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
	c, err := azkeys.NewClient(s.URL(), fakeCred{token}, &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createKEK(t *testing.T, c *azkeys.Client, bits int32) azkeys.KeyBundle {
	t.Helper()
	r, err := c.CreateKey(context.Background(), "kek", azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(bits), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.KeyBundle
}

// byokFor builds a .byok the way a BYOK tool does, for this test only.
func byokFor(t *testing.T, kek azkeys.KeyBundle, plain []byte) []byte {
	t.Helper()
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(kek.Key.N), E: int(new(big.Int).SetBytes(kek.Key.E).Int64())}
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	blk, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, aesKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	ct := append(blk, kwp.Wrap(aesKey, plain)...)
	out, _ := json.Marshal(map[string]any{"schema_version": "1.0.0",
		"header":     map[string]string{"kid": string(*kek.Key.KID), "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
		"ciphertext": b64.EncodeToString(ct), "generator": "test"})
	return out
}

func importBYOK(c *azkeys.Client, name string, kty azkeys.KeyType, crv *azkeys.CurveName, blob []byte) (azkeys.ImportKeyResponse, error) {
	return c.ImportKey(context.Background(), name, azkeys.ImportKeyParameters{
		HSM: to.Ptr(true), Key: &azkeys.JSONWebKey{Kty: to.Ptr(kty), Crv: crv, T: blob},
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}, Tags: map[string]*string{"kmsbridge-hsm-key-id": to.Ptr("01")},
	}, nil)
}

func status(t *testing.T, err error) (int, string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a service error", err)
	}
	return re.StatusCode, re.ErrorCode
}

func TestChallengeThenBearer(t *testing.T) {
	s, c := start(t, KeyVault)
	kek := createKEK(t, c, 2048)
	if got := kek.Key.KeyOps; len(got) != 1 || *got[0] != azkeys.KeyOperationImport {
		t.Errorf("KEK ops %v", got)
	}
	// A wrong token is refused after the challenge.
	_, err := client(t, s, "stolen").GetKey(context.Background(), "kek", "", nil)
	if code, _ := status(t, err); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	// An unauthenticated request gets the challenge the SDK parses.
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}).Get(s.URL() + "/keys/kek?api-version=7.4")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// As recorded: the challenge header and an empty body.
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || len(body) != 0 {
		t.Errorf("challenge: %d %q, body %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
}

// Managed HSM creates every key in the HSM: kty RSA, EC and oct come back
// RSA-HSM, EC-HSM and oct-HSM, as recorded.
func TestManagedHSMCreatesHSMKeysWhateverTheKty(t *testing.T) {
	_, c := start(t, ManagedHSM)
	for kty, want := range map[azkeys.KeyType]azkeys.KeyType{azkeys.KeyTypeRSA: azkeys.KeyTypeRSAHSM, azkeys.KeyTypeEC: azkeys.KeyTypeECHSM, azkeys.KeyTypeOct: azkeys.KeyTypeOctHSM} {
		p := azkeys.CreateKeyParameters{Kty: to.Ptr(kty)}
		switch kty {
		case azkeys.KeyTypeOct:
			p.KeySize = to.Ptr[int32](256)
		case azkeys.KeyTypeEC:
			p.Curve = to.Ptr(azkeys.CurveNameP256K)
		}
		r, err := c.CreateKey(context.Background(), "k-"+string(want), p, nil)
		if err != nil || *r.Key.Kty != want {
			t.Errorf("%s: %v %v", kty, r.Key, err)
		}
	}
}

func TestImportRSAAndECThroughAzkeys(t *testing.T) {
	_, c := start(t, KeyVault)
	kek := createKEK(t, c, 3072)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	p8, _ := x509.MarshalPKCS8PrivateKey(rk)
	r, err := importBYOK(c, "target", azkeys.KeyTypeRSAHSM, nil, byokFor(t, kek, p8))
	if err != nil {
		t.Fatal(err)
	}
	if new(big.Int).SetBytes(r.Key.N).Cmp(rk.N) != 0 || *r.Key.Kty != azkeys.KeyTypeRSAHSM || *r.Tags["kmsbridge-hsm-key-id"] != "01" {
		t.Error("imported RSA key differs")
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p8, _ = x509.MarshalPKCS8PrivateKey(ek)
	r, err = importBYOK(c, "ec", azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP384), byokFor(t, kek, p8))
	if err != nil {
		t.Fatal(err)
	}
	if new(big.Int).SetBytes(r.Key.X).Cmp(ek.X) != 0 || *r.Key.Crv != azkeys.CurveNameP384 {
		t.Error("imported EC key differs")
	}
	// The wrong curve, the wrong format, a key wrapped to another KEK.
	if _, err := importBYOK(c, "ec2", azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP256), byokFor(t, kek, p8)); err == nil {
		t.Error("P-384 material imported as P-256")
	}
	if _, err := importBYOK(c, "rsa2", azkeys.KeyTypeRSAHSM, nil, byokFor(t, kek, x509.MarshalPKCS1PrivateKey(rk))); err == nil {
		t.Error("PKCS#1 material imported")
	}
	other := createKEK(t, c, 2048)
	blob := byokFor(t, other, p8)
	var m map[string]any
	json.Unmarshal(blob, &m)
	m["header"].(map[string]any)["kid"] = *kek.Key.KID
	blob, _ = json.Marshal(m)
	if _, err := importBYOK(c, "ec3", azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP384), blob); err == nil {
		t.Error("a blob wrapped to another KEK imported")
	} else if code, ec := status(t, err); code != 400 || ec != "BadParameter" {
		t.Errorf("foreign blob: %d %s", code, ec)
	}
}

func TestKEKRules(t *testing.T) {
	_, c := start(t, KeyVault)
	_, err := c.CreateKey(context.Background(), "mixed", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport), to.Ptr(azkeys.KeyOperationDecrypt)}}, nil)
	if code, _ := status(t, err); code != 400 {
		t.Errorf("import mixed with decrypt: %d", code)
	}
	// A key with other operations cannot be the KEK of an import.
	r, err := c.CreateKey(context.Background(), "notkek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p8, _ := x509.MarshalPKCS8PrivateKey(ek)
	if _, err := importBYOK(c, "t", azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP256), byokFor(t, r.KeyBundle, p8)); err == nil {
		t.Error("imported under a non-KEK")
	}
	// oct-HSM is Managed HSM only.
	if _, err := c.CreateKey(context.Background(), "aes", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](256)}, nil); err == nil {
		t.Error("oct-HSM created in Key Vault")
	}
	_, err = c.GetKey(context.Background(), "absent", "", nil)
	if code, ec := status(t, err); code != 404 || ec != "KeyNotFound" {
		t.Errorf("absent key: %d %s", code, ec)
	}
}

func TestManagedHSMOctImportAndProof(t *testing.T) {
	_, c := start(t, ManagedHSM)
	kek := createKEK(t, c, 2048)
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	if _, err := importBYOK(c, "aes", azkeys.KeyTypeOctHSM, nil, byokFor(t, kek, aesKey)); err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(context.Background(), "aes", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256GCM), Value: []byte("proof")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(context.Background(), "aes", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256GCM),
		Value: enc.Result, IV: enc.IV, AuthenticationTag: enc.AuthenticationTag}, nil)
	if err != nil || string(dec.Result) != "proof" {
		t.Fatalf("round trip: %q %v", dec.Result, err)
	}
}

func TestFaultAfterChange(t *testing.T) {
	s, c := start(t, KeyVault)
	s.SetFault("create", Fault{Status: 500, Times: 1, After: true})
	_, err := c.CreateKey(context.Background(), "kek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)}}, nil)
	if err == nil {
		t.Fatal("fault not injected")
	}
	if s.Versions("kek") != 1 {
		t.Errorf("%d versions after a lost reply", s.Versions("kek"))
	}
}
