package azure

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/emukeys/emukeystest"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

type cred struct{}

func (cred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: azkvemu.Token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestMain(m *testing.M) { emukeystest.Main(m) }

func setup(t *testing.T) (*azkvemu.Server, *azkeys.Client, *hsm.Token) {
	t.Helper()
	return setupAs(t, azkvemu.KeyVault)
}

func setupAs(t *testing.T, flavor azkvemu.Flavor) (*azkvemu.Server, *azkeys.Client, *hsm.Token) {
	t.Helper()
	s := azkvemu.New(flavor)
	s.LenientPKCS8Padding = true       // SoftHSM2 2.6.1 (docs/azure-emulator.md)
	s.TestKeys = emukeystest.Source(t) // the RSA-4096 KEK generated once per run, not per test
	if err := s.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
	kv, err := azkeys.NewClient(s.URL(), cred{}, &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc}, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	st := softhsm.NewTestToken(t, "azure")
	t.Setenv(softhsm.ConfEnv, st.Conf)
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: st.Module})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	tok, err := m.OpenToken(hsm.TokenSelector{Label: st.Label})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	if err := tok.Login(st.PIN); err != nil {
		t.Fatal(err)
	}
	return s, kv, tok
}

// tamper answers GetKey of the KEK with a changed bundle, as an endpoint
// or a path in between could.
type tamper struct {
	API
	kek  string
	edit func(*azkeys.KeyBundle)
}

func (a tamper) GetKey(ctx context.Context, name, version string, o *azkeys.GetKeyOptions) (azkeys.GetKeyResponse, error) {
	r, err := a.API.GetKey(ctx, name, version, o)
	if err == nil && name == a.kek {
		a.edit(&r.KeyBundle)
	}
	return r, err
}

func TestForeignOrTamperedKEKIsRefusedBeforeAnyChange(t *testing.T) {
	s, kv, tok := setup(t)
	if _, err := kv.CreateKey(context.Background(), "kek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr[int32](2048),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)}}, nil); err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	edits := map[string]func(*azkeys.KeyBundle){
		"kid of another vault": func(b *azkeys.KeyBundle) {
			*b.Key.KID = azkeys.ID(strings.Replace(string(*b.Key.KID), s.URL(), "https://attacker.vault.azure.net", 1))
		},
		"kid of another key": func(b *azkeys.KeyBundle) {
			*b.Key.KID = azkeys.ID(strings.Replace(string(*b.Key.KID), "/keys/kek/", "/keys/other/", 1))
		},
		"ops widened": func(b *azkeys.KeyBundle) {
			b.Key.KeyOps = append(b.Key.KeyOps, to.Ptr(azkeys.KeyOperationDecrypt))
		},
		"weak modulus":  func(b *azkeys.KeyBundle) { b.Key.N = other.N.Bytes() },
		"even exponent": func(b *azkeys.KeyBundle) { b.Key.E = []byte{2} },
		"expired": func(b *azkeys.KeyBundle) {
			b.Attributes.Expires = to.Ptr(time.Now().Add(-time.Hour))
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			label := "k-" + strings.ReplaceAll(name, " ", "-")
			im := &Importer{KV: tamper{API: kv, kek: "kek", edit: edit}, Token: tok}
			_, err := im.Run(context.Background(), Request{Vault: s.URL(), KeyName: "target", KEKName: "kek", KeyLabel: label, Generate: true, KeyType: "EC-P256"})
			var se *kmsimport.StepError
			if !errors.As(err, &se) || se.Step != StepCheck || !errors.Is(err, kmsimport.ErrInvalidInput) || len(se.State) != 0 {
				t.Fatalf("err %v, want an invalid-input refusal at %s with nothing changed", err, StepCheck)
			}
			if in, _ := tok.LabelInUse(label); in {
				t.Error("the HSM key was generated before the refusal")
			}
		})
	}
	if s.Calls("import") != 0 || s.Calls("create") != 1 {
		t.Errorf("%d imports, %d creates", s.Calls("import"), s.Calls("create"))
	}
}

// A vault key whose tags claim this HSM key but whose public key is not
// the HSM's is never adopted.
func TestKeyTaggedOursButOtherMaterialIsRefused(t *testing.T) {
	s, kv, tok := setup(t)
	k, err := tok.GenerateAfterSearch("mine", hsm.ECKey(hsm.P256), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.CreateKey(context.Background(), "target", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(azkeys.CurveNameP256),
		Tags: map[string]*string{TagHSMKeyID: to.Ptr(k.IDHex()), TagTokenSerial: to.Ptr(tok.Identity().Serial)}}, nil); err != nil {
		t.Fatal(err)
	}
	im := &Importer{KV: kv, Token: tok}
	_, err = im.Run(context.Background(), Request{Vault: s.URL(), KeyName: "target", KeyLabel: "mine"})
	if !errors.Is(err, kmsimport.ErrVerification) || !strings.Contains(err.Error(), "is not the HSM key's") {
		t.Fatalf("err %v", err)
	}
	if s.Calls("import") != 0 || s.Versions(DefaultKEKName) != 0 {
		t.Error("something was changed")
	}
}
