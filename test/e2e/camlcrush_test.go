package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// Caml Crush 1.0.12 (Debian caml-crush-server, caml-crush-clients): a
// PKCS#11 filtering proxy. pkcs11proxyd loads the token's module and
// applies its filter; the client library (libp11clientunix.so) is the
// module the application loads, and reaches the daemon on a Unix socket.
const (
	camlCrushClient = "/usr/lib/x86_64-linux-gnu/caml-crush/libp11clientunix.so"
	camlCrushServer = "/usr/bin/pkcs11proxyd"
)

// startCamlCrush runs pkcs11proxyd in front of the SoftHSM2 token tok on a
// Unix socket, with Debian's own filter configuration (/etc/pkcs11proxyd)
// changed only where it must be: the module alias points at SoftHSM2, the
// filter's wrapping-format key is set (Debian ships it commented out),
// logs go to stderr, and no user switch. It returns the environment
// kmsbridge needs; the daemon (and its workers) stop when the test ends.
func startCamlCrush(t *testing.T, tok *softhsm.Token) []string {
	t.Helper()
	needFile(t, camlCrushServer, "caml-crush-server")
	needFile(t, camlCrushClient, "caml-crush-clients")
	needFile(t, "/etc/pkcs11proxyd/filter.conf", "caml-crush-server")
	dir := t.TempDir()
	// The socket and netplex's own sockets need short paths.
	sdir := socketDir(t)
	sock := filepath.Join(sdir, "sock")

	filter := readFile(t, "/etc/pkcs11proxyd/filter.conf")
	filter = regexp.MustCompile(`(?m)^modules = .*$`).ReplaceAllString(filter, `modules = [("softhsm", "`+softhsm.DefaultModule+`")]`)
	// Debian's forbidden_mechanisms names an alias ("opencrypto.*") that
	// no longer exists once modules names SoftHSM2 alone, which the daemon
	// refuses at start.
	filter = regexp.MustCompile(`(?m)^forbidden_mechanisms = .*$`).ReplaceAllString(filter, `forbidden_mechanisms = [("sof.*", [CKM_RSA_X_509])]`)
	filter = strings.Replace(filter, "(*\nwrapping_format_key = \"00112233445566778899aabbccddeeff\"\n*)",
		"wrapping_format_key = \"5f0e1d2c3b4a69788796a5b4c3d2e1f0\"", 1)
	writeFile(t, filepath.Join(dir, "filter.conf"), filter)

	conf := readFile(t, "/etc/pkcs11proxyd/pkcs11proxyd.conf")
	for _, r := range [][2]string{
		{"/var/lib/pkcs11proxyd/.netplex", filepath.Join(sdir, "netplex")},
		{`type = "syslog";`, `type = "stderr";`},
		{`user = "Debian-pkcs11proxyd";`, ""},
		{`group = "Debian-pkcs11proxyd";`, ""},
		{"type = \"internet\";\n        bind = \"127.0.0.1:4444\";", "type = \"local\";\n        path = \"" + sock + "\";"},
		{"/etc/pkcs11proxyd/filter.conf", filepath.Join(dir, "filter.conf")},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("Debian's pkcs11proxyd.conf no longer contains %q: this test's configuration needs updating", r[0])
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	writeFile(t, filepath.Join(dir, "server.conf"), conf)

	startDaemon(t, camlCrushServer, tok.Environ(), "-fg", "-conf", filepath.Join(dir, "server.conf"))
	waitFor(t, "pkcs11proxyd's socket "+sock, func() bool { _, err := os.Stat(sock); return err == nil })
	return []string{"PKCS11PROXY_LIBNAME=softhsm", "PKCS11PROXY_SOCKET_PATH=" + sock,
		"KMSBRIDGE_PKCS11_MODULE=" + camlCrushClient, "KMSBRIDGE_PIN=" + tok.PIN}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCamlCrushImportRefusedAsTheFilterSays runs import and doctor through
// Caml Crush's default filter in front of SoftHSM2. Measured
// (docs/tokens.md): the filter's non_local_objects_patch refuses
// C_CreateObject of any key not generated in the token, so the KMS
// wrapping public key cannot be made a session object and import must
// refuse in probe-wrapping with exit 3, naming that refusal, before any
// change; and pkcs11proxyd's worker dies on C_DeriveKey (doctor's ECDH
// probe), after which every call on the connection fails: doctor must
// end with exit 3 saying the token stopped answering there, never 1.
func TestCamlCrushImportRefusedAsTheFilterSays(t *testing.T) {
	tok := newToken(t)
	env := startCamlCrush(t, tok)
	emu := startEmulator(t)

	for _, spec := range []string{"SYMMETRIC_DEFAULT", "HMAC_256", "RSA_2048"} {
		r := runBinary(t, env, "import", "--output", "json", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
			"--key-label", "cc-"+strings.ToLower(spec), "--generate", "--key-spec", spec, "--no-expiry")
		if r.Code != 3 {
			t.Fatalf("import %s through Caml Crush: exit %d, want 3\nstdout:\n%s\nstderr:\n%s", spec, r.Code, r.Stdout, r.Stderr)
		}
		var res struct {
			Error   string
			Partial awskms.Result
		}
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			t.Fatalf("import -o json: %v\n%s", err, r.Stdout)
		}
		for _, want := range []string{"probe-wrapping:", "refuses the KMS wrapping public key as a session object",
			"CKR_TEMPLATE_INCONSISTENT", "no wrap was tried", "Nothing was changed in the HSM or in KMS"} {
			if !strings.Contains(res.Error, want) {
				t.Errorf("import %s refusal does not say %q:\n%s", spec, want, res.Error)
			}
		}
		if res.Partial.CreatedKMSKey || res.Partial.HSM.Generated {
			t.Errorf("import %s refused but its partial result says something was made: %+v", spec, res.Partial)
		}
	}
	if n := emu.keyCount(t); n != 0 {
		t.Errorf("KMS holds %d keys after refused imports, want 0", n)
	}

	// The all-ones CK_RV the client returns from then on is the token gone
	// (hsm.GoneError), named at the call the worker died on.
	r := runBinary(t, env, "doctor", "--token-label", tok.Label)
	if r.Code != 3 || !strings.Contains(r.Stderr, "kmsbridge: C_DeriveKey: ") || !strings.Contains(r.Stderr, "the token stopped answering") ||
		!strings.Contains(r.Stderr, "pkcs11proxyd") {
		t.Errorf("doctor through Caml Crush: exit %d, want 3 saying the token stopped answering at C_DeriveKey (the proxy's worker dies there)\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// The token behind the proxy holds nothing kmsbridge made.
	if objs := softHSMObjectCount(t, tok); objs != 0 {
		t.Errorf("SoftHSM2 token holds %d objects after refused imports and doctor, want 0", objs)
	}
}

// softHSMObjectCount counts the token objects the user sees, straight
// through SoftHSM2 (doctor's scale).
func softHSMObjectCount(t *testing.T, tok *softhsm.Token) int {
	t.Helper()
	return doctorJSON(t, []string{tok.Environ(), "KMSBRIDGE_PKCS11_MODULE=" + softhsm.DefaultModule, "KMSBRIDGE_PIN=" + tok.PIN}, tok.Label).Scale.Objects
}
