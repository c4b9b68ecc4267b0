package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// TestImportAndVerifyByPKCS11URI names the token, module and PIN file by
// one PKCS#11 URI (no --module, no $KMSBRIDGE_PIN), prints the key's URI,
// and verifies the import by that URI alone.
func TestImportAndVerifyByPKCS11URI(t *testing.T) {
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
	var res kmsimport.Result
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
