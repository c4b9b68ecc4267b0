package softhsm

import (
	"os"
	"testing"
)

// Test PINs. They protect throwaway tokens only.
const (
	TestPIN   = "1234"
	TestSOPIN = "5678"
)

// NewTestToken provisions a token labelled label in a temporary directory
// removed when the test ends. Without SoftHSM2 installed it skips with the
// reason, except under CI (CI set), where a missing module is a failure:
// `make test` installs it, so its absence there is a broken setup.
func NewTestToken(t testing.TB, label string) *Token {
	t.Helper()
	if ok, why := Available(DefaultModule); !ok {
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	tok, err := Provision(DefaultModule, t.TempDir(), label, TestPIN, TestSOPIN)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
