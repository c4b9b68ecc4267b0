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

// NewOCKTestToken initialises opencryptoki's soft token labelled label
// with TestPIN and TestSOPIN for this test, starting its slot daemon, and
// releases it (daemon stopped, token wiped) when the test ends. Tests in
// every process that use it run one at a time: the token is machine-wide.
// Without opencryptoki it skips with the reason, except under CI. The test
// binary's TestMain must call RunOCKHelper first.
func NewOCKTestToken(t testing.TB, label string) *OCKToken {
	t.Helper()
	if ok, why := OCKAvailable(); !ok {
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	tok, err := ProvisionOCK(label, TestPIN, TestSOPIN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tok.Release)
	return tok
}
