package softhsm_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// loadNSS loads the token's module with its parameters and opens the token
// by label; both are closed when the test ends.
func loadNSS(t *testing.T, tok *softhsm.NSSToken) *hsm.Token {
	t.Helper()
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module, Params: tok.Params})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	tk, err := m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	return tk
}

func TestProvisionNSSMakesALoginableToken(t *testing.T) {
	tok := softhsm.NewNSSTestToken(t)
	if tok.Label != "NSS Certificate DB" || tok.PIN != softhsm.TestPIN || tok.Module != softhsm.DefaultNSSModule() {
		t.Errorf("token %+v: want label %q, the test PIN and module %s", tok, "NSS Certificate DB", softhsm.DefaultNSSModule())
	}
	if want := "configdir='sql:" + tok.Dir + "' certPrefix='' keyPrefix='' secmod='secmod.db' flags="; tok.Params != want {
		t.Errorf("params %q, want %q", tok.Params, want)
	}
	for _, f := range []string{"cert9.db", "key4.db"} {
		st, err := os.Stat(filepath.Join(tok.Dir, f))
		if err != nil {
			t.Fatalf("database file missing: %v", err)
		}
		if mode := st.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", f, mode)
		}
	}
	tk := loadNSS(t, tok)
	id := tk.Identity()
	if id.Label != softhsm.NSSLabel || id.Manufacturer != "Mozilla Foundation" {
		t.Errorf("identity %+v: want label %q by Mozilla Foundation", id, softhsm.NSSLabel)
	}
	if err := tk.Login(softhsm.TestPIN); err != nil {
		t.Fatalf("login with the provisioned PIN: %v", err)
	}
}

// Before a password is set NSS answers every user login with
// CKR_USER_TYPE_INVALID, so CKR_PIN_INCORRECT for a wrong PIN shows that the
// PIN was set and is checked.
func TestProvisionNSSSetsThePIN(t *testing.T) {
	tok := softhsm.NewNSSTestToken(t)
	tk := loadNSS(t, tok)
	err := tk.Login("0000")
	var perr *hsm.Error
	if !errors.As(err, &perr) || perr.Code != pkcs11.CKR_PIN_INCORRECT {
		t.Fatalf("login with a wrong PIN: got %v, want C_Login CKR_PIN_INCORRECT", err)
	}
}

func TestProvisionNSSRefusesAnExistingDatabase(t *testing.T) {
	tok := softhsm.NewNSSTestToken(t)
	keydb := filepath.Join(tok.Dir, "key4.db")
	before, err := os.ReadFile(keydb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := softhsm.ProvisionNSS(tok.Module, tok.Dir, "1111"); err == nil {
		t.Fatal("ProvisionNSS over an existing database succeeded; it must refuse to touch it")
	}
	after, err := os.ReadFile(keydb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("key4.db changed although ProvisionNSS refused")
	}
}

func TestNSSParamsQuotesTheDirectory(t *testing.T) {
	got := softhsm.NSSParams(`/tmp/a b/it's\x`)
	want := `configdir='sql:/tmp/a b/it\'s\\x' certPrefix='' keyPrefix='' secmod='secmod.db' flags=`
	if got != want {
		t.Errorf("NSSParams: got %s, want %s", got, want)
	}
}

// A quote or backslash in the path must not send NSS to another directory.
func TestProvisionNSSInADirectoryWithQuotes(t *testing.T) {
	module := softhsm.DefaultNSSModule()
	if ok, why := softhsm.NSSAvailable(module); !ok {
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	dir := filepath.Join(t.TempDir(), `it's a \dir`)
	tok, err := softhsm.ProvisionNSS(module, dir, softhsm.TestPIN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "key4.db")); err != nil {
		t.Fatalf("the database is not in %q: %v", dir, err)
	}
	if err := loadNSS(t, tok).Login(softhsm.TestPIN); err != nil {
		t.Fatalf("login: %v", err)
	}
}

// NSS's own certutil accepts the PIN as the database password and rejects
// another: the database is an ordinary NSS database, not only a PKCS#11 view.
func TestNSSDatabaseOpensWithCertutilAndThePIN(t *testing.T) {
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		why := "certutil is not installed (apt-get install libnss3-tools; `make test` installs it)"
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	tok := softhsm.NewNSSTestToken(t)
	listKeys := func(pin string) string {
		t.Helper()
		pw := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(pw, []byte(pin+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(pw)
		// certutil -K exits non-zero on an empty database too; its words say why.
		out, _ := exec.Command(certutil, "-K", "-d", "sql:"+tok.Dir, "-f", pw).CombinedOutput()
		return string(out)
	}
	const bad = "SEC_ERROR_BAD_PASSWORD"
	if out := listKeys(tok.PIN); strings.Contains(out, bad) || !strings.Contains(out, `token "NSS Certificate DB"`) {
		t.Errorf("certutil -K with the PIN: %s", out)
	}
	if out := listKeys("0000"); !strings.Contains(out, bad) {
		t.Errorf("certutil -K with a wrong PIN did not report %s: %s", bad, out)
	}
}

func TestNSSAvailableSaysWhatIsMissing(t *testing.T) {
	ok, why := softhsm.NSSAvailable("/nonexistent/libsoftokn3.so")
	if ok || !strings.Contains(why, "/nonexistent/libsoftokn3.so") || !strings.Contains(why, "apt-get install") {
		t.Errorf("NSSAvailable of a missing module: %v %q, want false naming the path and the package", ok, why)
	}
	if ok, why := softhsm.NSSAvailable(softhsm.DefaultNSSModule()); ok != (why == "") {
		t.Errorf("NSSAvailable(default): ok=%v with reason %q", ok, why)
	}
}

func TestProvisionNSSRefusesAnEmptyPIN(t *testing.T) {
	dir := t.TempDir()
	if _, err := softhsm.ProvisionNSS("", dir, ""); err == nil {
		t.Fatal("ProvisionNSS with an empty PIN succeeded; NSS would leave the database without a password")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("ProvisionNSS refused but left %d files in %s", len(entries), dir)
	}
}

// NSS softokn is initialised once per process: provisioning while a module
// is loaded must fail with the CKR code, and leave the loaded token working.
func TestProvisionNSSWhileNSSIsLoaded(t *testing.T) {
	tok := softhsm.NewNSSTestToken(t)
	tk := loadNSS(t, tok)
	_, err := softhsm.ProvisionNSS(tok.Module, t.TempDir(), softhsm.TestPIN)
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatalf("got %v, want CKR_CRYPTOKI_ALREADY_INITIALIZED", err)
	}
	if err := tk.Login(softhsm.TestPIN); err != nil {
		t.Fatalf("the loaded token stopped working after the refused provisioning: %v", err)
	}
}
