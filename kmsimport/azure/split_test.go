package azure

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

var testKEK, _ = rsa.GenerateKey(rand.Reader, 2048)

// azureBundle is a well-formed Azure bundle.
func azureBundle() kmsimport.Bundle {
	der, _ := x509.MarshalPKIXPublicKey(&testKEK.PublicKey)
	kid := []byte("https://contoso.vault.azure.net/keys/kmsbridge-kek/0123abcd")
	return kmsimport.Bundle{Format: kmsimport.BundleFormat, Cloud: kmsimport.CloudAzure,
		KeyId: "https://contoso.vault.azure.net/keys/signer", KeySpec: "RSA-3072", WrappingAlgorithm: "CKM_RSA_AES_KEY_WRAP", WrappingKeySpec: "RSA_2048",
		PublicKey: der, PublicKeySha256: kmsimport.Fingerprint(der), ImportToken: kid, ImportTokenSha256: kmsimport.Fingerprint(kid),
		ParametersValidTo: time.Now().Add(time.Hour), PreparedAt: time.Now(),
		KmsEndpoint: &kmsimport.Endpoint{URL: "https://contoso.vault.azure.net", AllowedAs: "azure"},
		Azure:       &kmsimport.AzureSplit{Vault: "https://contoso.vault.azure.net", KeyName: "signer", KEKName: "kmsbridge-kek"}}
}

func TestReadBundleChecksTheAzureSection(t *testing.T) {
	read := func(b kmsimport.Bundle) error {
		raw, _ := json.Marshal(b)
		p := filepath.Join(t.TempDir(), "b.json")
		os.WriteFile(p, raw, 0o600)
		_, _, err := kmsimport.ReadBundle(p, time.Now())
		return err
	}
	if err := read(azureBundle()); err != nil {
		t.Fatalf("a well-formed Azure bundle is refused: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*kmsimport.Bundle)
		want string
	}{
		{"kek of another vault", func(b *kmsimport.Bundle) {
			b.ImportToken = []byte("https://evil.vault.azure.net/keys/kmsbridge-kek/0123abcd")
			b.ImportTokenSha256 = kmsimport.Fingerprint(b.ImportToken)
		}, "is not a version of Key Exchange Key"},
		{"target not the section's", func(b *kmsimport.Bundle) { b.KeyId = "https://contoso.vault.azure.net/keys/other" }, "KeyId"},
		{"unknown key type", func(b *kmsimport.Bundle) { b.KeySpec = "RSA-1024" }, "--azure-key-type"},
		{"another wrapping", func(b *kmsimport.Bundle) { b.WrappingAlgorithm = "RSAES_OAEP_SHA_1" }, "the one Azure BYOK takes"},
		{"google section", func(b *kmsimport.Bundle) { b.Gcp = &kmsimport.GCPBundle{} }, "Azure section and no other"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := azureBundle()
			c.edit(&b)
			if err := read(b); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	b := azureBundle()
	if err := kmsimport.CheckBundleOrigin(&b, ""); err != nil {
		t.Fatalf("Azure's own vault refused offline: %v", err)
	}
	b.Azure.Vault, b.KmsEndpoint.URL = "https://127.0.0.1:8443", "https://127.0.0.1:8443"
	if err := kmsimport.CheckBundleOrigin(&b, ""); err == nil || !strings.Contains(err.Error(), "--allow-endpoint https://127.0.0.1:8443") {
		t.Fatalf("a vault that is not Azure's without the opt-in: %v", err)
	}
	if err := kmsimport.CheckBundleOrigin(&b, "https://127.0.0.1:8443"); err != nil {
		t.Fatalf("with the opt-in: %v", err)
	}
	b.KmsEndpoint.URL = "https://contoso.vault.azure.net"
	if err := kmsimport.CheckBundleOrigin(&b, ""); err == nil {
		t.Fatal("an endpoint that is not the bundle's vault was accepted")
	}
}

// A Managed HSM's bundle says so: a courier who clears ManagedHsm (and
// strips the carried attestation) would turn wrap --azure-attestation-root
// into "a Key Vault attests no keys; drop it". Azure's own Managed HSM
// hosts are Managed HSMs whatever the file says.
func TestReadBundleRefusesAManagedHSMBundleSayingItIsAKeyVault(t *testing.T) {
	const vault = "https://contoso.managedhsm.azure.net"
	b := azureBundle()
	b.KeyId, b.KmsEndpoint.URL = vault+"/keys/signer", vault
	b.ImportToken = []byte(vault + "/keys/kmsbridge-kek/0123abcd")
	b.ImportTokenSha256 = kmsimport.Fingerprint(b.ImportToken)
	b.Azure.Vault, b.Azure.ManagedHSM = vault, true
	raw, _ := json.Marshal(b)
	p := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(p, raw, 0o600)
	if _, _, err := kmsimport.ReadBundle(p, time.Now()); err != nil {
		t.Fatalf("a Managed HSM's bundle: %v", err)
	}
	b.Azure.ManagedHSM = false
	raw, _ = json.Marshal(b)
	os.WriteFile(p, raw, 0o600)
	if _, _, err := kmsimport.ReadBundle(p, time.Now()); err == nil || !strings.Contains(err.Error(), "Managed HSM") {
		t.Fatalf("a Managed HSM's bundle saying it is a Key Vault: %v", err)
	}
}
