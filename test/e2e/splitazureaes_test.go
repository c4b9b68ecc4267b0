package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/byok"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// An AES key goes into a Managed HSM through the air-gapped split: prepare
// (online) says the vault is a Managed HSM, wrap (offline) writes a
// standard .byok and the token's CKM_AES_CBC_PAD of a random message, and
// upload imports the .byok as oct-HSM and proves it with the Managed HSM's
// A256CBCPAD of the same message, and a decryption, at upload.
func TestAzureAirGappedSplitAESIntoManagedHSM(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.ManagedHSM, false)
	dir := t.TempDir()
	bundle, b := azurePrepare(t, v, "data", "--managed-hsm", "--azure-key-type", "AES-256", "--tag", "owner=data", "--valid-to", "2031-01-01")
	if b.KeySpec != "AES-256" || b.Azure == nil || !b.Azure.ManagedHSM {
		t.Fatalf("bundle %+v %+v", b, b.Azure)
	}
	wrapped := filepath.Join(dir, "data.json")
	if r := azureWrap(t, v, tok, bundle, b, wrapped, "--key-label", "data", "--generate"); r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	var w kmsimport.Wrapped
	readJSON(t, wrapped, &w)
	ev := w.Evidence
	if len(ev.PublicKey) != 0 || len(ev.CipherIV) != 16 || len(ev.CipherMessage) != 32 || len(ev.Ciphertext) != 48 || !w.Azure.ManagedHSM {
		t.Fatalf("the wrapped file's evidence of an AES key: %+v", ev)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "data.byok"))
	if err != nil || string(raw) != string(w.EncryptedKeyMaterial) {
		t.Fatalf("the .byok beside the wrapped file: %v", err)
	}
	if blob, err := byok.Parse(raw); err != nil || blob.Header.KID != string(b.ImportToken) {
		t.Fatalf("byok.Parse: %v", err)
	}
	res := azureUpload(t, v, "--wrapped", wrapped, "--allow-unsigned", "--byok-file", filepath.Join(dir, "data.byok"))
	var got azure.Result
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &got) != nil {
		t.Fatalf("upload: exit %d\n%s\n%s", res.Code, res.Stderr, res.Stdout)
	}
	if !got.Imported || !got.ManagedHSM || got.KeyType != "oct-HSM" || !got.Proof.MaterialConfirmed || got.Proof.Method != azure.ProofEncrypt ||
		got.Proof.Algorithm != "A256CBCPAD" || !strings.Contains(got.Proof.Summary, "CKM_AES_CBC_PAD") || got.HSM.KeyID != w.HSMKey.KeyID {
		t.Fatalf("upload result %+v", got)
	}
	key, err := v.kv.GetKey(t.Context(), "data", "", nil)
	if err != nil || *key.Key.Kty != azkeys.KeyTypeOctHSM || *key.Tags[azure.TagHSMKeyID] != w.HSMKey.KeyID || *key.Tags["owner"] != "data" ||
		key.Attributes.Expires == nil || key.Attributes.Expires.Year() != 2031 {
		t.Fatalf("vault key %+v %v", key.KeyBundle, err)
	}
	// Exactly once: the same upload proves the key again and imports nothing.
	res = azureUpload(t, v, "--wrapped", wrapped, "--allow-unsigned")
	if res.Code != 0 || v.Versions("data") != 1 || v.Calls("import") != 1 || !strings.Contains(res.Stdout, "earlier upload") || !strings.Contains(res.Stdout, "A256CBCPAD") {
		t.Fatalf("second upload: exit %d, %d versions\n%s\n%s", res.Code, v.Versions("data"), res.Stderr, res.Stdout)
	}
}

// The proof at upload is the token's: evidence altered in the wrapped
// file fails it, and an AES bundle's rules hold at prepare and offline.
func TestAzureSplitAESBadInputs(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.ManagedHSM, false)
	dir := t.TempDir()
	bundle, b := azurePrepare(t, v, "k", "--managed-hsm", "--azure-key-type", "AES-128")
	wrapped := filepath.Join(dir, "k.json")
	if r := azureWrap(t, v, tok, bundle, b, wrapped, "--key-label", "k", "--generate"); r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	var w kmsimport.Wrapped
	readJSON(t, wrapped, &w)
	w.Evidence.Ciphertext[0] ^= 1
	out, _ := json.MarshalIndent(w, "", "  ")
	if err := os.WriteFile(wrapped, out, 0o600); err != nil {
		t.Fatal(err)
	}
	r := azureUpload(t, v, "--wrapped", wrapped, "--allow-unsigned")
	if r.Code != 5 || !strings.Contains(r.Stdout+r.Stderr, "not the HSM's AES key") {
		t.Fatalf("altered evidence: exit %d\n%s\n%s", r.Code, r.Stderr, r.Stdout)
	}
	// No evidence at all: refused before the vault is changed.
	w.Evidence = kmsimport.Evidence{}
	out, _ = json.MarshalIndent(w, "", "  ")
	os.WriteFile(wrapped, out, 0o600)
	before := v.Calls("import")
	if r := azureUpload(t, v, "--wrapped", wrapped, "--allow-unsigned"); r.Code != 2 || !strings.Contains(r.Stderr, "no evidence of the AES key") || v.Calls("import") != before {
		t.Fatalf("no evidence: exit %d\n%s", r.Code, r.Stderr)
	}

	prepare := func(vault *azureVault, extra ...string) run {
		return kmsbridge(t, nil, append(append([]string{}, vault.env...), append([]string{"prepare", "--cloud", "azure", "--endpoint-url", vault.URL(), "--allow-endpoint", vault.URL(),
			"--kek-size", "2048", "--key-name", "n", "--state-dir", vault.state, "--out", filepath.Join(t.TempDir(), "b.json")}, extra...)...)...)
	}
	kv := startAzureVault(t)
	for name, c := range map[string]struct {
		vault *azureVault
		args  []string
		want  string
	}{
		"AES into a Key Vault":         {kv, []string{"--azure-key-type", "AES-256"}, "does not import AES"},
		"--managed-hsm on a Key Vault": {kv, []string{"--managed-hsm", "--azure-key-type", "AES-256"}, "answers as a Key Vault"},
		"disabled AES":                 {v, []string{"--managed-hsm", "--azure-key-type", "AES-256", "--disabled"}, "could not be proved"},
		"Managed HSM not said for AES": {v, []string{"--azure-key-type", "AES-256"}, "does not import AES"},
	} {
		if r := prepare(c.vault, c.args...); r.Code != 2 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%s: exit %d\n%s", name, r.Code, r.Stderr)
		}
	}
	if kv.Versions(azure.DefaultKEKName) != 0 {
		t.Error("a refused prepare created a Key Exchange Key")
	}
	// A bundle edited to say Key Vault is refused offline, before any HSM key.
	var eb kmsimport.Bundle
	readJSON(t, bundle, &eb)
	eb.Azure.ManagedHSM = false
	edited := filepath.Join(dir, "edited.bundle.json")
	out, _ = json.MarshalIndent(eb, "", "  ")
	os.WriteFile(edited, out, 0o600)
	if r := azureWrap(t, v, tok, edited, eb, filepath.Join(dir, "e.json"), "--key-label", "e", "--generate"); r.Code != 2 || !strings.Contains(r.Stderr, "does not import AES") || tokenHasLabel(t, tok, "e") {
		t.Fatalf("bundle edited to a Key Vault: exit %d\n%s", r.Code, r.Stderr)
	}
}

// The same split with NSS softokn as the offline token: its AES key gives
// no check value, so the proof rests on its CKM_AES_CBC_PAD alone.
func TestAzureAirGappedSplitAESOnNSS(t *testing.T) {
	t.Parallel()
	nss := softhsm.NewNSSTestToken(t)
	v := startAzure(t, azkvemu.ManagedHSM, false)
	dir := t.TempDir()
	bundle, b := azurePrepare(t, v, "nss-data", "--managed-hsm", "--azure-key-type", "AES-192")
	wrapped := filepath.Join(dir, "nss.json")
	env := []string{"KMSBRIDGE_PKCS11_MODULE=" + nss.Module, "KMSBRIDGE_PKCS11_MODULE_PARAMS=" + nss.Params, "KMSBRIDGE_PIN=" + nss.PIN, azure.EnvAccessToken + "="}
	r := runBinary(t, env, "wrap", "--allow-endpoint", v.URL(), "--token-label", nss.Label, "--bundle", bundle, "--state-dir", t.TempDir(),
		"--expect-fingerprint", b.PublicKeySha256, "--out", wrapped, "--key-label", "nss-data", "--generate")
	if r.Code != 0 {
		t.Fatalf("wrap on NSS: exit %d\n%s", r.Code, r.Stderr)
	}
	res := azureUpload(t, v, "--wrapped", wrapped, "--allow-unsigned")
	var got azure.Result
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &got) != nil {
		t.Fatalf("upload: exit %d\n%s\n%s", res.Code, res.Stderr, res.Stdout)
	}
	if !got.Imported || got.KeyType != "oct-HSM" || !got.Proof.MaterialConfirmed || got.Proof.Method != azure.ProofEncrypt || got.Proof.Algorithm != "A192CBCPAD" ||
		got.HSM.Token.Model == "SoftHSM v2" {
		t.Fatalf("upload result %+v", got)
	}
}
