package gcp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// googleBundle is a well-formed Google bundle (its attestation is not
// checked by ReadBundle: wrap verifies it against roots).
var testJobKey, _ = rsa.GenerateKey(rand.Reader, 3072)

func googleBundle(t *testing.T) kmsimport.Bundle {
	t.Helper()
	der, _ := x509.MarshalPKIXPublicKey(&testJobKey.PublicKey)
	job := []byte("projects/test-project/locations/us-central1/keyRings/ring/importJobs/j1")
	return kmsimport.Bundle{Format: kmsimport.BundleFormat, Cloud: kmsimport.CloudGCP,
		KeyId: "projects/test-project/locations/us-central1/keyRings/ring/cryptoKeys/k", Region: "us-central1",
		KeySpec: "GOOGLE_SYMMETRIC_ENCRYPTION", WrappingAlgorithm: "RSA_OAEP_3072_SHA1_AES_256", WrappingKeySpec: "RSA_3072",
		PublicKey: der, PublicKeySha256: kmsimport.Fingerprint(der), ImportToken: job, ImportTokenSha256: kmsimport.Fingerprint(job),
		ParametersValidTo: time.Now().Add(time.Hour), PreparedAt: time.Now(),
		KmsEndpoint: &kmsimport.Endpoint{URL: "https://" + DefaultEndpoint, AllowedAs: "google"},
		Gcp:         &kmsimport.GCPBundle{ProtectionLevel: "HSM", JobGenerateTime: time.Now(), Attestation: &kmsimport.GCPAttestation{Format: 4, Content: []byte{1}}}}
}

func writeBundle(t *testing.T, b kmsimport.Bundle) string {
	t.Helper()
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "b.json")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadBundleChecksTheGoogleSection(t *testing.T) {
	good := googleBundle(t)
	if _, _, err := kmsimport.ReadBundle(writeBundle(t, good), time.Now()); err != nil {
		t.Fatalf("a well-formed Google bundle is refused: %v", err)
	}
	for _, c := range []struct {
		name    string
		edit    func(*kmsimport.Bundle)
		want    string
		verifyE bool
	}{
		{"unknown cloud", func(b *kmsimport.Bundle) { b.Cloud = "oci" }, "not a cloud this kmsbridge knows", false},
		{"google bundle without its section", func(b *kmsimport.Bundle) { b.Gcp = nil }, "needs its Gcp section", false},
		{"aws bundle with a google section", func(b *kmsimport.Bundle) { b.Cloud = "aws" }, "AWS bundle with a Google", false},
		{"old format claiming a cloud", func(b *kmsimport.Bundle) { b.Format = "kmsbridge-import-bundle/2" }, "not a kmsbridge import bundle", false},
		{"job of another ring", func(b *kmsimport.Bundle) {
			b.ImportToken = []byte("projects/test-project/locations/us-central1/keyRings/other/importJobs/j1")
			b.ImportTokenSha256 = kmsimport.Fingerprint(b.ImportToken)
		}, "not an import job of key ring", false},
		{"method Cloud KMS does not offer", func(b *kmsimport.Bundle) { b.WrappingAlgorithm = "RSAES_OAEP_SHA_256" }, "not one Cloud KMS offers", false},
		{"spec not the method's", func(b *kmsimport.Bundle) { b.WrappingKeySpec = "RSA_4096" }, "is not the RSA-3072 key", false},
		{"region not the key's", func(b *kmsimport.Bundle) { b.Region = "europe-west1" }, "not the crypto key's location", false},
		{"hsm job without attestation", func(b *kmsimport.Bundle) { b.Gcp.Attestation = nil }, "carries no attestation", true},
		{"software job with one", func(b *kmsimport.Bundle) { b.Gcp.ProtectionLevel = "SOFTWARE" }, "SOFTWARE import job has no attestation", false},
		{"expired job", func(b *kmsimport.Bundle) { b.ParametersValidTo = time.Now().Add(-time.Minute) }, "prepare --cloud gcp again", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := googleBundle(t)
			c.edit(&b)
			_, _, err := kmsimport.ReadBundle(writeBundle(t, b), time.Now())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if want := kmsimport.ErrInvalidInput; c.verifyE {
				want = kmsimport.ErrVerification
				if !errors.Is(err, want) {
					t.Fatalf("%v is not %v", err, want)
				}
			} else if !errors.Is(err, want) {
				t.Fatalf("%v is not %v", err, want)
			}
		})
	}
}

func TestGoogleBundleEndpointOffline(t *testing.T) {
	b := googleBundle(t)
	if err := kmsimport.CheckBundleOrigin(&b, ""); err != nil {
		t.Fatalf("Google's own endpoint refused: %v", err)
	}
	b.KmsEndpoint = &kmsimport.Endpoint{URL: "http://127.0.0.1:9999", AllowedAs: "opt-in"}
	if err := kmsimport.CheckBundleOrigin(&b, ""); err == nil || !strings.Contains(err.Error(), "--allow-endpoint http://127.0.0.1:9999") {
		t.Fatalf("an emulator's bundle without the opt-in offline: %v", err)
	}
	if err := kmsimport.CheckBundleOrigin(&b, "http://127.0.0.1:9999"); err != nil {
		t.Fatalf("with the opt-in: %v", err)
	}
	b.KmsEndpoint = &kmsimport.Endpoint{URL: "https://kms.example.com:443", AllowedAs: "opt-in"}
	if err := kmsimport.CheckBundleOrigin(&b, "http://127.0.0.1:9999"); err == nil {
		t.Fatal("a bundle from another endpoint than the one confirmed")
	}
}
