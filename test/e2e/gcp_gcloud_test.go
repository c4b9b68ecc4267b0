package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gcloudCLI runs Google's own command-line client against the emulator's
// REST front end, in a configuration directory of its own, with credentials
// off: the emulator does not authenticate, as its docs say.
type gcloudCLI struct {
	t   *testing.T
	env []string
}

func newGcloud(t *testing.T, rest string) *gcloudCLI {
	t.Helper()
	if _, err := exec.LookPath("gcloud"); err != nil {
		t.Skip("gcloud is not on PATH: Google's CLI is not a Debian package (it comes from Google's own apt repository, package google-cloud-cli), so scripts/install-deps.sh cannot install it; the emulator's REST front end is still tested with Google's recorded gcloud traffic (gcpemu TestRESTReplaysRecordedTraffic)")
	}
	// Properties as environment variables (CLOUDSDK_SECTION_PROPERTY), so
	// no `gcloud config set` runs: each gcloud start costs about a
	// CPU-second.
	return &gcloudCLI{t: t, env: append(os.Environ(),
		"CLOUDSDK_CONFIG="+t.TempDir(),
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS="+rest+"/",
		"CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true",
		"CLOUDSDK_CORE_PROJECT="+gcpProject,
		"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=true",
		"CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true",
	)}
}

// run runs gcloud and returns its stdout; a failure fails the test.
func (g *gcloudCLI) run(args ...string) string {
	g.t.Helper()
	out, errOut, err := g.try(args...)
	if err != nil {
		g.t.Fatalf("gcloud %s: %v\n%s\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (g *gcloudCLI) try(args ...string) (string, string, error) {
	cmd := exec.Command("gcloud", append([]string{"--quiet"}, args...)...)
	cmd.Env = g.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// kms runs a `gcloud kms` command in the test's location.
func (g *gcloudCLI) kms(args ...string) string {
	g.t.Helper()
	return strings.TrimSpace(g.run(append(append([]string{"kms"}, args...), "--location", gcpLocation)...))
}

// TestGcloudImportsIntoTheEmulator: Google's own CLI, an implementation
// that shares nothing with the emulator or kmsbridge, performs Cloud KMS's
// whole import flow against the emulator's REST front end: it creates the
// ring, an HSM import job and an import-only key, wraps a test key with the
// job's public key in its own code (RSA-OAEP + AES key wrap with padding),
// and imports it. The emulator must unwrap what gcloud wrapped, serve the
// version ENABLED, encrypt and decrypt with it, hand back the public key of
// an imported EC key equal to the one the test made (PKCS#8 DER, as
// Google's import reference asks), and answer gcloud's errors in the words
// gcloud prints.
func TestGcloudImportsIntoTheEmulator(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t, "--rest-listen", "127.0.0.1:0")
	g := newGcloud(t, emu.REST)
	dir := t.TempDir()

	g.kms("keyrings", "create", "gring")
	g.kms("import-jobs", "create", "job", "--keyring", "gring", "--import-method", "rsa-oaep-3072-sha256-aes-256", "--protection-level", "hsm")
	if got := g.kms("import-jobs", "describe", "job", "--keyring", "gring", "--format", "value(state,importMethod,protectionLevel,attestation.format)"); got != "ACTIVE\tRSA_OAEP_3072_SHA256_AES_256\tHSM\tCAVIUM_V2_COMPRESSED" {
		t.Fatalf("import job as gcloud sees it: %q", got)
	}

	t.Run("symmetric key: import, encrypt, decrypt, destroy", func(t *testing.T) {
		g.kms("keys", "create", "sym", "--keyring", "gring", "--purpose", "encryption", "--protection-level", "hsm", "--import-only", "--skip-initial-version-creation")
		material := filepath.Join(dir, "aes256.bin") // a throwaway test key, never an HSM's
		writeRandom(t, material, 32)
		g.kms("keys", "versions", "import", "--keyring", "gring", "--key", "sym", "--import-job", "job", "--algorithm", "google-symmetric-encryption", "--target-key-file", material)
		if got := g.kms("keys", "versions", "describe", "1", "--keyring", "gring", "--key", "sym", "--format", "value(state,algorithm,importJob.basename())"); got != "ENABLED\tGOOGLE_SYMMETRIC_ENCRYPTION\tjob" {
			t.Fatalf("imported version as gcloud sees it: %q", got)
		}
		pt, ct := filepath.Join(dir, "pt"), filepath.Join(dir, "ct")
		if err := os.WriteFile(pt, []byte("round trip through gcloud\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		g.kms("encrypt", "--keyring", "gring", "--key", "sym", "--plaintext-file", pt, "--ciphertext-file", ct)
		if got := g.kms("decrypt", "--keyring", "gring", "--key", "sym", "--ciphertext-file", ct, "--plaintext-file", "-"); got != "round trip through gcloud" {
			t.Errorf("decrypt gave %q", got)
		}
		if got := g.kms("keys", "versions", "destroy", "1", "--keyring", "gring", "--key", "sym", "--format", "value(state)"); got != "DESTROY_SCHEDULED" {
			t.Errorf("destroy: %q", got)
		}
	})

	t.Run("EC P-256 key: the public key back equals the one imported", func(t *testing.T) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		material := filepath.Join(dir, "p256.pk8")
		if err := os.WriteFile(material, der, 0o600); err != nil {
			t.Fatal(err)
		}
		g.kms("keys", "create", "ec", "--keyring", "gring", "--purpose", "asymmetric-signing", "--default-algorithm", "ec-sign-p256-sha256", "--protection-level", "hsm", "--import-only", "--skip-initial-version-creation")
		g.kms("keys", "versions", "import", "--keyring", "gring", "--key", "ec", "--import-job", "job", "--algorithm", "ec-sign-p256-sha256", "--target-key-file", material)
		pubFile := filepath.Join(dir, "ec.pub.pem")
		g.kms("keys", "versions", "get-public-key", "1", "--keyring", "gring", "--key", "ec", "--output-file", pubFile)
		raw, err := os.ReadFile(pubFile)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(raw)
		want, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if block == nil || !bytes.Equal(block.Bytes, want) {
			t.Errorf("public key from gcloud is not the imported key's:\n%s", raw)
		}
	})

	t.Run("errors as gcloud prints them", func(t *testing.T) {
		_, errOut, err := g.try("kms", "keyrings", "describe", "absent", "--location", gcpLocation)
		if err == nil || !strings.Contains(errOut, "NOT_FOUND: KeyRing projects/"+gcpProject+"/locations/"+gcpLocation+"/keyRings/absent not found.") {
			t.Errorf("missing ring: err %v\n%s", err, errOut)
		}
		_, errOut, err = g.try("kms", "keyrings", "create", "gring", "--location", gcpLocation)
		if err == nil || !strings.Contains(errOut, "ALREADY_EXISTS") {
			t.Errorf("second ring of one name: err %v\n%s", err, errOut)
		}
	})
}

// TestGcloudReadsWhatKmsbridgeImported: kmsbridge imports an HSM key through
// Google's gRPC client; gcloud, over REST, then sees the import-only key,
// its enabled version made from kmsbridge's import job, and can encrypt and
// decrypt with it.
func TestGcloudReadsWhatKmsbridgeImported(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t, "--rest-listen", "127.0.0.1:0")
	g := newGcloud(t, emu.REST)
	tok := newToken(t)
	res := gcpImportJSON(t, tok, emu.args(tok.Label, t.TempDir(), "bridged", "--key-label", "bridged", "--generate")...)
	version := res.CryptoKeyVersion[strings.LastIndex(res.CryptoKeyVersion, "/")+1:]
	if got := g.kms("keys", "describe", "bridged", "--keyring", "ring", "--format", "value(importOnly,purpose,labels.kmsbridge-hsm-key-id)"); got != "True\tENCRYPT_DECRYPT\t"+res.HSM.KeyID {
		t.Errorf("key as gcloud sees it: %q (HSM key id %s)", got, res.HSM.KeyID)
	}
	if got := g.kms("keys", "versions", "describe", version, "--keyring", "ring", "--key", "bridged", "--format", "value(state,protectionLevel)"); got != "ENABLED\tHSM" {
		t.Errorf("version as gcloud sees it: %q", got)
	}
	dir := t.TempDir()
	pt, ct := filepath.Join(dir, "pt"), filepath.Join(dir, "ct")
	if err := os.WriteFile(pt, []byte("sealed by the HSM's key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g.kms("encrypt", "--keyring", "ring", "--key", "bridged", "--plaintext-file", pt, "--ciphertext-file", ct)
	if got := g.kms("decrypt", "--keyring", "ring", "--key", "bridged", "--ciphertext-file", ct, "--plaintext-file", "-"); got != "sealed by the HSM's key" {
		t.Errorf("decrypt gave %q", got)
	}
}

func writeRandom(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
