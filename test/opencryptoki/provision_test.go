package opencryptoki_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

func TestProvisionOCKMakesALoginableTokenAndReleaseWipesIt(t *testing.T) {
	tok := softhsm.NewOCKTestToken(t, "ock-test")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := m.OpenToken(hsm.TokenSelector{Label: "ock-test"})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	if id := tk.Identity(); id.Manufacturer != "IBM Corp." || id.Model != "IBM SoftTok" {
		t.Errorf("identity %+v: want opencryptoki's soft token (IBM Corp., IBM SoftTok)", id)
	}
	if err := tk.Login(softhsm.TestPIN); err != nil {
		t.Errorf("login with the provisioned PIN: %v", err)
	}
	if _, err := tk.Generate("persisted", hsm.AES256(), false); err != nil {
		t.Errorf("generate a token key (for Release to remove): %v", err)
	}
	tk.Close()
	m.Close()
	tok.Release()
	if ents, _ := os.ReadDir("/var/lib/opencryptoki/swtok/TOK_OBJ"); len(ents) != 0 {
		t.Errorf("after Release the soft token store still holds %d objects", len(ents))
	}
	if _, err := os.Stat(filepath.Join("/var/lib/opencryptoki/swtok", "MK_USER")); err == nil {
		t.Error("after Release the soft token still has a user PIN")
	}
	if _, err := os.Stat("/var/run/pkcsslotd.pid"); err == nil {
		t.Error("after Release pkcsslotd's pid file is still there")
	}
}
