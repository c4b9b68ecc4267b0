package softhsm_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

func TestProvisionMakesALoginableToken(t *testing.T) {
	tok := softhsm.NewTestToken(t, "provision-test")
	if tok.Serial == "" {
		t.Fatal("provisioned token has no serial")
	}
	if _, err := os.Stat(filepath.Join(tok.Dir, "tokens")); err != nil {
		t.Fatalf("token store missing: %v", err)
	}
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, err := m.OpenToken(hsm.TokenSelector{Label: "provision-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if got := tk.Identity().Serial; got != tok.Serial {
		t.Errorf("serial: token says %q, Provision said %q", got, tok.Serial)
	}
	if err := tk.Login(softhsm.TestPIN); err != nil {
		t.Fatalf("login with the provisioned PIN: %v", err)
	}
}

func TestProvisionRefusesAnExistingStore(t *testing.T) {
	tok := softhsm.NewTestToken(t, "first")
	if _, err := softhsm.Provision(softhsm.DefaultModule, tok.Dir, "second", "1111", "2222"); err == nil {
		t.Fatal("Provision over an existing softhsm2.conf succeeded; it must refuse to overwrite")
	}
}
