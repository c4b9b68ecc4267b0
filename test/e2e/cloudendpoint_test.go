package e2e

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// The one endpoint policy, end to end, for Google and Azure as
// TestFakeKMSRefusedOnEveryRoute has it for AWS: an endpoint that is not
// the cloud's own hands out the wrapping key the HSM would wrap under, so
// without --allow-endpoint naming it (or with one naming another) it is
// refused before any change: exit 2 naming the opt-in, no HSM key
// generated, nothing made at the endpoint. Confirmed, it is used, and the
// result and every record entry name it (for Azure, with the TLS peer).

func TestGoogleEndpointNotOptedInIsRefusedBeforeAnyChange(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tok := newToken(t)
	base := []string{"import", "--cloud", "gcp", "--endpoint-url", emu.URL, "--gcp-project", gcpProject, "--gcp-location", gcpLocation,
		"--key-ring", "ring", "--crypto-key", "fake", "--token-label", tok.Label, "--state-dir", t.TempDir(),
		"--gcp-manufacturer-root", filepath.Join(emu.Roots, "manufacturer-root.pem"), "--gcp-owner-root", filepath.Join(emu.Roots, "owner-root.pem"),
		"--key-label", "fake", "--generate"}
	other := strings.Replace(emu.URL, "127.0.0.1:", "127.0.0.1:1", 1)
	for name, extra := range map[string][]string{
		"no opt-in":                  nil,
		"opt-in of another endpoint": {"--allow-endpoint", other},
	} {
		r := kmsbridge(t, tok, append(base, extra...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "--allow-endpoint "+emu.URL) || !strings.Contains(r.Stderr, "Google endpoint") {
			t.Errorf("%s: exit %d, want 2 naming --allow-endpoint %s:\n%s", name, r.Code, emu.URL, r.Stderr)
		}
		if tokenHasLabel(t, tok, "fake") {
			t.Fatalf("%s: an HSM key was generated", name)
		}
		if emu.exists(t, gcpRing) {
			t.Fatalf("%s: the key ring was created at the refused endpoint", name)
		}
	}

	rec := filepath.Join(t.TempDir(), "record.jsonl")
	res := gcpImportJSON(t, tok, emu.args(tok.Label, t.TempDir(), "fake", "--key-label", "fake", "--generate", "--record", rec)...)
	if res.KMSEndpoint == nil || res.KMSEndpoint.URL != emu.URL || res.KMSEndpoint.AllowedAs != kmsimport.AllowedOptIn || res.KMSEndpoint.Cloud != "google" {
		t.Fatalf("opted-in result endpoint %+v, want %s opt-in google", res.KMSEndpoint, emu.URL)
	}
	checkRecordNamesEndpoint(t, rec, emu.URL)
}

func TestAzureEndpointNotOptedInIsRefusedBeforeAnyChange(t *testing.T) {
	t.Parallel()
	v := startAzureVault(t)
	tok := newToken(t)
	base := append(append([]string{}, v.env...), "import", "--cloud", "azure", "--endpoint-url", v.URL(), "--token-label", tok.Label, "--kek-size", "2048",
		"--state-dir", v.state, "--key-name", "fake", "--key-label", "fake", "--generate", "--azure-key-type", "EC-P256")
	other := strings.Replace(v.URL(), "127.0.0.1:", "127.0.0.1:1", 1)
	for name, extra := range map[string][]string{
		"no opt-in":                  nil,
		"opt-in of another endpoint": {"--allow-endpoint", other},
	} {
		r := kmsbridge(t, tok, append(base, extra...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "--allow-endpoint "+v.URL()) {
			t.Errorf("%s: exit %d, want 2 naming --allow-endpoint %s:\n%s", name, r.Code, v.URL(), r.Stderr)
		}
		if tokenHasLabel(t, tok, "fake") {
			t.Fatalf("%s: an HSM key was generated", name)
		}
		if n := v.Versions("fake") + v.Calls("create") + v.Calls("import") + v.Calls("get"); n != 0 {
			t.Fatalf("%s: %d keys or calls at the refused vault", name, n)
		}
	}

	rec := filepath.Join(t.TempDir(), "record.jsonl")
	res := azureResult(t, v.importAzure(t, tok, "--key-name", "fake", "--key-label", "fake", "--generate", "--azure-key-type", "EC-P256", "--record", rec))
	e := res.KMSEndpoint
	if e == nil || e.URL != v.URL() || e.AllowedAs != kmsimport.AllowedOptIn || e.Cloud != "azure" || e.TLS == nil {
		t.Fatalf("opted-in result endpoint %+v, want %s opt-in azure with its TLS peer", e, v.URL())
	}
	// The SPKI is the vault's own certificate's.
	blk, _ := pem.Decode(v.CAPEM()) // the vault's certificate is self-signed
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	if e.TLS.SPKISHA256 != hex.EncodeToString(spki[:]) {
		t.Errorf("TLS SPKI %s, want the vault certificate's %x", e.TLS.SPKISHA256, spki)
	}
	checkRecordNamesEndpoint(t, rec, v.URL())
}

// checkRecordNamesEndpoint: every entry of the record names the endpoint.
func checkRecordNamesEndpoint(t *testing.T, rec, url string) {
	t.Helper()
	body, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if !strings.Contains(line, `"KmsEndpoint":"`+url+`"`) {
			t.Errorf("record entry %d does not name the endpoint %s: %s", i+1, url, line)
		}
	}
}
