package softhsm

import (
	"os"
	"testing"
)

// NewNSSTestToken provisions an NSS sql database with user PIN TestPIN in a
// temporary directory removed when the test ends, and returns it as a
// token. Without NSS softokn installed it skips with the reason, except
// under CI (CI set), where a missing module is a failure: `make test`
// installs NSS, so its absence there is a broken setup. Provisioning is
// done over PKCS#11 alone, so certutil is not needed.
//
// NSS softokn is initialised once per process: close every hsm.Module
// loaded on one NSS token before calling NewNSSTestToken again.
func NewNSSTestToken(t testing.TB) *NSSToken {
	t.Helper()
	module := DefaultNSSModule()
	if ok, why := NSSAvailable(module); !ok {
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	tok, err := ProvisionNSS(module, t.TempDir(), TestPIN)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
