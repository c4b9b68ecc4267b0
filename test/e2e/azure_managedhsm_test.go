package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// AES keys go into a Managed HSM as oct-HSM and are proved by the same
// AES-CBC-PAD computed in the token and in the vault.
func TestAzureManagedHSMImportsAESProvedByEncryption(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.ManagedHSM, false)
	for _, kt := range []string{"AES-128", "AES-192", "AES-256"} {
		name := strings.ToLower(kt)
		res := azureResult(t, v.importAzure(t, tok, "--key-name", name, "--key-label", name, "--generate", "--azure-key-type", kt,
			"--valid-to", "2031-01-01", "--tag", "owner=data"))
		alg := "A" + strings.TrimPrefix(kt, "AES-") + "CBCPAD"
		if !res.ManagedHSM || res.KeyType != "oct-HSM" || !res.Imported || !res.Proof.MaterialConfirmed ||
			res.Proof.Method != azure.ProofEncrypt || res.Proof.Algorithm != alg || !strings.Contains(res.Proof.Summary, "CKM_AES_CBC_PAD") {
			t.Errorf("%s: %+v", kt, res)
		}
		// What was and was not checked about the KEK is said, in the
		// result and in the step the record keeps.
		if !strings.HasPrefix(res.Attestation, azure.AttestationNotVerified) || !strings.Contains(res.Attestation, "NOT verified") ||
			!strings.Contains(stepSummaries(res), "KEK attestation not verified") {
			t.Errorf("%s: attestation %q, steps %s", kt, res.Attestation, stepSummaries(res))
		}
		got, err := v.kv.GetKey(context.Background(), name, "", nil)
		if err != nil || *got.Key.Kty != azkeys.KeyTypeOctHSM || *got.Tags[azure.TagHSMKeyID] != res.HSM.KeyID || *got.Tags["owner"] != "data" || got.Attributes.Expires == nil {
			t.Errorf("%s in the vault: %+v %v", kt, got.KeyBundle, err)
		}
	}
	// A re-run takes the key up and proves it again: nothing twice.
	res := azureResult(t, v.importAzure(t, tok, "--key-name", "aes-256", "--key-label", "aes-256", "--generate", "--azure-key-type", "AES-256",
		"--valid-to", "2031-01-01", "--tag", "owner=data"))
	if res.Imported || !res.Proof.MaterialConfirmed || v.Versions("aes-256") != 1 || v.Calls("import") != 3 {
		t.Errorf("re-run: %+v, %d versions, %d imports", res, v.Versions("aes-256"), v.Calls("import"))
	}
	// On a host without the journal too: the taken label is taken up
	// because the vault key is tagged with it, and proved by encryption.
	v.state = t.TempDir()
	res = azureResult(t, v.importAzure(t, tok, "--key-name", "aes-128", "--key-label", "aes-128", "--generate", "--azure-key-type", "AES-128",
		"--valid-to", "2031-01-01", "--tag", "owner=data"))
	if res.Imported || !res.Proof.MaterialConfirmed || res.Proof.Method != azure.ProofEncrypt || v.Versions("aes-128") != 1 {
		t.Errorf("without the journal: %+v", res)
	}
	if v.Versions(azure.DefaultKEKName) != 1 {
		t.Errorf("%d KEK versions", v.Versions(azure.DefaultKEKName))
	}
}

// An AES key made for another cloud may not encrypt: SoftHSM2 gives it a
// check value, which the vault's CBC of a zero block must begin with.
func TestAzureManagedHSMExistingAESKeyProvedByCheckValue(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.ManagedHSM, false)
	var kcv string
	inToken(t, tok, func(tk *hsm.Token) {
		k, err := tk.GenerateAES256("for-aws", false)
		if err != nil {
			t.Fatal(err)
		}
		kcv = k.CheckValueHex()
	})
	res := azureResult(t, v.importAzure(t, tok, "--key-name", "from-aws", "--key-label", "for-aws"))
	if res.KeyType != "oct-HSM" || !res.Proof.MaterialConfirmed || res.Proof.Method != azure.ProofCheckValue || kcv == "" || !strings.Contains(res.Proof.Summary, kcv) {
		t.Errorf("result %+v (check value %s)", res, kcv)
	}
	if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, " "), "24-bit") {
		t.Errorf("no warning that the proof is the check value only: %v", res.Warnings)
	}
}

// Key Vault refuses AES before anything changes, whether the key is to be
// generated or exists; so does a request a Managed HSM could not prove.
func TestAzureAESRefusedBeforeAnyChange(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	kv := startAzure(t, azkvemu.KeyVault, true)
	inToken(t, tok, func(tk *hsm.Token) {
		if _, err := tk.GenerateAES256("existing-aes", false); err != nil {
			t.Fatal(err)
		}
	})
	for _, args := range [][]string{
		{"--key-name", "gen", "--key-label", "new-aes", "--generate", "--azure-key-type", "AES-256"},
		{"--key-name", "old", "--key-label", "existing-aes"},
	} {
		r := kv.importAzure(t, tok, args...)
		if r.Code != 2 || !strings.Contains(r.Stdout+r.Stderr, "does not import AES (oct-HSM) keys") || !strings.Contains(r.Stdout+r.Stderr, "managedhsm.azure.net") {
			t.Errorf("%v into Key Vault: exit %d\n%s%s", args, r.Code, r.Stderr, r.Stdout)
		}
	}
	mh := startAzure(t, azkvemu.ManagedHSM, false)
	r := mh.importAzure(t, tok, "--key-name", "off", "--key-label", "off-aes", "--generate", "--azure-key-type", "AES-256", "--disabled")
	if r.Code != 2 || !strings.Contains(r.Stdout+r.Stderr, "could not be proved") {
		t.Errorf("disabled AES: exit %d\n%s%s", r.Code, r.Stderr, r.Stdout)
	}
	// --managed-hsm is for an endpoint of one's own.
	r = kmsbridge(t, tok, append(append([]string{}, mh.env...), "import", "--cloud", "azure", "--vault-url", "https://contoso.vault.azure.net",
		"--managed-hsm", "--key-name", "x", "--key-label", "x", "--token-label", tok.Label)...)
	if r.Code != 2 || !strings.Contains(r.Stderr, "--managed-hsm is for an --endpoint-url") {
		t.Errorf("--managed-hsm with an Azure URL: exit %d\n%s", r.Code, r.Stderr)
	}
	// A Key Vault endpoint said to be a Managed HSM: its own challenge
	// gives it away, before anything is made.
	kv.flags = []string{"--managed-hsm"}
	r = kv.importAzure(t, tok, "--key-name", "liar", "--key-label", "liar-aes", "--generate", "--azure-key-type", "AES-256")
	kv.flags = nil
	if r.Code != 2 || !strings.Contains(r.Stdout+r.Stderr, "answers as a Key Vault") || !strings.Contains(r.Stdout, "Nothing was changed") {
		t.Errorf("Key Vault as Managed HSM: exit %d\n%s%s", r.Code, r.Stderr, r.Stdout)
	}
	for _, l := range []string{"new-aes", "off-aes", "liar-aes"} {
		if tokenHasLabel(t, tok, l) {
			t.Errorf("HSM key %q was generated before the refusal", l)
		}
	}
	for _, n := range []string{"gen", "old"} {
		if kv.Versions(n) != 0 {
			t.Errorf("key %s was imported", n)
		}
	}
	if kv.Versions(azure.DefaultKEKName) != 0 || mh.Versions(azure.DefaultKEKName) != 0 || mh.Versions("off") != 0 || kv.Versions("liar") != 0 {
		t.Error("a KEK or key was created before a refusal")
	}
}

// P-521 and secp256k1 (Azure's P-256K), on SoftHSM2 and NSS softokn;
// NSS generates no secp256k1 key: refused naming the token, exit 3 (an HSM
// failure), before any change.
func TestAzureImportP521AndP256K(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.KeyVault, true)
	for _, kt := range []string{"EC-P521", "EC-P256K"} {
		name := strings.ToLower(kt)
		res := azureResult(t, v.importAzure(t, tok, "--key-name", name, "--key-label", name, "--generate", "--azure-key-type", kt))
		if res.KeyType != "EC-HSM" || !res.Proof.MaterialConfirmed || res.Proof.Method != azure.ProofPublicKey {
			t.Errorf("%s: %+v", kt, res)
		}
		got, err := v.kv.GetKey(context.Background(), name, "", nil)
		want := map[string]azkeys.CurveName{"EC-P521": azkeys.CurveNameP521, "EC-P256K": azkeys.CurveNameP256K}[kt]
		if err != nil || got.Key.Crv == nil || *got.Key.Crv != want {
			t.Errorf("%s in the vault: %+v %v", kt, got.Key, err)
		}
	}
	strict := startAzure(t, azkvemu.ManagedHSM, false)
	nss := softhsm.NewNSSTestToken(t)
	env := []string{"KMSBRIDGE_PKCS11_MODULE=" + nss.Module, "KMSBRIDGE_PKCS11_MODULE_PARAMS=" + nss.Params, "KMSBRIDGE_PIN=" + nss.PIN}
	nssImport := func(args ...string) run {
		full := append(append(append([]string{}, env...), strict.env...), "import", "--cloud", "azure", "--endpoint-url", strict.URL(), "--allow-endpoint", strict.URL(),
			"--managed-hsm", "--token-label", nss.Label, "--output", "json", "--kek-size", "2048", "--state-dir", strict.state)
		return runBinary(t, nil, append(full, args...)...)
	}
	for _, kt := range []string{"EC-P521", "AES-256"} {
		name := "nss-" + strings.ToLower(kt)
		res := azureResult(t, nssImport("--key-name", name, "--key-label", name, "--generate", "--azure-key-type", kt))
		if !res.Proof.MaterialConfirmed || res.HSM.Token.Model == "SoftHSM v2" {
			t.Errorf("%s on NSS: %+v", kt, res)
		}
	}
	r := nssImport("--key-name", "nss-k1", "--key-label", "nss-k1", "--generate", "--azure-key-type", "EC-P256K")
	if r.Code != 3 || !strings.Contains(r.Stdout, "secp256k1") || !strings.Contains(r.Stdout, nss.Label) || !strings.Contains(r.Stdout, "Nothing was changed") || strict.Versions("nss-k1") != 0 {
		t.Errorf("secp256k1 on NSS: exit %d\n%s%s", r.Code, r.Stderr, r.Stdout)
	}
}

func stepSummaries(res azure.Result) string {
	var b strings.Builder
	for _, s := range res.Steps {
		b.WriteString(s.Name + ": " + s.Summary + "\n")
	}
	return b.String()
}

// The key's attributes come from the same flags as the other clouds' and
// are what the vault holds afterwards, read with Azure's own client.
func TestAzureKeyAttributesFromTheSameFlags(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.KeyVault, true)
	res := azureResult(t, v.importAzure(t, tok, "--key-name", "attrs", "--key-label", "attrs", "--generate", "--azure-key-type", "EC-P256",
		"--valid-to", "2032-02-03T04:05:06Z", "--not-before", "2031-01-01", "--disabled", "--tag", "owner=payments", "--tag", "env=prod"))
	if !res.Proof.MaterialConfirmed || strings.Contains(strings.Join(res.Warnings, " "), "other attributes") {
		t.Errorf("result %+v", res)
	}
	got, err := v.kv.GetKey(context.Background(), "attrs", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	a := got.Attributes
	if a.Expires == nil || a.Expires.UTC().Format(time.RFC3339) != "2032-02-03T04:05:06Z" || a.NotBefore == nil || a.NotBefore.UTC().Format("2006-01-02") != "2031-01-01" ||
		a.Enabled == nil || *a.Enabled {
		t.Errorf("attributes exp %v nbf %v enabled %v", a.Expires, a.NotBefore, a.Enabled)
	}
	if *got.Tags["owner"] != "payments" || *got.Tags["env"] != "prod" || *got.Tags[azure.TagHSMKeyID] != res.HSM.KeyID {
		t.Errorf("tags %v", got.Tags)
	}
	// The same command with other attributes finishes without changing
	// them, and says so.
	res = azureResult(t, v.importAzure(t, tok, "--key-name", "attrs", "--key-label", "attrs", "--generate", "--azure-key-type", "EC-P256",
		"--valid-to", "2033-01-01", "--tag", "owner=payments", "--tag", "env=prod"))
	if res.Imported || !strings.Contains(strings.Join(res.Warnings, " "), "has other attributes than this command asks") || v.Versions("attrs") != 1 {
		t.Errorf("re-run with other attributes: %+v", res)
	}
}

// A Managed HSM endpoint not said to be one is known by its challenge: an
// RSA key is imported, and the result says which service it went to and
// that the KEK's attestation was not verified.
func TestAzureManagedHSMKnownByItsChallenge(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.ManagedHSM, true)
	v.flags = nil
	res := azureResult(t, v.importAzure(t, tok, "--key-name", "rsa", "--key-label", "rsa", "--generate", "--azure-key-type", "RSA-2048"))
	if !res.ManagedHSM || !strings.HasPrefix(res.Attestation, azure.AttestationNotVerified) || !strings.Contains(strings.Join(res.Warnings, " "), "answers as a Managed HSM") {
		t.Errorf("result %+v", res)
	}
	// An AES key needs it said, and is refused before anything is made.
	r := v.importAzure(t, tok, "--key-name", "aes", "--key-label", "aes", "--generate", "--azure-key-type", "AES-256")
	if r.Code != 2 || !strings.Contains(r.Stdout+r.Stderr, "does not import AES") || tokenHasLabel(t, tok, "aes") {
		t.Errorf("AES without --managed-hsm: exit %d\n%s%s", r.Code, r.Stderr, r.Stdout)
	}
}
