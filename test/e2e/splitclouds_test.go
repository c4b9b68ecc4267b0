package e2e

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

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/byok"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// The air-gapped split for Google Cloud KMS and Azure Key Vault: prepare
// and upload online against the emulators, wrap "offline" with nothing
// but the token, the carried files and (Google) the roots.

// offlineEnv is the HSM host's environment: the token, no cloud
// credentials, no endpoint.
func offlineEnv(tok *softhsm.Token) []string {
	return []string{tok.Environ(), "KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PIN=" + tok.PIN,
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_REGION=", "GOOGLE_APPLICATION_CREDENTIALS=/nonexistent", azure.EnvAccessToken + "="}
}

// gcpPrepare runs prepare --cloud gcp against emu into a new bundle.
func gcpPrepare(t *testing.T, emu *gcpEmulator, state, cryptoKey string, extra ...string) (string, kmsimport.Bundle) {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), cryptoKey+".bundle.json")
	args := append([]string{"prepare", "--cloud", "gcp", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--gcp-project", gcpProject,
		"--gcp-location", gcpLocation, "--key-ring", "ring", "--crypto-key", cryptoKey, "--state-dir", state,
		"--import-method", "RSA_OAEP_3072_SHA1_AES_256", "--out", bundle}, extra...)
	return bundle, preparedBundle(t, bundle, args...)
}

// gcpWrap runs wrap offline on a Google bundle with emu's roots.
func gcpWrap(t *testing.T, emu *gcpEmulator, tok *softhsm.Token, bundle string, b kmsimport.Bundle, out string, extra ...string) run {
	t.Helper()
	args := append([]string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--state-dir", t.TempDir(),
		"--expect-fingerprint", b.PublicKeySha256, "--out", out,
		"--gcp-manufacturer-root", filepath.Join(emu.Roots, "manufacturer-root.pem"), "--gcp-owner-root", filepath.Join(emu.Roots, "owner-root.pem")}, extra...)
	return runBinary(t, offlineEnv(tok), args...)
}

func gcpUpload(t *testing.T, emu *gcpEmulator, state string, extra ...string) run {
	t.Helper()
	return kmsbridge(t, nil, append([]string{"upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--state-dir", state, "--output", "json"}, extra...)...)
}

func TestGCPAirGappedSplit(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tok := newToken(t)
	dir, state := t.TempDir(), t.TempDir()
	pub := filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	bundle, b := gcpPrepare(t, emu, state, "payments", "--audit-public-key", pub)
	if b.Format != kmsimport.BundleFormat || b.Cloud != "gcp" || b.Gcp == nil || b.Gcp.Attestation == nil || len(b.Gcp.Attestation.CaviumCerts) == 0 ||
		!strings.HasPrefix(string(b.ImportToken), gcpRing+"/importJobs/") || b.KmsEndpoint == nil || b.KmsEndpoint.URL != emu.URL {
		t.Fatalf("bundle %+v", b)
	}
	// The crypto key is not made before the material is ready.
	if emu.exists(t, gcpRing+"/cryptoKeys/payments") {
		t.Fatal("prepare created the crypto key")
	}
	wrapped := filepath.Join(dir, "payments.wrapped.json")
	r := gcpWrap(t, emu, tok, bundle, b, wrapped, "--key-label", "payments", "--generate", "--audit-key", "audit", "--record", filepath.Join(dir, "r.jsonl"))
	if r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	var w kmsimport.Wrapped
	readJSON(t, wrapped, &w)
	if w.Cloud != "gcp" || w.Gcp == nil || !strings.HasPrefix(w.Gcp.Attestation, "attestation verified") && !strings.HasPrefix(w.Gcp.Attestation, "verified") {
		t.Fatalf("wrapped file: cloud %q gcp %+v\n%s", w.Cloud, w.Gcp, r.Stdout)
	}
	res := gcpUpload(t, emu, state, "--wrapped", wrapped, "--bundle", bundle)
	var got gcp.Result
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &got) != nil {
		t.Fatalf("upload: exit %d\n%s\n%s", res.Code, res.Stderr, res.Stdout)
	}
	vs := emu.versions(t, gcpRing+"/cryptoKeys/payments")
	if got.VersionState != "ENABLED" || !got.Proof.EncryptDecrypt || len(vs) != 1 || got.CryptoKeyVersion != vs[0].Name || !got.Attestation.Verified {
		t.Fatalf("upload result %+v; %d versions", got, len(vs))
	}
	if !strings.Contains(res.Stdout, "signed by audit key") {
		t.Errorf("the result does not say the file was signed:\n%s", res.Stdout)
	}
	// Exactly once: the same upload again imports nothing.
	res = gcpUpload(t, emu, state, "--wrapped", wrapped, "--bundle", bundle)
	if res.Code != 0 || len(emu.versions(t, gcpRing+"/cryptoKeys/payments")) != 1 || !strings.Contains(res.Stdout, "earlier upload") {
		t.Fatalf("second upload: exit %d, %d versions\n%s\n%s", res.Code, len(emu.versions(t, gcpRing+"/cryptoKeys/payments")), res.Stderr, res.Stdout)
	}
}

// An HMAC key's proof comes from the HSM's own HMAC, carried in the
// wrapped file: Cloud KMS MacSign must equal it.
func TestGCPAirGappedSplitHMACProvenByEvidence(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tok := newToken(t)
	state := t.TempDir()
	bundle, b := gcpPrepare(t, emu, state, "mac", "--gcp-algorithm", "HMAC_SHA256")
	wrapped := filepath.Join(t.TempDir(), "mac.wrapped.json")
	if r := gcpWrap(t, emu, tok, bundle, b, wrapped, "--key-label", "mac", "--generate"); r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	res := gcpUpload(t, emu, state, "--wrapped", wrapped, "--allow-unsigned")
	var got gcp.Result
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &got) != nil || !got.Proof.MaterialConfirmed || got.Proof.Mac == "" {
		t.Fatalf("upload: exit %d %+v\n%s", res.Code, got.Proof, res.Stderr)
	}
}

// A bundle whose attestation does not prove the wrapping key is refused
// offline before the token is touched: no HSM key is generated, nothing
// is wrapped.
func TestGCPSplitBadAttestationRefusedOfflineBeforeTheWrap(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tampered := startGCPEmulator(t, "--tamper-attestation", "statement")
	other := startGCPEmulator(t, ownRoots...) // another authority's roots
	otherKey, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, _ := x509.MarshalPKIXPublicKey(&otherKey.PublicKey)
	for _, c := range []struct {
		name string
		emu  *gcpEmulator
		edit func(*kmsimport.Bundle)
		want string
	}{
		{"statement-tampered-at-the-endpoint", tampered, nil, "signature does not verify"},
		{"wrapping-key-swapped-in-the-file", emu, func(b *kmsimport.Bundle) {
			b.PublicKey, b.PublicKeySha256 = otherDER, kmsimport.Fingerprint(otherDER)
		}, "modulus is not the job's wrapping public key"},
		{"attestation-byte-flipped", emu, func(b *kmsimport.Bundle) { b.Gcp.Attestation.Content[len(b.Gcp.Attestation.Content)/2] ^= 1 }, "attestation"},
		{"attestation-removed", emu, func(b *kmsimport.Bundle) { b.Gcp.Attestation = nil }, "carries no attestation"},
		{"roots-of-another-hsm", emu, nil, "is signed by the manufacturer root given"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := newToken(t)
			bundle, b := gcpPrepare(t, c.emu, t.TempDir(), "k")
			if c.edit != nil {
				c.edit(&b)
				raw, _ := json.Marshal(b)
				bundle = filepath.Join(t.TempDir(), "edited.json")
				if err := os.WriteFile(bundle, raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e := *c.emu
			if c.name == "roots-of-another-hsm" {
				e.Roots = other.Roots
			}
			r := gcpWrap(t, &e, tok, bundle, b, filepath.Join(t.TempDir(), "w.json"), "--key-label", "never", "--generate")
			if r.Code != 5 || !strings.Contains(r.Stderr, c.want) {
				t.Fatalf("exit %d, want 5 with %q:\n%s", r.Code, c.want, r.Stderr)
			}
			if tokenHasLabel(t, tok, "never") {
				t.Fatal("an HSM key was generated before the attestation was checked")
			}
		})
	}
}

// Every bad input is refused with the taxonomy's exit code before the
// token is touched.
func TestGCPSplitBadInputs(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tok := newToken(t)
	bundle, b := gcpPrepare(t, emu, t.TempDir(), "k")
	out := filepath.Join(t.TempDir(), "w.json")
	edited := func(edit func(*kmsimport.Bundle)) string {
		c := b
		edit(&c)
		raw, _ := json.Marshal(c)
		p := filepath.Join(t.TempDir(), "b.json")
		os.WriteFile(p, raw, 0o600)
		return p
	}
	roots := []string{"--gcp-manufacturer-root", filepath.Join(emu.Roots, "manufacturer-root.pem"), "--gcp-owner-root", filepath.Join(emu.Roots, "owner-root.pem")}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"endpoint-not-opted-in-offline", append([]string{"wrap", "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--out", out, "--key-label", "x", "--generate"}, roots...),
			2, "--allow-endpoint " + emu.URL},
		{"expired-job", append([]string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", edited(func(b *kmsimport.Bundle) { b.ParametersValidTo = time.Now().Add(-time.Hour) }),
			"--expect-fingerprint", b.PublicKeySha256, "--out", out, "--key-label", "x", "--generate"}, roots...), 2, "run kmsbridge prepare --cloud gcp again"},
		{"no-roots", []string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--out", out, "--key-label", "x", "--generate"},
			2, "--gcp-manufacturer-root"},
		{"job-of-another-ring", append([]string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", edited(func(b *kmsimport.Bundle) {
			b.ImportToken = []byte("projects/test-project/locations/us-central1/keyRings/other/importJobs/j")
			b.ImportTokenSha256 = kmsimport.Fingerprint(b.ImportToken)
		}), "--expect-fingerprint", b.PublicKeySha256, "--out", out, "--key-label", "x", "--generate"}, roots...), 2, "is not an import job of key ring"},
		{"cloud-section-of-another-cloud", append([]string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", edited(func(b *kmsimport.Bundle) { b.Cloud = "azure" }),
			"--expect-fingerprint", b.PublicKeySha256, "--out", out, "--key-label", "x", "--generate"}, roots...), 2, "Azure section"},
		{"byok-out-for-a-google-bundle", append([]string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--out", out,
			"--key-label", "x", "--generate", "--byok-out", out + ".byok"}, roots...), 2, "--byok-out is for a bundle of cloud azure"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runBinary(t, offlineEnv(tok), c.args...)
			if r.Code != c.code || !strings.Contains(r.Stderr, c.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", r.Code, c.code, c.want, r.Stderr)
			}
			if tokenHasLabel(t, tok, "x") {
				t.Fatal("an HSM key was generated")
			}
		})
	}
	// An AWS bundle's flags on a Google prepare, and the reverse, are refused.
	r := kmsbridge(t, nil, "prepare", "--cloud", "gcp", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--gcp-project", gcpProject, "--gcp-location", gcpLocation,
		"--key-ring", "ring", "--crypto-key", "k2", "--key-spec", "SYMMETRIC_DEFAULT", "--out", filepath.Join(t.TempDir(), "b.json"))
	if r.Code != 2 || !strings.Contains(r.Stderr, "--key-spec is an AWS KMS flag") {
		t.Errorf("prepare --cloud gcp --key-spec: exit %d\n%s", r.Code, r.Stderr)
	}
}

// azurePrepare runs prepare --cloud azure against v.
func azurePrepare(t *testing.T, v *azureVault, keyName string, extra ...string) (string, kmsimport.Bundle) {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), keyName+".bundle.json")
	args := append(append([]string{}, v.env...), append([]string{"prepare", "--cloud", "azure", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(), "--kek-size", "2048",
		"--key-name", keyName, "--state-dir", v.state, "--out", bundle}, extra...)...)
	return bundle, preparedBundle(t, bundle, args...)
}

func azureWrap(t *testing.T, v *azureVault, tok *softhsm.Token, bundle string, b kmsimport.Bundle, out string, extra ...string) run {
	t.Helper()
	return runBinary(t, offlineEnv(tok), append([]string{"wrap", "--allow-endpoint", v.URL(), "--token-label", tok.Label, "--bundle", bundle, "--state-dir", t.TempDir(),
		"--expect-fingerprint", b.PublicKeySha256, "--out", out}, extra...)...)
}

func azureUpload(t *testing.T, v *azureVault, extra ...string) run {
	t.Helper()
	return kmsbridge(t, nil, append(append([]string{}, v.env...), append([]string{"upload", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(),
		"--state-dir", v.state, "--output", "json"}, extra...)...)...)
}

func TestAzureAirGappedSplitWritesAStandardByok(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	dir := t.TempDir()
	pub := filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	bundle, b := azurePrepare(t, v, "signer", "--azure-key-type", "RSA-2048", "--tag", "owner=payments", "--valid-to", "2030-01-01", "--audit-public-key", pub)
	if b.Cloud != "azure" || b.Azure == nil || !strings.HasPrefix(string(b.ImportToken), v.URL()+"/keys/"+azure.DefaultKEKName+"/") || b.WrappingKeySpec != "RSA_2048" {
		t.Fatalf("bundle %+v", b)
	}
	wrapped := filepath.Join(dir, "signer.wrapped.json")
	r := azureWrap(t, v, tok, bundle, b, wrapped, "--key-label", "signer", "--generate", "--audit-key", "audit", "--record", filepath.Join(dir, "r.jsonl"))
	if r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	byokPath := filepath.Join(dir, "signer.wrapped.byok")
	raw, err := os.ReadFile(byokPath)
	if err != nil {
		t.Fatalf("wrap wrote no .byok: %v\n%s", err, r.Stdout)
	}
	assertMode0600(t, byokPath)
	// The .byok is Azure's published format, member by member, and opens
	// with OpenSSL under the KEK's private key (which only the vault
	// holds) to the HSM key's public key.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || len(members) != 4 || members["schema_version"] == nil || members["header"] == nil || members["ciphertext"] == nil || members["generator"] == nil {
		t.Fatalf("the .byok members are not Azure's schema: %v %s", err, raw)
	}
	var w kmsimport.Wrapped
	readJSON(t, wrapped, &w)
	if got := opensslDecodeBYOK(t, raw, v.KEKPrivateKeyPEM(azure.DefaultKEKName), string(b.ImportToken)); got != kmsimport.Fingerprint(w.Evidence.PublicKey) {
		t.Fatalf("the .byok opens to public key %s, not the HSM key's %s", got, kmsimport.Fingerprint(w.Evidence.PublicKey))
	}
	if string(w.EncryptedKeyMaterial) != string(raw) {
		t.Fatal("the wrapped file does not carry the very .byok written beside it")
	}
	res := azureUpload(t, v, "--wrapped", wrapped, "--bundle", bundle, "--byok-file", byokPath)
	var got azure.Result
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &got) != nil {
		t.Fatalf("upload: exit %d\n%s\n%s", res.Code, res.Stderr, res.Stdout)
	}
	if !got.Proof.MaterialConfirmed || !got.Imported || got.KeyType != "RSA-HSM" || got.HSM.KeyID != w.HSMKey.KeyID {
		t.Fatalf("result %+v", got)
	}
	key, err := v.kv.GetKey(t.Context(), "signer", "", nil)
	if err != nil || *key.Tags[azure.TagHSMKeyID] != w.HSMKey.KeyID || *key.Tags["owner"] != "payments" || key.Attributes.Expires == nil || key.Attributes.Expires.Year() != 2030 {
		t.Fatalf("vault key %+v %v", key.Tags, err)
	}
	// Exactly once: the same upload again imports nothing.
	res = azureUpload(t, v, "--wrapped", wrapped, "--bundle", bundle)
	if res.Code != 0 || v.Versions("signer") != 1 || !strings.Contains(res.Stdout, "earlier upload") {
		t.Fatalf("second upload: exit %d, %d versions\n%s\n%s", res.Code, v.Versions("signer"), res.Stderr, res.Stdout)
	}
	// What wrap wrote parses with the project's .byok decoder too.
	if blob, err := byok.Parse(raw); err != nil || blob.Header.KID != string(b.ImportToken) {
		t.Fatalf("byok.Parse: %v", err)
	}
}

// A .byok swapped for another key's, beside the file or inside it, is
// refused at upload before the vault is changed.
func TestAzureSplitSwappedByokRefusedAtUpload(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	dir := t.TempDir()
	pub := filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	bundle, b := azurePrepare(t, v, "a", "--azure-key-type", "EC-P256", "--audit-public-key", pub)
	wa, wb := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	for label, out := range map[string]string{"a": wa, "b": wb} {
		if r := azureWrap(t, v, tok, bundle, b, out, "--key-label", label, "--generate", "--audit-key", "audit", "--record", filepath.Join(dir, label+".jsonl")); r.Code != 0 {
			t.Fatalf("wrap %s: exit %d\n%s", label, r.Code, r.Stderr)
		}
	}
	// The other key's .byok given beside the file.
	r := azureUpload(t, v, "--wrapped", wa, "--bundle", bundle, "--byok-file", filepath.Join(dir, "b.byok"))
	if r.Code != 5 || !strings.Contains(r.Stderr, "swapped or altered") {
		t.Fatalf("swapped --byok-file: exit %d\n%s", r.Code, r.Stderr)
	}
	// The other key's .byok moved into the signed file.
	var w, other kmsimport.Wrapped
	readJSON(t, wa, &w)
	readJSON(t, wb, &other)
	w.EncryptedKeyMaterial, w.EncryptedKeyMaterialSha256 = other.EncryptedKeyMaterial, other.EncryptedKeyMaterialSha256
	raw, _ := json.MarshalIndent(w, "", "  ")
	os.WriteFile(wa, raw, 0o600)
	r = azureUpload(t, v, "--wrapped", wa, "--bundle", bundle)
	if r.Code != 5 {
		t.Fatalf("swapped .byok inside the signed file: exit %d\n%s", r.Code, r.Stderr)
	}
	if v.Calls("import") != 0 {
		t.Fatal("the vault was asked to import")
	}
}

// An Azure bundle from a vault that is not Azure's is refused offline
// unless confirmed there too; a Google flag on it is refused.
func TestAzureSplitBadInputs(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	bundle, b := azurePrepare(t, v, "k", "--azure-key-type", "RSA-2048")
	out := filepath.Join(t.TempDir(), "w.json")
	r := runBinary(t, offlineEnv(tok), "wrap", "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256, "--out", out, "--key-label", "x", "--generate")
	if r.Code != 2 || !strings.Contains(r.Stderr, "--allow-endpoint "+v.URL()) || tokenHasLabel(t, tok, "x") {
		t.Fatalf("non-opted-in vault: exit %d\n%s", r.Code, r.Stderr)
	}
	r = azureWrap(t, v, tok, bundle, b, out, "--key-label", "x", "--generate", "--gcp-skip-attestation")
	if r.Code != 2 || !strings.Contains(r.Stderr, "is for a bundle of cloud gcp") || tokenHasLabel(t, tok, "x") {
		t.Fatalf("gcp flag on an azure bundle: exit %d\n%s", r.Code, r.Stderr)
	}
	// prepare needs the key type; an existing key is refused before any change.
	if r := kmsbridge(t, nil, append(append([]string{}, v.env...), "prepare", "--cloud", "azure", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(), "--key-name", "k2",
		"--state-dir", v.state, "--out", filepath.Join(t.TempDir(), "b.json"))...); r.Code != 2 || !strings.Contains(r.Stderr, "--azure-key-type") {
		t.Fatalf("prepare without a key type: exit %d\n%s", r.Code, r.Stderr)
	}
	if _, err := v.kv.CreateKey(t.Context(), "taken", azureRSA(), nil); err != nil {
		t.Fatal(err)
	}
	if r := kmsbridge(t, nil, append(append([]string{}, v.env...), "prepare", "--cloud", "azure", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(), "--key-name", "taken",
		"--azure-key-type", "RSA-2048", "--state-dir", v.state, "--out", filepath.Join(t.TempDir(), "b.json"))...); r.Code != 2 || !strings.Contains(r.Stderr, "already exists") {
		t.Fatalf("prepare into an existing key: exit %d\n%s", r.Code, r.Stderr)
	}
	// An Azure wrapped file given to upload with AWS expiry flags.
	if r := azureWrap(t, v, tok, bundle, b, out, "--key-label", "y", "--generate"); r.Code != 0 {
		t.Fatalf("wrap: %s", r.Stderr)
	}
	if r := azureUpload(t, v, "--wrapped", out, "--allow-unsigned", "--no-expiry"); r.Code != 2 || !strings.Contains(r.Stderr, "--no-expiry is for AWS material") {
		t.Fatalf("upload --no-expiry: exit %d\n%s", r.Code, r.Stderr)
	}
}

func azureRSA() azkeys.CreateKeyParameters {
	return azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048))}
}

// An upload whose ImportCryptoKeyVersion took effect but whose answer was
// lost is finished by running the same upload again: one version.
func TestGCPSplitLostImportAnswerFinishedByRerun(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t, "--fault", "ImportCryptoKeyVersion:lost")
	tok := newToken(t)
	state := t.TempDir()
	bundle, b := gcpPrepare(t, emu, state, "lost")
	wrapped := filepath.Join(t.TempDir(), "lost.wrapped.json")
	if r := gcpWrap(t, emu, tok, bundle, b, wrapped, "--key-label", "lost", "--generate"); r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	r := gcpUpload(t, emu, state, "--wrapped", wrapped, "--allow-unsigned")
	if r.Code != 4 || !strings.Contains(r.Stderr, "re-run the same command") {
		t.Fatalf("first upload: exit %d\n%s", r.Code, r.Stderr)
	}
	r = gcpUpload(t, emu, state, "--wrapped", wrapped, "--allow-unsigned")
	var got gcp.Result
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &got) != nil {
		t.Fatalf("second upload: exit %d\n%s", r.Code, r.Stderr)
	}
	if vs := emu.versions(t, gcpRing+"/cryptoKeys/lost"); len(vs) != 1 || got.CryptoKeyVersion != vs[0].Name || !got.Proof.EncryptDecrypt {
		t.Fatalf("%d versions, result %+v", len(vs), got)
	}
}

// The same for Azure's ImportKey: the re-run finds the key by its tags
// and proves it, importing nothing twice.
func TestAzureSplitLostImportAnswerFinishedByRerun(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	bundle, b := azurePrepare(t, v, "lost", "--azure-key-type", "EC-P384")
	wrapped := filepath.Join(t.TempDir(), "lost.json")
	if r := azureWrap(t, v, tok, bundle, b, wrapped, "--key-label", "lost", "--generate"); r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	v.SetFault("import", azkvemu.Fault{Status: 500, Times: 1, After: true})
	r := azureUpload(t, v, "--wrapped", wrapped, "--allow-unsigned")
	if r.Code != 4 {
		t.Fatalf("first upload: exit %d\n%s", r.Code, r.Stderr)
	}
	got := azureResult(t, azureUpload(t, v, "--wrapped", wrapped, "--allow-unsigned"))
	if !got.Proof.MaterialConfirmed || got.Imported || v.Versions("lost") != 1 {
		t.Fatalf("after the re-run: %d versions, result %+v", v.Versions("lost"), got)
	}
}

// A SOFTWARE job has no attestation, and a check skipped on purpose is
// carried from the wrap to the upload's result.
func TestGCPSplitSoftwareJobAndSkippedCheckAreSaid(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tok := newToken(t)
	state := t.TempDir()
	for _, c := range []struct {
		name, want string
		prepare    []string
		wrap       []string
	}{
		{"software", "none: SOFTWARE", []string{"--gcp-protection-level", "SOFTWARE"}, nil},
		{"skipped", "skipped: --gcp-skip-attestation", nil, []string{"--gcp-skip-attestation"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bundle, b := gcpPrepare(t, emu, state, c.name, c.prepare...)
			wrapped := filepath.Join(t.TempDir(), "w.json")
			args := append([]string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--state-dir", t.TempDir(),
				"--expect-fingerprint", b.PublicKeySha256, "--out", wrapped, "--key-label", c.name, "--generate"}, c.wrap...)
			if r := runBinary(t, offlineEnv(tok), args...); r.Code != 0 || !strings.Contains(r.Stdout, c.want) {
				t.Fatalf("wrap: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			r := gcpUpload(t, emu, state, "--wrapped", wrapped, "--allow-unsigned")
			var got gcp.Result
			if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &got) != nil || got.Attestation.Verified || !strings.Contains(got.Attestation.Status, c.want) {
				t.Fatalf("upload: exit %d, attestation %+v\n%s", r.Code, got.Attestation, r.Stderr)
			}
		})
	}
}

// A second prepare of the same crypto key and method takes up the import
// job the first made, while it is usable, instead of creating another.
func TestGCPSplitPrepareReusesItsImportJob(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	state := t.TempDir()
	_, first := gcpPrepare(t, emu, state, "again")
	_, second := gcpPrepare(t, emu, state, "again")
	if string(first.ImportToken) != string(second.ImportToken) || first.PublicKeySha256 != second.PublicKeySha256 {
		t.Fatalf("a second import job: %s then %s", first.ImportToken, second.ImportToken)
	}
}
