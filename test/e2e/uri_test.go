package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// TestImportAndVerifyByPKCS11URI names the token, module and PIN file by
// one PKCS#11 URI (no --module, no $KMSBRIDGE_PIN), prints the key's URI,
// and verifies the import by that URI alone.
func TestImportAndVerifyByPKCS11URI(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	pin := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pin, []byte(tok.PIN), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenURI := "pkcs11:token=" + tok.Label + "?module-path=" + softhsm.DefaultModule + "&pin-source=file:" + pin
	r := runBinary(t, []string{tok.Environ()}, "import", "-o", "json", "--token", tokenURI, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
		"--key-label", "by-uri", "--generate", "--no-expiry")
	if r.Code != 0 {
		t.Fatalf("import by URI: exit %d\n%s", r.Code, r.Stderr)
	}
	var res awskms.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatal(err)
	}
	want := "pkcs11:token=" + tok.Label + ";manufacturer=SoftHSM%20project;model=SoftHSM%20v2;serial=" + tok.Serial + ";object=by-uri;id=%"
	if !strings.HasPrefix(res.HSM.KeyURI, want) || !strings.HasSuffix(res.HSM.KeyURI, ";type=secret-key") {
		t.Fatalf("KeyUri %q, want %s...;type=secret-key", res.HSM.KeyURI, want)
	}
	keyURI := res.HSM.KeyURI + "?module-path=" + softhsm.DefaultModule + "&pin-source=file:" + pin
	v := runBinary(t, []string{tok.Environ()}, "verify", "--key", keyURI, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", res.KeyId)
	if v.Code != 0 {
		t.Fatalf("verify by the printed key URI: exit %d\n%s", v.Code, v.Stderr)
	}
}

func TestPKCS11URIRefusals(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fail pin-value", []string{"--token", "pkcs11:token=ceremony?pin-value=8642"}, "pin-value puts the PIN on the command line"},
		{"fail URI and label", []string{"--token", "pkcs11:token=ceremony", "--token-label", "ceremony"}, "the token is chosen twice"},
		{"fail key URI and key label", []string{"--token-label", "ceremony", "--key", "pkcs11:object=k", "--key-label", "k"}, "the HSM key is chosen twice"},
		{"fail not a URI", []string{"--token", "ceremony"}, "--token takes a PKCS#11 URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kmsbridge(t, tok, append([]string{"import", "--endpoint-url", "http://127.0.0.1:9", "--allow-endpoint", "http://127.0.0.1:9", "--no-expiry"}, tt.args...)...)
			if r.Code != 2 || !strings.Contains(r.Stderr, tt.want) || strings.Contains(r.Stderr, "8642") {
				t.Errorf("exit %d, stderr %q: want exit 2 with %q and no PIN", r.Code, r.Stderr, tt.want)
			}
		})
	}
}

// TestKeySelectionIsExact: every attribute of a --key or --token URI must
// match. A label shared by a secret key and a private key is refused as
// ambiguous, listing both, unless the URI's type or id narrows it;
// type=private never imports the secret key; a --token URI naming an
// object is refused, not ignored.
func TestKeySelectionIsExact(t *testing.T) {
	emu := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	tk := openInProcess(t, tok)
	secret, err := tk.GenerateAfterSearch("dup", hsm.AES256(), false)
	if err != nil {
		t.Fatal(err)
	}
	private, err := tk.GenerateAfterSearch("dup", hsm.RSAKey(2048), false)
	if err != nil {
		t.Fatal(err)
	}
	tk.Close()
	imp := func(args ...string) run {
		return kmsbridge(t, tok, append([]string{"import", "-o", "json", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--no-expiry"}, args...)...)
	}
	before := emu.keyCount(t)

	r := imp("--token-label", tok.Label, "--key-label", "dup")
	if r.Code != 3 || !strings.Contains(r.Stderr, "names 2 keys") || !strings.Contains(r.Stderr, secret.IDHex()) || !strings.Contains(r.Stderr, private.IDHex()) {
		t.Errorf("label dup: exit %d\n%s\nwant exit 3, ambiguous, listing both CKA_IDs", r.Code, r.Stderr)
	}
	r = imp("--key", "pkcs11:token="+tok.Label+";object=dup;type=private", "--key-spec", "SYMMETRIC_DEFAULT")
	if r.Code != 2 || !strings.Contains(r.Stderr, "type=private") {
		t.Errorf("object=dup;type=private with an AES spec: exit %d\n%s\nwant exit 2 naming the type", r.Code, r.Stderr)
	}
	r = imp("--token", "pkcs11:token="+tok.Label+";object=no-such", "--key-label", "dup")
	if r.Code != 2 || !strings.Contains(r.Stderr, "object names a key") {
		t.Errorf("--token with object=: exit %d\n%s\nwant exit 2", r.Code, r.Stderr)
	}
	r = imp("--key", "pkcs11:token="+tok.Label+";model=Not%20SoftHSM;object=dup;type=private")
	if r.Code != 3 || !strings.Contains(r.Stderr, "model") {
		t.Errorf("model that does not match: exit %d\n%s\nwant exit 3 (no such token)", r.Code, r.Stderr)
	}
	if n := emu.keyCount(t); n != before {
		t.Fatalf("refused selections created %d KMS keys", n-before)
	}
	// Narrowed by type: the private key, and only it.
	res := importJSON(t, tok, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--no-expiry", "--key", "pkcs11:token="+tok.Label+";object=dup;type=private", "--key-spec", "RSA_2048", "--key-usage", "SIGN_VERIFY")
	if res.HSM.KeyID != private.IDHex() {
		t.Errorf("object=dup;type=private imported CKA_ID %s, want the private key's %s", res.HSM.KeyID, private.IDHex())
	}
	// Narrowed by id, with object too (the URI kmsbridge prints): the secret key.
	res = importJSON(t, tok, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--no-expiry", "--key", hsm.KeyURI(hsm.TokenIdentity{Label: tok.Label, Manufacturer: "SoftHSM project", Model: "SoftHSM v2", Serial: tok.Serial}, secret))
	if res.HSM.KeyID != secret.IDHex() {
		t.Errorf("the secret key's URI imported CKA_ID %s, want %s", res.HSM.KeyID, secret.IDHex())
	}
}
