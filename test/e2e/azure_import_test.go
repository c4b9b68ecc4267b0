package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/internal/emukeys"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// azureVault is an azkvemu Key Vault on 127.0.0.1 with its CA in a file,
// and the environment kmsbridge needs to reach it.
type azureVault struct {
	*azkvemu.Server
	env   []string
	kv    *azkeys.Client
	state string
	// flags every import adds (--managed-hsm for a Managed HSM).
	flags []string
}

type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: azkvemu.Token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func startAzureVault(t *testing.T) *azureVault { return startAzureVaultAs(t, true) }

// startAzureVaultAs starts the vault, lenient about PKCS#8 padding or
// strict: set before it serves, never while it does.
func startAzureVaultAs(t *testing.T, lenient bool) *azureVault {
	t.Helper()
	return startAzure(t, azkvemu.KeyVault, lenient)
}

// startAzure starts a Key Vault or a Managed HSM (imports to which then
// say --managed-hsm, the endpoint being loopback).
func startAzure(t *testing.T, flavor azkvemu.Flavor, lenient bool) *azureVault {
	t.Helper()
	s := azkvemu.New(flavor)
	// SoftHSM2 2.6.1 pads PKCS#8 before its RFC 5649 wrap (software-tokens.md).
	s.LenientPKCS8Padding = lenient
	keys, err := emukeys.Open(os.Getenv(emukeys.EnvVar)) // see TestMain
	if err != nil {
		t.Fatal(err)
	}
	s.TestKeys = keys
	if err := s.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ca := filepath.Join(t.TempDir(), "azkv-ca.pem")
	if err := os.WriteFile(ca, s.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
	kv, err := azkeys.NewClient(s.URL(), staticCred{}, &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc}, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	v := &azureVault{Server: s, kv: kv, state: t.TempDir(), env: []string{"SSL_CERT_FILE=" + ca, azure.EnvAccessToken + "=" + azkvemu.Token}}
	if flavor == azkvemu.ManagedHSM {
		v.flags = []string{"--managed-hsm"}
	}
	return v
}

// importAzure runs kmsbridge import --cloud azure against the vault.
func (v *azureVault) importAzure(t *testing.T, tok *softhsm.Token, args ...string) run {
	t.Helper()
	full := append(append([]string{}, v.env...), "import", "--cloud", "azure", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(), "--token-label", tok.Label, "--output", "json", "--kek-size", "2048", "--state-dir", v.state)
	full = append(full, v.flags...)
	return kmsbridge(t, tok, append(full, args...)...)
}

func azureResult(t *testing.T, r run) azure.Result {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", r.Code, r.Stderr, r.Stdout)
	}
	var res azure.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("no JSON result: %v\n%s", err, r.Stdout)
	}
	return res
}

func TestAzureImportRSAThenECReusingTheKEK(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	res := azureResult(t, v.importAzure(t, tok, "--key-name", "payments", "--key-label", "payments", "--generate", "--azure-key-type", "RSA-2048",
		"--valid-to", "2030-01-01", "--tag", "owner=payments"))
	if !res.Proof.MaterialConfirmed || !res.Imported || !res.KEK.Created || res.KeyType != "RSA-HSM" || res.KEK.Bits != 2048 {
		t.Fatalf("result %+v", res)
	}
	if !strings.HasPrefix(res.ImportMethod, "CKM_RSA_AES_KEY_WRAP") || res.ByokSHA256 == "" || !strings.HasPrefix(res.Attestation, "not available") {
		t.Errorf("method %q byok %q attestation %q", res.ImportMethod, res.ByokSHA256, res.Attestation)
	}
	// What the vault holds, read with Azure's own client.
	got, err := v.kv.GetKey(context.Background(), "payments", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Tags[azure.TagHSMKeyID] != res.HSM.KeyID || *got.Tags[azure.TagTokenSerial] != res.HSM.Token.Serial || *got.Tags["owner"] != "payments" {
		t.Errorf("tags %v", got.Tags)
	}
	if got.Attributes.Expires == nil || !got.Attributes.Expires.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) || !*got.Attributes.Enabled {
		t.Errorf("attributes %+v", got.Attributes)
	}
	kek, err := v.kv.GetKey(context.Background(), azure.DefaultKEKName, "", nil)
	if err != nil || len(kek.Key.KeyOps) != 1 || *kek.Key.KeyOps[0] != azkeys.KeyOperationImport || *kek.Key.Kty != azkeys.KeyTypeRSAHSM {
		t.Fatalf("KEK %+v %v", kek.Key, err)
	}
	// A second key, EC, from an existing HSM key: the KEK is reused.
	ec := azureResult(t, v.importAzure(t, tok, "--key-name", "signer", "--key-label", "signer", "--generate", "--azure-key-type", "EC-P256"))
	if ec.KEK.Created || ec.KEK.KID != res.KEK.KID || ec.KeyType != "EC-HSM" || !ec.Proof.MaterialConfirmed {
		t.Errorf("EC result %+v", ec)
	}
	if n := v.Versions(azure.DefaultKEKName); n != 1 {
		t.Errorf("%d KEK versions", n)
	}
}

func TestAzureImportIsExactlyOnce(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	args := []string{"--key-name", "p384", "--key-label", "p384", "--generate", "--azure-key-type", "EC-P384"}
	// The import takes effect but its answer is lost.
	v.SetFault("import", azkvemu.Fault{Status: 500, Times: 1, After: true})
	r := v.importAzure(t, tok, args...)
	if r.Code == 0 || !strings.Contains(r.Stderr+r.Stdout, "re-run the same command") {
		t.Fatalf("lost answer: exit %d\n%s%s", r.Code, r.Stderr, r.Stdout)
	}
	if n := v.Versions("p384"); n != 1 {
		t.Fatalf("%d versions after one import call", n)
	}
	// The same command finishes: the key is found by its tags and proven,
	// nothing is generated, created or imported again.
	res := azureResult(t, v.importAzure(t, tok, args...))
	if res.Imported || !res.Proof.MaterialConfirmed || len(res.Resumed) < 2 {
		t.Errorf("re-run %+v", res)
	}
	if n := v.Versions("p384"); n != 1 || v.Calls("import") != 1 {
		t.Errorf("%d versions, %d import calls after the re-run", n, v.Calls("import"))
	}
	// And once more, with everything done: still one of each.
	azureResult(t, v.importAzure(t, tok, args...))
	// On a host without the journal the same command finishes too: the
	// taken label is taken up because the vault key is tagged with it.
	v.state = t.TempDir()
	res = azureResult(t, v.importAzure(t, tok, args...))
	// Taken up by the ownership authority on the vault key's tags and
	// proved by its public key, but this host cannot say it generated it.
	if res.Imported || !res.Proof.MaterialConfirmed || res.HSM.Generated {
		t.Errorf("without the journal: %+v", res)
	}
	if n := v.Versions("p384"); n != 1 || v.Versions(azure.DefaultKEKName) != 1 {
		t.Errorf("versions %d, KEK versions %d", n, v.Versions(azure.DefaultKEKName))
	}
}

func TestAzureBadInputsChangeNothing(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	ctx := context.Background()
	// A "KEK" that may also decrypt, one that is not HSM-backed, one disabled.
	mk := func(name string, p azkeys.CreateKeyParameters) {
		if _, err := v.kv.CreateKey(ctx, name, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	mk("kek-decrypt", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationDecrypt), to.Ptr(azkeys.KeyOperationUnwrapKey)}})
	mk("kek-soft", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationEncrypt)}})
	mk("kek-off", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)},
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}})
	// A key of the same name that is not this HSM key's.
	mk("taken", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)})
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"KEK with other operations", []string{"--key-name", "t1", "--kek-name", "kek-decrypt"}, "single operation import"},
		{"software KEK", []string{"--key-name", "t2", "--kek-name", "kek-soft"}, "not RSA-HSM"},
		{"disabled KEK", []string{"--key-name", "t3", "--kek-name", "kek-off"}, "disabled"},
		{"someone else's key", []string{"--key-name", "taken"}, "already exists"},
		{"KEK is the target", []string{"--key-name", "k", "--kek-name", "K"}, "separate, import-only key"},
		{"bad key name", []string{"--key-name", "no_underscores"}, "letters, digits and '-'"},
		{"bad KEK size", []string{"--key-name", "t4", "--kek-size", "1024"}, "from 2048 to 4096 bits"},
		{"AES to Key Vault", []string{"--key-name", "t5", "--azure-key-type", "AES-256"}, "does not import AES (oct-HSM) keys"},
		{"AWS flag", []string{"--key-name", "t6", "--alias", "alias/x"}, "AWS KMS flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			label := "bad-" + strings.ReplaceAll(c.name, " ", "-")
			r := v.importAzure(t, tok, append([]string{"--key-label", label, "--generate", "--azure-key-type", "RSA-2048"}, c.args...)...)
			if r.Code != 2 || !strings.Contains(r.Stderr+r.Stdout, c.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s%s", r.Code, c.want, r.Stderr, r.Stdout)
			}
			if tokenHasLabel(t, tok, label) {
				t.Errorf("an HSM key %q was generated before the refusal", label)
			}
		})
	}
	// Not Azure's domain, and an endpoint not allowed: refused before the
	// token is opened.
	for _, args := range [][]string{
		{"--vault-url", "https://contoso.vault.azure.net.attacker.example"},
		{"--vault-url", "http://contoso.vault.azure.net"},
	} {
		r := kmsbridge(t, tok, append(append([]string{}, v.env...), append([]string{"import", "--cloud", "azure", "--token-label", tok.Label,
			"--key-name", "x", "--key-label", "x", "--generate"}, args...)...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "--vault-url") {
			t.Errorf("%v: exit %d\n%s", args, r.Code, r.Stderr)
		}
	}
	for _, n := range []string{"t1", "t2", "t3", "t4", "t5", "t6", "k"} {
		if v.Versions(n) != 0 {
			t.Errorf("key %s was created", n)
		}
	}
	if v.Versions("taken") != 1 || v.Versions(azure.DefaultKEKName) != 0 {
		t.Errorf("taken has %d versions, default KEK %d", v.Versions("taken"), v.Versions(azure.DefaultKEKName))
	}
}

func TestAzureLostKEKAnswerIsFinishedByARerun(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	args := []string{"--key-name", "after-kek", "--key-label", "after-kek", "--generate", "--azure-key-type", "EC-P256"}
	v.SetFault("create", azkvemu.Fault{Status: 503, Times: 1, After: true})
	r := v.importAzure(t, tok, args...)
	if r.Code != 4 || !strings.Contains(r.Stdout, "perhaps Key Exchange Key") || !strings.Contains(r.Stdout, "re-run the same command") {
		t.Fatalf("lost KEK answer: exit %d\n%s%s", r.Code, r.Stderr, r.Stdout)
	}
	if v.Versions(azure.DefaultKEKName) != 1 || !tokenHasLabel(t, tok, "after-kek") {
		t.Fatal("the KEK or the HSM key is missing after the first run")
	}
	res := azureResult(t, v.importAzure(t, tok, args...))
	if res.KEK.Created || !res.Imported || !res.Proof.MaterialConfirmed || len(res.Resumed) != 1 {
		t.Errorf("re-run %+v", res)
	}
	if v.Versions(azure.DefaultKEKName) != 1 || v.Versions("after-kek") != 1 || v.Calls("create") != 1 {
		t.Errorf("KEK versions %d, key versions %d, creates %d", v.Versions(azure.DefaultKEKName), v.Versions("after-kek"), v.Calls("create"))
	}
}

// NSS softokn wraps PKCS#8 without padding, so it runs against the strict
// emulator; opencryptoki's soft token has no AES key wrap with padding, so
// it must be refused before anything is made.
func TestAzureImportOnNSSAndOpencryptoki(t *testing.T) {
	t.Parallel()
	v := startAzureVaultAs(t, false)
	nss := softhsm.NewNSSTestToken(t)
	nssEnv := []string{"KMSBRIDGE_PKCS11_MODULE=" + nss.Module, "KMSBRIDGE_PKCS11_MODULE_PARAMS=" + nss.Params, "KMSBRIDGE_PIN=" + nss.PIN}
	azureCmd := func(env []string, label string, args ...string) run {
		full := append(append(append([]string{}, env...), v.env...), "import", "--cloud", "azure", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(),
			"--token-label", label, "--output", "json", "--kek-size", "2048", "--state-dir", v.state)
		return runBinary(t, nil, append(full, args...)...)
	}
	for _, kt := range []string{"RSA-2048", "EC-P256"} {
		name := "nss-" + strings.ToLower(kt)
		res := azureResult(t, azureCmd(nssEnv, nss.Label, "--key-name", name, "--key-label", name, "--generate", "--azure-key-type", kt))
		if !res.Proof.MaterialConfirmed || res.HSM.Token.Model == "SoftHSM v2" {
			t.Errorf("%s on NSS: %+v", kt, res)
		}
		if got := opensslDecodeBYOK(t, v.LastTransferBlob(), v.KEKPrivateKeyPEM(azure.DefaultKEKName), res.KEK.KID); got != res.Proof.PublicKeySHA256 {
			t.Errorf("%s: OpenSSL decoded a key with SPKI SHA-256 %s, the vault holds %s", kt, got, res.Proof.PublicKeySHA256)
		}
	}
	ock := softhsm.NewOCKTestToken(t, "azure")
	ockEnv := []string{"KMSBRIDGE_PKCS11_MODULE=" + ock.Module, "KMSBRIDGE_PIN=" + ock.PIN}
	r := azureCmd(ockEnv, ock.Label, "--key-name", "ock", "--key-label", "ock", "--generate", "--azure-key-type", "RSA-2048")
	if r.Code != 2 || !strings.Contains(r.Stdout, "none of the methods azure accepts") || !strings.Contains(r.Stdout, "Nothing was changed") || v.Versions("ock") != 0 {
		t.Errorf("opencryptoki: exit %d\n%s%s", r.Code, r.Stderr, r.Stdout)
	}
}

// opensslDecodeBYOK opens a .byok with OpenSSL alone, as Key Vault would:
// the JSON envelope, RSA-OAEP SHA-1 (and not SHA-256) of the AES key,
// RFC 5649 of the target, PKCS#8 of it, strictly. It returns the SHA-256
// of the target's SubjectPublicKeyInfo.
func opensslDecodeBYOK(t *testing.T, blob, kekPEM []byte, kid string) string {
	t.Helper()
	var env struct {
		SchemaVersion string            `json:"schema_version"`
		Header        map[string]string `json:"header"`
		Ciphertext    string            `json:"ciphertext"`
		Generator     string            `json:"generator"`
	}
	if err := json.Unmarshal(blob, &env); err != nil {
		t.Fatalf("the .byok is not JSON: %v", err)
	}
	if env.SchemaVersion != "1.0.0" || env.Header["alg"] != "dir" || env.Header["enc"] != "CKM_RSA_AES_KEY_WRAP" || env.Header["kid"] != kid || env.Generator == "" {
		t.Fatalf("envelope %+v", env)
	}
	ct, err := base64.RawURLEncoding.DecodeString(env.Ciphertext)
	if err != nil {
		t.Fatalf("ciphertext is not unpadded base64url: %v", err)
	}
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek.pem")
	os.WriteFile(kek, kekPEM, 0o600)
	n := rsaModulusBytes(t, string(kekPEM))
	os.WriteFile(filepath.Join(dir, "oaep.bin"), ct[:n], 0o600)
	oaep := func(md string) ([]byte, error) {
		return exec.Command("openssl", "pkeyutl", "-decrypt", "-inkey", kek, "-pkeyopt", "rsa_padding_mode:oaep",
			"-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md, "-in", filepath.Join(dir, "oaep.bin")).Output()
	}
	if _, err := oaep("sha256"); err == nil {
		t.Error("the RSA block opens with OAEP SHA-256: it must be SHA-1")
	}
	aesKey, err := oaep("sha1")
	if err != nil || len(aesKey) != 32 {
		t.Fatalf("OAEP SHA-1: %d bytes, %v", len(aesKey), err)
	}
	unwrap := exec.Command("openssl", "enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(aesKey), "-iv", "A65959A6")
	unwrap.Stdin = bytes.NewReader(ct[n:])
	p8, err := unwrap.Output()
	if err != nil {
		t.Fatalf("openssl enc -d -id-aes256-wrap-pad: %v", err)
	}
	pub := exec.Command("openssl", "pkey", "-inform", "DER", "-pubout", "-outform", "DER")
	pub.Stdin = bytes.NewReader(p8)
	spki, err := pub.Output()
	if err != nil {
		t.Fatalf("openssl pkey: the target is not PKCS#8: %v", err)
	}
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:])
}

// An Azure import writes the signed ceremony record like an AWS one: every
// step with the KEK, the .byok digest and the proof, verifiable offline.
func TestAzureImportRecord(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzureVault(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "record.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	res := azureResult(t, v.importAzure(t, tok, "--key-name", "recorded", "--key-label", "recorded", "--generate", "--azure-key-type", "EC-P256",
		"--record", rec, "--audit-key", "audit", "--operator", "Alice"))
	r := kmsbridge(t, nil, "record", "verify", "--public-key", pub, rec)
	if r.Code != 0 || !strings.Contains(r.Stdout, "the record verifies") {
		t.Fatalf("record verify: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	body, _ := os.ReadFile(rec)
	for _, want := range []string{`"create-kek"`, `"verify"`, res.KEK.KID, res.ByokSHA256, res.Proof.PublicKeySHA256, `"Cloud":"azure"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the record lacks %s", want)
		}
	}
}

// The cloud selector refuses what it does not know and flags of another
// cloud, before the token is opened.
func TestAzureCloudSelector(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	for _, args := range [][]string{
		{"import", "--cloud", "nimbus", "--token-label", tok.Label, "--key-label", "x"},
		{"import", "--vault-url", "https://contoso.vault.azure.net", "--token-label", tok.Label, "--key-label", "x", "--generate", "--no-expiry"},
		{"import", "--cloud", "azure", "--vault-url", "https://contoso.vault.azure.net", "--token-label", tok.Label, "--key-label", "x"},
	} {
		r := kmsbridge(t, tok, args...)
		if r.Code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.Code, r.Stderr)
		}
	}
}
